package dev.corral.api;

import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPipeline;
import io.netty.handler.codec.http2.Http2ConnectionHandler;
import io.netty.handler.flush.FlushConsolidationHandler;
import io.vertx.core.http.HttpVersion;
import io.vertx.core.net.impl.ConnectionBase;
import io.vertx.ext.web.Router;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.time.Duration;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * Puts corral's two Netty handlers on each HTTP/2 connection, at its first request, just before
 * Vert.x's HTTP/2 handler:
 *
 * <ul>
 *   <li>{@link StreamResetGuard}, which keeps the connection alive when a client resets one stream;
 *   <li>a {@link FlushConsolidationHandler}. Vert.x flushes the socket after every message it
 *       writes outside a read, so each event a live stream delivers was its own {@code writev},
 *       even where fifty subscribers share a connection and get the same event in the same turn of
 *       the event loop. The handler defers a flush to the end of that turn, or to the {@value
 *       #FLUSH_AFTER}th pending one. It sits before Vert.x's handler, so HTTP/2 frames are still
 *       encoded message by message as before and only the socket's flush waits; placed after it,
 *       frames of a stream the client had reset meanwhile were written late and closed the whole
 *       connection (see docs/decisions.md).
 * </ul>
 *
 * <p>It also starts the connection's {@link ConnectionKeepAlive}: a client that vanished without
 * closing its connection (a laptop asleep, a NAT entry dropped) would otherwise hold its streams,
 * and its tenant's stream slots, until TCP gave up on it.
 */
@ApplicationScoped
class Http2Handlers {

  private static final String GUARD = "corral-stream-reset-guard";
  private static final String FLUSHES = "corral-flushes";

  /**
   * At most this many flushes wait for the end of the event loop's turn: the first subscribers of a
   * connection do not wait for the last one's message to be written (measured in the fan-out
   * benchmark: 4 and 64 were slower than 10).
   */
  static final int FLUSH_AFTER = 10;

  private final Duration keepAliveInterval;
  private final Duration keepAliveTimeout;

  Http2Handlers(
      @ConfigProperty(name = "corral.http.keepalive-interval", defaultValue = "30s")
          Duration keepAliveInterval,
      @ConfigProperty(name = "corral.http.keepalive-timeout", defaultValue = "20s")
          Duration keepAliveTimeout) {
    this.keepAliveInterval = keepAliveInterval;
    this.keepAliveTimeout = keepAliveTimeout;
  }

  void install(@Observes Router router) {
    router
        .route()
        .order(Integer.MIN_VALUE)
        .handler(
            request -> {
              if (request.request().version() == HttpVersion.HTTP_2
                  && request.request().connection() instanceof ConnectionBase connection) {
                ConnectionCloses.remember(connection.channel());
                ChannelHandlerContext http2 = connection.channelHandlerContext();
                ChannelPipeline pipeline = http2.pipeline();
                if (pipeline.get(GUARD) == null) {
                  synchronized (pipeline) {
                    if (pipeline.get(GUARD) == null) {
                      pipeline.addBefore(http2.name(), GUARD, StreamResetGuard.INSTANCE);
                      pipeline.addBefore(
                          GUARD, FLUSHES, new FlushConsolidationHandler(FLUSH_AFTER, true));
                      if (http2.handler() instanceof Http2ConnectionHandler streams) {
                        ConnectionKeepAlive.start(
                            request.request().connection(),
                            connection,
                            streams,
                            keepAliveInterval,
                            keepAliveTimeout);
                      }
                    }
                  }
                }
              }
              request.next();
            });
  }
}
