package dev.corral.api;

import dev.corral.common.VertxContexts;
import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.quarkus.grpc.GlobalInterceptor;
import io.vertx.core.Context;
import io.vertx.core.impl.ContextInternal;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.inject.spi.Prioritized;

/**
 * Cancels a gRPC call whose HTTP/2 connection closes before the call ends. Vert.x's gRPC bridge
 * cancels a call when the client resets its stream, not when the connection goes (a client process
 * killed, a connection closed by {@link ConnectionKeepAlive}): such a call ran on, a stream kept
 * reading the log for nobody and held its tenant's stream slot for good.
 *
 * <p>It is the outermost interceptor, so that the cancel reaches every listener of the call, as a
 * reset would (the credential watch of a stream stops its timer on it). A call whose connection
 * closed before it started is not started. {@link Http2Handlers} remembers each HTTP/2 request's
 * connection on the request's Vert.x context, where the gRPC call then starts.
 */
@GlobalInterceptor
@ApplicationScoped
public class ConnectionCloses implements ServerInterceptor, Prioritized {

  private static final Object CONNECTION = new Object();

  /** Remembers, on the current request's context, the connection (its channel) it came on. */
  static void remember(Channel channel) {
    ContextInternal context = ContextInternal.current();
    if (context != null && context.isDuplicate()) {
      context.putLocal(CONNECTION, channel);
    }
  }

  @Override
  public int getPriority() {
    return Integer.MAX_VALUE;
  }

  @Override
  public <Q, R> ServerCall.Listener<Q> interceptCall(
      ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
    ContextInternal context = ContextInternal.current();
    Channel channel = context == null ? null : context.getLocal(CONNECTION);
    if (channel == null) {
      return next.startCall(call, headers);
    }
    if (!channel.isActive()) {
      return new ServerCall.Listener<>() {}; // nobody is left to answer
    }
    Watched<Q, R> watched = new Watched<>(call, channel, context);
    ServerCall.Listener<Q> listener = next.startCall(watched, headers);
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
  }

  /** A call that hears of its connection's close until it ends. */
  private static final class Watched<Q, R>
      extends ForwardingServerCall.SimpleForwardingServerCall<Q, R> {

    private final Channel channel;
    private final Context context;
    private volatile ChannelFutureListener onClose;
    private volatile boolean ended;

    Watched(ServerCall<Q, R> call, Channel channel, Context context) {
      super(call);
      this.channel = channel;
      this.context = context;
    }

    void watch(ServerCall.Listener<Q> listener) {
      if (ended) {
        return;
      }
      onClose =
          future ->
              VertxContexts.runOn(
                  context,
                  () -> {
                    if (!ended) {
                      ended = true;
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
      ended = true;
      ChannelFutureListener listener = onClose;
      if (listener != null) {
        channel.closeFuture().removeListener(listener);
      }
    }
  }
}
