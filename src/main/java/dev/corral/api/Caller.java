package dev.corral.api;

import dev.corral.identity.Principal;
import io.grpc.Context;

/**
 * The principal of the gRPC call being served, set by {@link AuthInterceptor}. Adapters read it
 * once, at the entry of their method (where the call's context is attached), and pass it on.
 */
final class Caller {

  static final Context.Key<Principal> KEY = Context.key("corral-principal");

  private Caller() {}

  /**
   * The caller of the current call.
   *
   * @throws IllegalStateException if no principal is attached (the interceptor did not run)
   */
  static Principal current() {
    Principal principal = KEY.get();
    if (principal == null) {
      throw new IllegalStateException("no authenticated principal on this call");
    }
    return principal;
  }
}
