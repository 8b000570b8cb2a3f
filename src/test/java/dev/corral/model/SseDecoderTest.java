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
}
