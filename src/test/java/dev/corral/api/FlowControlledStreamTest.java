package dev.corral.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.smallrye.mutiny.Multi;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

class FlowControlledStreamTest {

  @Test
  void aMessageThatCannotBeSentEndsTheStreamAndStopsItsSource() {
    // Given a call whose transport throws at the second message
    Observer call = new Observer(2);
    AtomicBoolean sourceStopped = new AtomicBoolean();
    Multi<String> source =
        Multi.createFrom()
            .items("one", "two", "three")
            .onCancellation()
            .invoke(() -> sourceStopped.set(true));

    // When the stream sends the source's items
    source.subscribe().withSubscriber(new FlowControlledStream<>(call, null));

    // Then the client is told the stream ended, rather than waiting for ever, and the source stops
    assertThat(call.sent).containsExactly("one");
    assertThat(call.closedWith).isNotNull();
    assertThat(call.closedWith.getCode()).isEqualTo(Status.Code.INTERNAL);
    assertThat(call.closedWith.getDescription()).doesNotContain("Exception");
    assertThat(sourceStopped).isTrue();
  }

  @Test
  void aCallClosedUnderTheStreamIsNotToldTwice() {
    // Given a call that throws at every message, and again when it is told of the failure
    Observer call = new Observer(1);
    call.failOnError = true;

    // When the stream sends its first item, nothing escapes to the source
    List<Throwable> escaped = new ArrayList<>();
    Multi.createFrom()
        .items("one", "two")
        .onFailure()
        .invoke(escaped::add)
        .subscribe()
        .withSubscriber(new FlowControlledStream<>(call, null));

    assertThat(call.sent).isEmpty();
    assertThat(escaped).isEmpty();
  }

  /** A ready call that throws at message {@code failAt} (counted from 1). */
  private static final class Observer extends ServerCallStreamObserver<String> {
    final List<String> sent = new ArrayList<>();
    final int failAt;
    boolean failOnError;
    Status closedWith;

    Observer(int failAt) {
      this.failAt = failAt;
    }

    @Override
    public void onNext(String value) {
      if (sent.size() + 1 == failAt) {
        throw new IllegalStateException("call is closed");
      }
      sent.add(value);
    }

    @Override
    public void onError(Throwable t) {
      if (failOnError) {
        throw new IllegalStateException("call already closed");
      }
      closedWith = Status.fromThrowable(t);
    }

    @Override
    public void onCompleted() {}

    @Override
    public boolean isReady() {
      return true;
    }

    @Override
    public void setOnReadyHandler(Runnable onReadyHandler) {}

    @Override
    public boolean isCancelled() {
      return false;
    }

    @Override
    public void setOnCancelHandler(Runnable onCancelHandler) {}

    @Override
    public void setCompression(String compression) {}

    @Override
    public void disableAutoInboundFlowControl() {}

    @Override
    public void request(int count) {}

    @Override
    public void setMessageCompression(boolean enable) {}
  }
}
