package dev.corral.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.UnknownFieldSet;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.EventDelta;
import dev.corral.proto.v1.StreamEventsResponse;
import dev.corral.proto.v1.UserInterrupt;
import io.grpc.MethodDescriptor;
import io.grpc.protobuf.ProtoUtils;
import java.io.IOException;
import java.io.InputStream;
import org.junit.jupiter.api.Test;

class SharedEventMarshallerTest {

  private final SharedEventMarshaller marshaller =
      new SharedEventMarshaller(
          (MethodDescriptor.PrototypeMarshaller<StreamEventsResponse>)
              ProtoUtils.marshaller(StreamEventsResponse.getDefaultInstance()));

  /** As the transport takes them: drained. */
  private static byte[] bytes(InputStream stream) throws IOException {
    java.io.ByteArrayOutputStream drained = new java.io.ByteArrayOutputStream();
    int length = ((io.grpc.Drainable) stream).drainTo(drained);
    assertThat(length).isEqualTo(drained.size());
    assertThat(((io.grpc.KnownLength) stream).available()).isZero();
    return drained.toByteArray();
  }

  private static Event event(long seq) {
    return Event.newBuilder()
        .setSeq(seq)
        .setSessionId("sesn_1")
        .setUserInterrupt(UserInterrupt.getDefaultInstance())
        .build();
  }

  @Test
  void everyMessageIsWrittenAsItsOwnBytes() throws IOException {
    Event first = event(1);
    Event second = event(2);
    StreamEventsResponse[] messages = {
      StreamEventsResponse.newBuilder().setEvent(first).build(),
      StreamEventsResponse.newBuilder().setEvent(first).build(), // same event, another message
      StreamEventsResponse.newBuilder().setEvent(second).build(),
      StreamEventsResponse.newBuilder().setEvent(event(1)).build(), // equal event, another object
      StreamEventsResponse.newBuilder().setDelta(EventDelta.newBuilder().setType("x")).build(),
      StreamEventsResponse.newBuilder()
          .setEvent(second)
          .setUnknownFields(
              UnknownFieldSet.newBuilder()
                  .addField(99, UnknownFieldSet.Field.newBuilder().addVarint(7).build())
                  .build())
          .build(),
      StreamEventsResponse.newBuilder().setEvent(second).build(),
    };
    for (StreamEventsResponse message : messages) {
      byte[] written = bytes(marshaller.stream(message));
      assertThat(written).isEqualTo(message.toByteArray());
      assertThat(marshaller.parse(new java.io.ByteArrayInputStream(written))).isEqualTo(message);
    }
  }

  @Test
  void theMessageHoldsNothingButItsItem() {
    // The shared bytes stand for the whole message only while the message has no field outside
    // its one item: a field added to StreamEventsResponse must be written per message.
    assertThat(StreamEventsResponse.getDescriptor().getFields())
        .allSatisfy(field -> assertThat(field.getContainingOneof()).isNotNull());
  }
}
