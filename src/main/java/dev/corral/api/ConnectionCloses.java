package dev.corral.api;

import dev.corral.common.VertxContexts;
import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.Status;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.vertx.core.Context;
import io.vertx.core.impl.ContextInternal;
import io.vertx.core.net.impl.ConnectionBase;

/**
 * Cancels a gRPC call whose HTTP/2 connection closes before the call ends. Vert.x's gRPC bridge
 * cancels a call when the client resets its stream, not when the connection goes (a client process
 * killed, a connection closed by {@link ConnectionKeepAlive}): such a call ran on, a stream kept
 * reading the log for nobody and held its tenant's stream slot for good.
 *
 * <p>{@link Http2Handlers} remembers each HTTP/2 request's connection on the request's Vert.x
 * context, where the gRPC call then starts.
 */
final class ConnectionCloses {

  private static final Object CONNECTION = new Object();

  private ConnectionCloses() {}

  /** Remembers, on the current request's context, the connection it came on. */
  static void remember(ConnectionBase connection) {
    ContextInternal context = ContextInternal.current();
    if (context != null && context.isDuplicate()) {
      context.putLocal(CONNECTION, connection.channel());
    }
  }

  /** {@code handler}, whose calls are cancelled when their connection closes first. */
  static <Req, Resp> ServerCallHandler<Req, Resp> cancelling(ServerCallHandler<Req, Resp> handler) {
    return (call, headers) -> {
      ContextInternal context = ContextInternal.current();
      Channel channel = context == null ? null : context.getLocal(CONNECTION);
      if (channel == null) {
        return handler.startCall(call, headers);
      }
      Watched<Req, Resp> watched = new Watched<>(call, channel, context);
      ServerCall.Listener<Req> listener = handler.startCall(watched, headers);
      watched.watch(listener);
      // a call that ends without closing (its client cancelled it) stops watching too, or a
      // connection that carries many such calls would hold every one of them until it closes
      return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(listener) {
        @Override
        public void onCancel() {
          watched.unwatch();
          super.onCancel();
        }

        @Override
        public void onComplete() {
          watched.unwatch();
          super.onComplete();
        }
      };
    };
  }

  /** A call that hears of its connection's close until it closes itself. */
  private static final class Watched<Req, Resp>
      extends ForwardingServerCall.SimpleForwardingServerCall<Req, Resp> {

    private final Channel channel;
    private final Context context;
    private volatile ChannelFutureListener onClose;
    private volatile boolean closed;

    Watched(ServerCall<Req, Resp> call, Channel channel, Context context) {
      super(call);
      this.channel = channel;
      this.context = context;
    }

    void watch(ServerCall.Listener<Req> listener) {
      if (closed) {
        return;
      }
      onClose =
          future ->
              VertxContexts.runOn(
                  context,
                  () -> {
                    if (!closed) {
                      closed = true;
                      listener.onCancel();
                    }
                  });
      channel.closeFuture().addListener(onClose);
    }

    @Override
    public void close(Status status, Metadata trailers) {
      unwatch();
      super.close(status, trailers);
    }

    void unwatch() {
      closed = true;
      ChannelFutureListener listener = onClose;
      if (listener != null) {
        channel.closeFuture().removeListener(listener);
      }
    }
  }
}
