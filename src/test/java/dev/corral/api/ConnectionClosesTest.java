package dev.corral.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.Status;
import io.netty.channel.embedded.EmbeddedChannel;
import io.vertx.core.Vertx;
import io.vertx.core.impl.ContextInternal;
import java.lang.ref.WeakReference;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** What a call's watch of its connection holds, and when it lets go. */
class ConnectionClosesTest {

  private final Vertx vertx = Vertx.vertx();
  private final EmbeddedChannel connection = new EmbeddedChannel();

  @AfterEach
  void close() throws Exception {
    connection.close();
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void theConnectionsCloseCancelsACallThatIsStillRunning() throws Exception {
    AtomicInteger cancels = new AtomicInteger();
    start(cancels);

    connection.close();

    await().atMost(Duration.ofSeconds(5)).until(() -> cancels.get() == 1);
  }

  @Test
  void aCallTheClientCancelledIsNotHeldByItsConnection() throws Exception {
    // Given a call on a connection that stays open, which its client cancels
    AtomicInteger cancels = new AtomicInteger();
    java.util.concurrent.atomic.AtomicReference<Started> started =
        new java.util.concurrent.atomic.AtomicReference<>(start(cancels));
    WeakReference<Object> call = new WeakReference<>(started.get().call());
    onContext(() -> started.get().listener().onCancel());
    started.set(null);

    // Then nothing of the call is left on the connection once it is gone
    await()
        .atMost(Duration.ofSeconds(10))
        .until(
            () -> {
              System.gc();
              return call.get() == null;
            });
    // and the connection's close later cancels nothing more
    connection.close();
    assertThat(cancels.get()).isEqualTo(1);
  }

  private record Started(ServerCall<String, String> call, ServerCall.Listener<String> listener) {}

  /** A call started through the interceptor on a request context that knows the connection. */
  private Started start(AtomicInteger cancels) throws Exception {
    ContextInternal request = ((ContextInternal) vertx.getOrCreateContext()).duplicate();
    CompletableFuture<Started> started = new CompletableFuture<>();
    request.runOnContext(
        ignored -> {
          ConnectionCloses.remember(connection);
          ServerCall<String, String> call = new NoCall();
          ServerCall.Listener<String> service =
              new ServerCall.Listener<String>() {
                @Override
                public void onCancel() {
                  cancels.incrementAndGet();
                }
              };
          io.grpc.ServerCallHandler<String, String> handler = (watched, headers) -> service;
          ServerCall.Listener<String> listener =
              new ConnectionCloses().interceptCall(call, new Metadata(), handler);
          started.complete(new Started(call, listener));
        });
    return started.get(10, TimeUnit.SECONDS);
  }

  private void onContext(Runnable action) throws Exception {
    CompletableFuture<Void> done = new CompletableFuture<>();
    vertx.runOnContext(
        ignored -> {
          action.run();
          done.complete(null);
        });
    done.get(10, TimeUnit.SECONDS);
  }

  /** A call that does nothing, as the transport would once its client is gone. */
  private static final class NoCall extends ServerCall<String, String> {
    @Override
    public void request(int numMessages) {}

    @Override
    public void sendHeaders(Metadata headers) {}

    @Override
    public void sendMessage(String message) {}

    @Override
    public void close(Status status, Metadata trailers) {}

    @Override
    public boolean isCancelled() {
      return false;
    }

    @Override
    public MethodDescriptor<String, String> getMethodDescriptor() {
      return null;
    }
  }
}
