package dev.corral.testing;

import dev.corral.proto.v1.ApiKeyServiceGrpc;
import dev.corral.proto.v1.CreateApiKeyRequest;
import dev.corral.proto.v1.CreateTenantRequest;
import dev.corral.proto.v1.Role;
import dev.corral.proto.v1.TenantServiceGrpc;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.ForwardingClientCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.quarkus.grpc.GlobalInterceptor;
import jakarta.enterprise.context.ApplicationScoped;

/**
 * Sends the test admin key ({@code %test.corral.auth.bootstrap-key}) on every call of the injected
 * gRPC clients that carries no authorization of its own.
 */
@ApplicationScoped
@GlobalInterceptor
public class TestCredentials implements ClientInterceptor {

  /** The admin key of the default tenant in @QuarkusTest tests. */
  public static final String ADMIN_KEY = "crl_testtesttesttesttesttesttesttesttesttesttesttesttest";

  public static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  @Override
  public <Q, R> ClientCall<Q, R> interceptCall(
      MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
    return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
      @Override
      public void start(Listener<R> listener, Metadata headers) {
        if (!headers.containsKey(AUTHORIZATION)) {
          headers.put(AUTHORIZATION, "Bearer " + ADMIN_KEY);
        }
        super.start(listener, headers);
      }
    };
  }

  /** An interceptor that sends {@code authorization} as given (null: none at all). */
  public static ClientInterceptor bearer(String credential) {
    return new ClientInterceptor() {
      @Override
      public <Q, R> ClientCall<Q, R> interceptCall(
          MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
        return new ForwardingClientCall.SimpleForwardingClientCall<>(
            next.newCall(method, options)) {
          @Override
          public void start(Listener<R> listener, Metadata headers) {
            if (credential != null) {
              headers.put(AUTHORIZATION, "Bearer " + credential);
            }
            super.start(listener, headers);
          }
        };
      }
    };
  }

  /**
   * A channel that calls as a member of a new tenant ({@code prefix} and a unique suffix), made
   * with the admin key over {@code channel}.
   */
  public static Channel memberOfNewTenant(Channel channel, String prefix) {
    return memberOfNewTenantNamed(channel, prefix + "-" + System.nanoTime());
  }

  /** A channel that calls as a member of a new tenant named {@code tenant}. */
  public static Channel memberOfNewTenantNamed(Channel channel, String tenant) {
    return ClientInterceptors.intercept(
        channel, bearer(memberKeyOfNewTenantNamed(channel, tenant)));
  }

  /** The API key of a member of a new tenant named {@code tenant}. */
  public static String memberKeyOfNewTenantNamed(Channel channel, String tenant) {
    Channel admin = ClientInterceptors.intercept(channel, bearer(ADMIN_KEY));
    TenantServiceGrpc.newBlockingStub(admin)
        .createTenant(CreateTenantRequest.newBuilder().setTenantId(tenant).build());
    String key =
        ApiKeyServiceGrpc.newBlockingStub(admin)
            .createApiKey(
                CreateApiKeyRequest.newBuilder()
                    .setName("member")
                    .setRole(Role.ROLE_MEMBER)
                    .setTenantId(tenant)
                    .build())
            .getKey();
    return key;
  }
}
