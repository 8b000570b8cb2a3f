package dev.corral.api;

import io.netty.handler.codec.http2.Http2ConnectionHandler;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpConnection;
import io.vertx.core.impl.ContextInternal;
import io.vertx.core.net.impl.ConnectionBase;
import java.time.Duration;
import org.jboss.logging.Logger;

/**
 * Pings an HTTP/2 connection that has open streams, every interval, and closes it when a ping is
 * not answered within the timeout. A connection without streams is left alone (the HTTP idle
 * timeout closes it), and pings on it would keep it from ever being idle. Closing the socket ends
 * each of its streams as if the client had cancelled it, which gives back their slots.
 *
 * <p>Everything runs on the connection's own event loop. An interval of zero turns it off.
 */
final class ConnectionKeepAlive {

  private static final Logger LOG = Logger.getLogger(ConnectionKeepAlive.class);

  private final ConnectionBase connection;
  private final HttpConnection pinger;
  private final Http2ConnectionHandler http2;
  private final ContextInternal context;
  private final long timeoutMillis;
  private long pings;
  private boolean waiting;

  private ConnectionKeepAlive(
      HttpConnection pinger,
      ConnectionBase connection,
      Http2ConnectionHandler http2,
      long timeoutMillis) {
    this.connection = connection;
    this.pinger = pinger;
    this.http2 = http2;
    this.context = connection.getContext();
    this.timeoutMillis = timeoutMillis;
  }

  /**
   * Starts pinging an HTTP/2 connection: {@code pinger} and {@code connection} are the same
   * connection seen as Vert.x's API and as its implementation, {@code http2} its Netty handler.
   */
  static void start(
      HttpConnection pinger,
      ConnectionBase connection,
      Http2ConnectionHandler http2,
      Duration interval,
      Duration timeout) {
    if (interval.isZero() || interval.isNegative()) {
      return;
    }
    ConnectionKeepAlive keepAlive =
        new ConnectionKeepAlive(pinger, connection, http2, Math.max(1, timeout.toMillis()));
    keepAlive.context.setPeriodic(Math.max(1, interval.toMillis()), keepAlive::tick);
  }

  private void tick(long timer) {
    if (!connection.channel().isActive()) {
      context.owner().cancelTimer(timer);
      return;
    }
    if (waiting || http2.connection().numActiveStreams() == 0) {
      return;
    }
    waiting = true;
    long ping = ++pings;
    pinger.ping(Buffer.buffer().appendLong(ping), answer -> waiting = false);
    context.setTimer(
        timeoutMillis,
        ignored -> {
          if (waiting && pings == ping && connection.channel().isActive()) {
            LOG.debugf(
                "closing %s: a keep-alive ping was not answered in %d ms",
                connection.remoteAddress(), timeoutMillis);
            // from the HTTP/2 handler's place in the pipeline, so not through its close, which
            // would wait for the streams of a client that will never end them
            connection.channelHandlerContext().close();
          }
        });
  }
}
