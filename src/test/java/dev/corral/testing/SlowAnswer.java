package dev.corral.testing;

import com.sun.net.httpserver.HttpHandler;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/** A test web server's answer that lasts 30 s: a line ("tick N") every 100 ms. */
public final class SlowAnswer {

  private SlowAnswer() {}

  public static HttpHandler handler() {
    return exchange -> {
      exchange.sendResponseHeaders(200, 0);
      try (OutputStream out = exchange.getResponseBody()) {
        for (int i = 0; i < 300; i++) {
          out.write(("tick " + i + "\n").getBytes(StandardCharsets.UTF_8));
          out.flush();
          Thread.sleep(100);
        }
      } catch (InterruptedException | IOException gone) {
        // the client went away
      }
    };
  }
}
