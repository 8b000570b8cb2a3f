package dev.corral.api;

import dev.corral.common.CorralException;
import dev.corral.common.PermissionDeniedException;
import dev.corral.common.UnauthenticatedException;
import dev.corral.identity.AuthConfig;
import dev.corral.identity.Authenticator;
import dev.corral.identity.Principal;
import dev.corral.identity.Role;
import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.StatusRuntimeException;
import io.quarkus.arc.Arc;
import io.quarkus.arc.InjectableContext;
import io.quarkus.arc.ManagedContext;
import io.quarkus.grpc.GlobalInterceptor;
import io.vertx.core.Vertx;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.inject.spi.Prioritized;
import java.util.Iterator;
import java.util.Optional;
import java.util.Set;

/**
 * Authenticates every gRPC call but health (and reflection, when {@code
 * corral.auth.public-reflection} is true), checks the role the RPC needs ({@link MethodRoles}), and
 * attaches the {@link Principal} for the adapters ({@link Caller}). A missing or bad credential is
 * UNAUTHENTICATED, a role too low or a disabled tenant PERMISSION_DENIED; either way the service
 * never sees the call. A check the cache cannot answer runs asynchronously, and the call starts on
 * its own Vert.x context once it is done. Streams are checked again while they last ({@link
 * StreamCredentialWatch}).
 *
 * <p>Runs after Quarkus' own interceptors (which set up the call's contexts): they have higher
 * priorities, and higher runs first.
 */
@ApplicationScoped
@GlobalInterceptor
public class AuthInterceptor implements ServerInterceptor, Prioritized {

  /**
   * Unary calls that can last minutes or hours (a command of up to 24 h, a provision with its
   * setup): their credential is watched as a stream's is, so that a revoked key or a disabled
   * tenant stops them too.
   */
  static final java.util.Set<String> LONG_UNARY =
      java.util.Set.of(
          dev.corral.proto.v1.SandboxServiceGrpc.getExecuteMethod().getFullMethodName(),
          dev.corral.proto.v1.SandboxServiceGrpc.getProvisionMethod().getFullMethodName());

  static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private static final String HEALTH = "grpc.health.v1.Health";
  private static final String HEALTH_CHECK = HEALTH + "/Check";
  private static final Set<String> REFLECTION =
      Set.of("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection");

  private final Authenticator authenticator;
  private final AuthConfig config;
  private final Vertx vertx;

  AuthInterceptor(Authenticator authenticator, AuthConfig config, Vertx vertx) {
    this.authenticator = authenticator;
    this.config = config;
    this.vertx = vertx;
  }

  @Override
  public int getPriority() {
    return 10;
  }

  @Override
  public <Q, R> ServerCall.Listener<Q> interceptCall(
      ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
    MethodDescriptor<Q, R> method = call.getMethodDescriptor();
    String service = method.getServiceName();
    if (HEALTH_CHECK.equals(method.getFullMethodName())
        || (config.publicReflection() && REFLECTION.contains(service))) {
      return next.startCall(call, headers);
    }
    // a health watch is a stream that never ends: it holds what any stream holds, so it is a
    // caller's, not anyone's
    Optional<Role> required =
        REFLECTION.contains(service) || HEALTH.equals(service)
            ? Optional.of(Role.VIEWER)
            : MethodRoles.of(method.getFullMethodName());
    String authorization;
    Principal cached;
    try {
      authorization = single(headers.getAll(AUTHORIZATION));
      cached = authenticator.cached(authorization);
    } catch (CorralException refused) {
      return Rejection.of(call, GrpcErrors.toStatus(refused));
    }
    Call<Q, R> intercepted = new Call<>(call, headers, next, required, authorization);
    if (cached != null) {
      return intercepted.start(cached);
    }
    return intercepted.startLater();
  }

  /** The one authorization value, or null; two are refused rather than guessed between. */
  private static String single(Iterable<String> values) {
    if (values == null) {
      return null;
    }
    Iterator<String> iterator = values.iterator();
    String first = iterator.hasNext() ? iterator.next() : null;
    if (iterator.hasNext()) {
      throw new UnauthenticatedException("the call carries more than one authorization value");
    }
    return first;
  }

  /** One call being authenticated. */
  private final class Call<Q, R> {

    private final ServerCall<Q, R> call;
    private final Metadata headers;
    private final ServerCallHandler<Q, R> next;
    private final Optional<Role> required;
    private final String authorization;

    Call(
        ServerCall<Q, R> call,
        Metadata headers,
        ServerCallHandler<Q, R> next,
        Optional<Role> required,
        String authorization) {
      this.call = call;
      this.headers = headers;
      this.next = next;
      this.required = required;
      this.authorization = authorization;
    }

    /** Starts the call as {@code principal}, if its role allows the RPC. */
    ServerCall.Listener<Q> start(Principal principal) {
      if (required.isEmpty()) {
        return Rejection.of(
            call,
            GrpcErrors.toStatus(new PermissionDeniedException("this RPC is not open to any role")));
      }
      if (!principal.has(required.get())) {
        return Rejection.of(
            call,
            GrpcErrors.toStatus(
                new PermissionDeniedException(
                    "this RPC needs the "
                        + required.get().wireName()
                        + " role; the caller is a "
                        + principal.role().wireName()
                        + " of tenant "
                        + principal.tenant().id())));
      }
      if (MethodRoles.operatorOnly(call.getMethodDescriptor().getFullMethodName())
          && !principal.operator()) {
        return Rejection.of(
            call,
            GrpcErrors.toStatus(
                new PermissionDeniedException(
                    "this RPC is for operators only (admins of the operator tenant)")));
      }
      Context context = Context.current().withValue(Caller.KEY, principal);
      // (a long unary call of a token is not watched: it cannot swap its token when that expires,
      // and a token's tenant disabled ends its sandboxes anyway)
      if ((!call.getMethodDescriptor().getType().serverSendsOneMessage()
              || (LONG_UNARY.contains(call.getMethodDescriptor().getFullMethodName())
                  && principal.kind() == dev.corral.identity.Principal.Kind.API_KEY))
          && authenticator.enabled()) {
        return StreamCredentialWatch.watch(
            call,
            guarded -> Contexts.interceptCall(context, guarded, headers, next),
            authenticator,
            authorization,
            vertx);
      }
      return Contexts.interceptCall(context, call, headers, next);
    }

    /** Checks the credential asynchronously; the call starts on its context when that is done. */
    ServerCall.Listener<Q> startLater() {
      DelayedListener<Q> delayed = new DelayedListener<>();
      io.vertx.core.Context callContext = Vertx.currentContext();
      ManagedContext requestContext = Arc.container().requestContext();
      InjectableContext.ContextState requestState =
          requestContext.isActive() ? requestContext.getState() : null;
      Context grpcContext = Context.current();
      authenticator
          .authenticate(authorization)
          .emitOn(
              action -> {
                if (callContext == null) {
                  action.run();
                } else {
                  callContext.runOnContext(ignored -> action.run());
                }
              })
          .subscribe()
          .with(
              principal ->
                  delayed.setDelegate(
                      within(
                          grpcContext,
                          requestContext,
                          requestState,
                          () -> delayed.cancelled() ? null : start(principal))),
              failure -> delayed.setDelegate(Rejection.of(call, GrpcErrors.toStatus(failure))));
      return delayed;
    }

    private ServerCall.Listener<Q> within(
        Context grpcContext,
        ManagedContext requestContext,
        InjectableContext.ContextState requestState,
        java.util.function.Supplier<ServerCall.Listener<Q>> action) {
      boolean activate = requestState != null && !requestContext.isActive();
      if (activate) {
        requestContext.activate(requestState);
      }
      Context previous = grpcContext.attach();
      try {
        ServerCall.Listener<Q> listener = action.get();
        return listener == null ? new ServerCall.Listener<>() {} : listener;
      } finally {
        grpcContext.detach(previous);
        if (activate) {
          requestContext.deactivate();
        }
      }
    }
  }

  /**
   * Closes a refused call. A client that sends one message is closed once it has sent all of it
   * (closing earlier makes the transport reset a large request's stream, which the client reads as
   * INTERNAL); a client stream is closed at once.
   */
  private static final class Rejection<Q> extends ServerCall.Listener<Q> {

    private final ServerCall<Q, ?> call;
    private final StatusRuntimeException status;
    private boolean closed;

    private Rejection(ServerCall<Q, ?> call, StatusRuntimeException status) {
      this.call = call;
      this.status = status;
    }

    static <Q> ServerCall.Listener<Q> of(ServerCall<Q, ?> call, StatusRuntimeException status) {
      Rejection<Q> rejection = new Rejection<>(call, status);
      if (call.getMethodDescriptor().getType().clientSendsOneMessage()) {
        call.request(1);
      } else {
        rejection.close();
      }
      return rejection;
    }

    @Override
    public void onMessage(Q message) {
      if (!closed) {
        call.request(1);
      }
    }

    @Override
    public void onHalfClose() {
      close();
    }

    @Override
    public void onCancel() {
      closed = true;
    }

    private void close() {
      if (!closed) {
        closed = true;
        Metadata trailers = status.getTrailers() == null ? new Metadata() : status.getTrailers();
        call.close(status.getStatus(), trailers);
      }
    }
  }
}
