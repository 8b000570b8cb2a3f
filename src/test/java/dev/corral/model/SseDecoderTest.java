package dev.corral.model;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SseDecoderTest {

  private final List<String> events = new ArrayList<>();
  private final SseDecoder decoder =
      new SseDecoder((event, data) -> events.add(event + "|" + data));

  @Test
  void eventsSplitAnywhereAreReassembled() {
    byte[] stream =
        "event: ping\ndata: {\"type\":\"ping\"}\n\nevent: content_block_delta\r\ndata: {\"text\":\"h\u00e9\"}\r\n\r\n"
            .getBytes(StandardCharsets.UTF_8);

    for (byte b : stream) {
      decoder.feed(new byte[] {b});
    }

    assertThat(events)
        .containsExactly("ping|{\"type\":\"ping\"}", "content_block_delta|{\"text\":\"h\u00e9\"}");
  }

  @Test
  void commentsAreSkippedAndMultiLineDataIsJoined() {
    decoder.feed(": keep-alive\n\ndata: a\ndata: b\n\n".getBytes(StandardCharsets.UTF_8));

    assertThat(events).containsExactly("message|a\nb");
  }

  @Test
  void aLineLongerThanAnyEventOfTheApiEndsTheStreamWithoutHoldingItAll() {
    // Given a stream whose one line never ends, sent in 64 KiB chunks
    byte[] chunk = new byte[64 * 1024];
    java.util.Arrays.fill(chunk, (byte) 'x');
    decoder.feed("data: ".getBytes(StandardCharsets.UTF_8));

    // Then it is refused once the line passes the limit, not at the end of the stream
    int fed = 0;
    try {
      while (fed <= SseDecoder.MAX_EVENT_BYTES + chunk.length) {
        decoder.feed(chunk);
        fed += chunk.length;
      }
      throw new AssertionError("the line was taken whole");
    } catch (ModelException refused) {
      assertThat(refused.errorType()).isEqualTo("stream_too_large");
      assertThat(fed).isLessThanOrEqualTo(SseDecoder.MAX_EVENT_BYTES);
    }
    assertThat(events).isEmpty();
  }

  @Test
  void anEventOfManyDataLinesIsBoundedToo() {
    byte[] line = ("data: " + "y".repeat(1024 * 1024 - 7) + "\n").getBytes(StandardCharsets.UTF_8);
    org.assertj.core.api.Assertions.assertThatThrownBy(
            () -> {
              for (int i = 0; i < 16; i++) {
                decoder.feed(line);
              }
            })
        .isInstanceOfSatisfying(
            ModelException.class,
            refused -> assertThat(refused.errorType()).isEqualTo("stream_too_large"));
    assertThat(events).isEmpty();
  }
}
