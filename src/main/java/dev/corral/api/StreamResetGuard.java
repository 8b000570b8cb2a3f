package dev.corral.api;

import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelPipeline;
import io.netty.handler.codec.http2.Http2CodecUtil;
import io.netty.handler.codec.http2.Http2Exception;
import io.vertx.core.http.HttpVersion;
import io.vertx.core.net.impl.ConnectionBase;
import io.vertx.ext.web.Router;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;

/**
 * Keeps an HTTP/2 connection alive when a client resets one stream. Vert.x 4.5 writes a gRPC call's
 * trailers without a listener; when the client reset the stream first (it cancelled, or the answer
 * passed its message limit while the trailers still waited for flow-control window), Netty fails
 * that write with a stream error, fires it down the pipeline, and Vert.x's HTTP/2 handler closes
 * the whole connection (no GOAWAY, or GOAWAY PROTOCOL_ERROR "Request stream N is not correct for
 * server connection"), killing every other call on it. Netty has already reset that stream, so the
 * guard, placed just before Vert.x's handler, drops such stream-scoped errors and passes every
 * other on. See docs/decisions.md.
 */
@ChannelHandler.Sharable
final class StreamResetGuard extends ChannelInboundHandlerAdapter {

  static final StreamResetGuard INSTANCE = new StreamResetGuard();
  private static final String NAME = "corral-stream-reset-guard";

  @Override
  public void exceptionCaught(ChannelHandlerContext context, Throwable cause) {
    if (!isStreamScoped(cause)) {
      context.fireExceptionCaught(cause);
    }
  }

  static boolean isStreamScoped(Throwable cause) {
    if (Http2CodecUtil.getEmbeddedHttp2Exception(cause) instanceof Http2Exception.StreamException) {
      return true; // "Stream closed before write could take place": queued trailers, then a reset
    }
    // A write to a stream the reset removed already.
    return (cause instanceof IllegalStateException || cause instanceof IllegalArgumentException)
        && cause.getMessage() != null
        && cause.getMessage().startsWith("Stream no longer exists");
  }

  /** Installs the guard on each HTTP/2 connection, at its first request. */
  @ApplicationScoped
  static class Installer {
    void install(@Observes Router router) {
      router
          .route()
          .order(Integer.MIN_VALUE)
          .handler(
              request -> {
                if (request.request().version() == HttpVersion.HTTP_2
                    && request.request().connection() instanceof ConnectionBase connection) {
                  ChannelHandlerContext http2 = connection.channelHandlerContext();
                  ChannelPipeline pipeline = http2.pipeline();
                  if (pipeline.get(NAME) == null) {
                    synchronized (pipeline) {
                      if (pipeline.get(NAME) == null) {
                        pipeline.addBefore(http2.name(), NAME, INSTANCE);
                      }
                    }
                  }
                }
                request.next();
              });
    }
  }
}
