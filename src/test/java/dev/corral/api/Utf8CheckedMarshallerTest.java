package dev.corral.api;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.testing.Fixtures;
import dev.corral.testing.RawCalls;
import io.grpc.MethodDescriptor;
import java.io.ByteArrayInputStream;
import org.junit.jupiter.api.Test;

class Utf8CheckedMarshallerTest {

  @SuppressWarnings("unchecked")
  private final Utf8CheckedMarshaller<EmitEventRequest> marshaller =
      new Utf8CheckedMarshaller<>(
          (MethodDescriptor.PrototypeMarshaller<EmitEventRequest>)
              SessionServiceGrpc.getEmitEventMethod().getRequestMarshaller());

  @Test
  void validBytesDecodeAsUsual() {
    EmitEventRequest request = Fixtures.emit("sesn_00000000000000000000000000", "héllo");

    EmitEventRequest decoded = marshaller.parse(new ByteArrayInputStream(request.toByteArray()));

    assertThat(decoded).isEqualTo(request);
    assertThat(Utf8CheckedMarshaller.problemOf(decoded)).isNull();
  }

  @Test
  void invalidUtf8IsReportedWithThePathOfItsField() {
    EmitEventRequest request =
        Fixtures.emit("sesn_00000000000000000000000000", "first").toBuilder()
            .setEvent(
                Fixtures.userMessage("first").toBuilder()
                    .setUserMessage(
                        Fixtures.userMessage("first").getUserMessage().toBuilder()
                            .addContent(
                                Fixtures.userMessage("BROKEN").getUserMessage().getContent(0))))
            .build();

    EmitEventRequest decoded =
        marshaller.parse(
            new ByteArrayInputStream(RawCalls.corrupt(request.toByteArray(), "BROKEN")));

    InvalidArgumentException problem = Utf8CheckedMarshaller.problemOf(decoded);
    assertThat(problem.field()).isEqualTo("event.user_message.content[1].text.text");
    assertThat(problem.getMessage()).endsWith("is not valid UTF-8");
  }

  @Test
  void bytesThatAreNoMessageAtAllAreReportedAsTheRequest() {
    EmitEventRequest decoded =
        marshaller.parse(new ByteArrayInputStream(new byte[] {(byte) 0xff, 1, 2}));

    assertThat(Utf8CheckedMarshaller.problemOf(decoded).field()).isEqualTo("request");
  }
}
