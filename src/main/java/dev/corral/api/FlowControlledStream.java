package dev.corral.api;

import dev.corral.common.VertxContexts;
import io.grpc.ServerCallHandler;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.ServerCalls;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.subscription.MultiSubscriber;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import java.util.concurrent.Flow;
import java.util.function.Function;
import org.jboss.logging.Logger;

/**
 * Bridges a {@link Multi} to a server-streaming call with real flow control: it requests one item
 * at a time, and only while the transport is ready to send, so a slow client slows the source
 * instead of growing a buffer. (Quarkus' default bridge requests everything and spins while the
 * transport is not ready.) All calls on the observer happen on the call's Vert.x context.
 *
 * @param <T> the response messages
 */
final class FlowControlledStream<T> implements MultiSubscriber<T> {

  private static final Logger LOG = Logger.getLogger(FlowControlledStream.class);

  private final ServerCallStreamObserver<T> observer;
  private final Context context;
  private Flow.Subscription subscription;
  private boolean requested;
  private boolean done;

  FlowControlledStream(ServerCallStreamObserver<T> observer, Context context) {
    this.observer = observer;
    this.context = context;
  }

  /** A handler that streams what {@code source} returns for each request. */
  static <Req, Resp> ServerCallHandler<Req, Resp> handler(Function<Req, Multi<Resp>> source) {
    return ServerCalls.asyncServerStreamingCall(
        (request, responses) -> {
          ServerCallStreamObserver<Resp> observer = (ServerCallStreamObserver<Resp>) responses;
          Context context = Vertx.currentContext();
          Multi<Resp> items;
          try {
            items = source.apply(request);
          } catch (RuntimeException failure) {
            observer.onError(GrpcErrors.toStatus(failure));
            return;
          }
          FlowControlledStream<Resp> stream = new FlowControlledStream<>(observer, context);
          // The observer accepts handlers only before this method returns.
          observer.setOnReadyHandler(() -> stream.onContext(stream::requestIfReady));
          observer.setOnCancelHandler(() -> stream.onContext(stream::cancel));
          items.subscribe().withSubscriber(stream);
        });
  }

  @Override
  public void onSubscribe(Flow.Subscription subscription) {
    onContext(
        () -> {
          this.subscription = subscription;
          if (done) {
            subscription.cancel();
          } else {
            requestIfReady();
          }
        });
  }

  @Override
  public void onItem(T item) {
    onContext(
        () -> {
          requested = false;
          if (done) {
            return;
          }
          try {
            observer.onNext(item);
          } catch (RuntimeException failure) {
            // A write that throws (a message that cannot be serialized, a call the transport has
            // closed) would otherwise leave the stream waiting for an item it never requests.
            unsent(failure);
            return;
          }
          requestIfReady();
        });
  }

  private void unsent(RuntimeException failure) {
    LOG.errorf(failure, "a stream's message could not be sent; the stream ends");
    cancel();
    try {
      observer.onError(
          io.grpc.Status.INTERNAL
              .withDescription("the server could not send the stream's next message")
              .asRuntimeException());
    } catch (RuntimeException closed) {
      LOG.debugf(closed, "the stream was already closed");
    }
  }

  @Override
  public void onFailure(Throwable failure) {
    onContext(
        () -> {
          if (!done) {
            done = true;
            observer.onError(GrpcErrors.toStatus(failure));
          }
        });
  }

  @Override
  public void onCompletion() {
    onContext(
        () -> {
          if (done) {
            return;
          }
          done = true;
          observer.onCompleted();
        });
  }

  private void requestIfReady() {
    if (!done && !requested && subscription != null && observer.isReady()) {
      requested = true;
      subscription.request(1);
    }
  }

  private void cancel() {
    done = true;
    if (subscription != null) {
      subscription.cancel();
    }
  }

  private void onContext(Runnable action) {
    VertxContexts.runOn(context, action);
  }
}
