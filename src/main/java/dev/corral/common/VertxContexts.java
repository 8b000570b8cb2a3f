package dev.corral.common;

import io.vertx.core.Context;
import io.vertx.core.Vertx;

/** Running work on the Vert.x context it belongs to. */
public final class VertxContexts {

  private VertxContexts() {}

  /**
   * Runs {@code action} now when this thread is on {@code context} (or there is none: work that
   * started outside Vert.x), else hands it to {@code context}.
   */
  public static void runOn(Context context, Runnable action) {
    if (context == null || Vertx.currentContext() == context) {
      action.run();
    } else {
      context.runOnContext(ignored -> action.run());
    }
  }
}
