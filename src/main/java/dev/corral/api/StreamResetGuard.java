package dev.corral.api;

import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.http2.Http2CodecUtil;
import io.netty.handler.codec.http2.Http2Exception;

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
}
