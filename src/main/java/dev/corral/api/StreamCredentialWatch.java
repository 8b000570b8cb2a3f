package dev.corral.api;

import dev.corral.common.VertxContexts;
import dev.corral.identity.Authenticator;
import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import java.util.function.Function;

/**
 * Checks a streaming call's credential again every re-check interval while the call lasts. A key
 * revoked, a tenant disabled or a token expired meanwhile ends the call with UNAUTHENTICATED or
 * PERMISSION_DENIED, and the service's side of it is cancelled. A check that cannot be made (the
 * database or the identity provider is down) leaves the stream open.
 */
final class StreamCredentialWatch<Q, R>
    extends ForwardingServerCall.SimpleForwardingServerCall<Q, R> {

  private final Context context;
  private final Vertx vertx;
  private ServerCall.Listener<Q> listener;
  private long timer = -1;
  private boolean closed;

  private StreamCredentialWatch(ServerCall<Q, R> call, Context context, Vertx vertx) {
    super(call);
    this.context = context;
    this.vertx = vertx;
  }

  /**
   * Starts the call through {@code start} (given the guarded call) and has {@code authenticator}
   * watch its credential ({@link Authenticator#watch}). Runs on the call's Vert.x context.
   */
  static <Q, R> ServerCall.Listener<Q> watch(
      ServerCall<Q, R> call,
      Function<ServerCall<Q, R>, ServerCall.Listener<Q>> start,
      Authenticator authenticator,
      String authorization,
      Vertx vertx) {
    StreamCredentialWatch<Q, R> watch =
        new StreamCredentialWatch<>(call, Vertx.currentContext(), vertx);
    watch.listener = start.apply(watch);
    if (!watch.closed) {
      watch.timer =
          authenticator.watch(
              vertx, authorization, refused -> watch.end(GrpcErrors.toStatus(refused)));
    }
    return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(watch.listener) {
      @Override
      public void onCancel() {
        watch.onContext(watch::stopWatching);
        super.onCancel();
      }

      @Override
      public void onComplete() {
        watch.onContext(watch::stopWatching);
        super.onComplete();
      }
    };
  }

  @Override
  public void close(Status status, Metadata trailers) {
    if (closed) {
      return;
    }
    closed = true;
    stopWatching();
    super.close(status, trailers);
  }

  @Override
  public void sendMessage(R message) {
    if (!closed) {
      super.sendMessage(message);
    }
  }

  private void end(StatusRuntimeException status) {
    if (closed) {
      return;
    }
    close(status.getStatus(), status.getTrailers() == null ? new Metadata() : status.getTrailers());
    listener.onCancel(); // the service stops producing
  }

  private void stopWatching() {
    if (timer >= 0) {
      vertx.cancelTimer(timer);
      timer = -1;
    }
  }

  private void onContext(Runnable action) {
    VertxContexts.runOn(context, action);
  }
}
