package dev.corral.api;

import dev.corral.identity.Principal;
import dev.corral.identity.Tenants;
import dev.corral.proto.v1.CreateTenantRequest;
import dev.corral.proto.v1.CreateTenantResponse;
import dev.corral.proto.v1.CredentialKind;
import dev.corral.proto.v1.DisableTenantRequest;
import dev.corral.proto.v1.DisableTenantResponse;
import dev.corral.proto.v1.EnableTenantRequest;
import dev.corral.proto.v1.EnableTenantResponse;
import dev.corral.proto.v1.GetTenantRequest;
import dev.corral.proto.v1.GetTenantResponse;
import dev.corral.proto.v1.ListTenantsRequest;
import dev.corral.proto.v1.ListTenantsResponse;
import dev.corral.proto.v1.MutinyTenantServiceGrpc;
import dev.corral.proto.v1.Role;
import dev.corral.proto.v1.WhoAmIRequest;
import dev.corral.proto.v1.WhoAmIResponse;
import io.grpc.ServerServiceDefinition;
import io.quarkus.grpc.GrpcService;
import io.smallrye.mutiny.Uni;
import java.util.Map;

/** corral.v1.TenantService on top of {@link Tenants}. */
@GrpcService
public class TenantGrpcService extends MutinyTenantServiceGrpc.TenantServiceImplBase {

  private final Tenants tenants;

  TenantGrpcService(Tenants tenants) {
    this.tenants = tenants;
  }

  @Override
  public ServerServiceDefinition bindService() {
    return ServiceDefinitions.rewrite(super.bindService(), Map.of());
  }

  @Override
  public Uni<WhoAmIResponse> whoAmI(WhoAmIRequest request) {
    Principal caller = Caller.current();
    WhoAmIResponse.Builder response =
        WhoAmIResponse.newBuilder()
            .setTenantId(caller.tenant().id())
            .setRole(
                switch (caller.role()) {
                  case VIEWER -> Role.ROLE_VIEWER;
                  case MEMBER -> Role.ROLE_MEMBER;
                  case ADMIN -> Role.ROLE_ADMIN;
                })
            .setCredentialKind(
                switch (caller.kind()) {
                  case API_KEY -> CredentialKind.CREDENTIAL_KIND_API_KEY;
                  case TOKEN -> CredentialKind.CREDENTIAL_KIND_TOKEN;
                  case UNAUTHENTICATED -> CredentialKind.CREDENTIAL_KIND_NONE;
                })
            .setSubject(caller.subject())
            .setOperator(caller.operator());
    if (caller.apiKeyId() != null) {
      response.setApiKeyId(caller.apiKeyId());
    }
    return Uni.createFrom().item(response.build());
  }

  @Override
  public Uni<CreateTenantResponse> createTenant(CreateTenantRequest request) {
    return tenants
        .create(Caller.current(), request.getTenantId())
        .map(tenant -> CreateTenantResponse.newBuilder().setTenant(tenant).build());
  }

  @Override
  public Uni<GetTenantResponse> getTenant(GetTenantRequest request) {
    return tenants
        .get(Caller.current(), request.getTenantId())
        .map(tenant -> GetTenantResponse.newBuilder().setTenant(tenant).build());
  }

  @Override
  public Uni<ListTenantsResponse> listTenants(ListTenantsRequest request) {
    return tenants
        .list(Caller.current(), request.getPageSize(), request.getPageToken())
        .map(
            page ->
                ListTenantsResponse.newBuilder()
                    .addAllTenants(page.items())
                    .setNextPageToken(page.nextPageToken())
                    .build());
  }

  @Override
  public Uni<DisableTenantResponse> disableTenant(DisableTenantRequest request) {
    return tenants
        .disable(Caller.current(), request.getTenantId())
        .map(tenant -> DisableTenantResponse.newBuilder().setTenant(tenant).build());
  }

  @Override
  public Uni<EnableTenantResponse> enableTenant(EnableTenantRequest request) {
    return tenants
        .enable(Caller.current(), request.getTenantId())
        .map(tenant -> EnableTenantResponse.newBuilder().setTenant(tenant).build());
  }
}
