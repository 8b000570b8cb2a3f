package dev.corral.identity;

import dev.corral.common.FailedPreconditionException;
import dev.corral.common.Page;
import dev.corral.common.Paging;
import dev.corral.common.PermissionDeniedException;
import dev.corral.common.Tenant;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Event;

/** The deployment's tenants, managed by operators. */
@ApplicationScoped
public class Tenants {

  private final TenantRepository repository;
  private final Authenticator authenticator;
  private final AuthConfig config;
  private final Event<TenantDisabled> disabled;

  Tenants(
      TenantRepository repository,
      Authenticator authenticator,
      AuthConfig config,
      Event<TenantDisabled> disabled) {
    this.repository = repository;
    this.authenticator = authenticator;
    this.config = config;
    this.disabled = disabled;
  }

  public Uni<dev.corral.proto.v1.Tenant> create(Principal caller, String tenantId) {
    return Uni.createFrom().item(() -> operatorNamed(caller, tenantId)).flatMap(repository::ensure);
  }

  public Uni<dev.corral.proto.v1.Tenant> get(Principal caller, String tenantId) {
    return Uni.createFrom()
        .item(() -> operatorNamed(caller, tenantId))
        .flatMap(
            tenant ->
                repository
                    .find(tenant)
                    .map(
                        found ->
                            found.orElseThrow(
                                () ->
                                    new dev.corral.common.NotFoundException(
                                        "tenant", tenant.id()))));
  }

  public Uni<Page<dev.corral.proto.v1.Tenant>> list(
      Principal caller, int pageSize, String pageToken) {
    return Uni.createFrom()
        .item(
            () -> {
              requireOperator(caller);
              return Paging.pageSize("page_size", pageSize, 20, 100);
            })
        .flatMap(
            size ->
                repository
                    .list(Paging.keyOf("page_token", pageToken, Tenant::isValid), size + 1)
                    .map(tenants -> Page.of(tenants, size, dev.corral.proto.v1.Tenant::getId)));
  }

  /**
   * Disables a tenant: this replica refuses its credentials at once, every other soon after. What
   * it runs stops too: its harness runs at their next lease renewal, its sandboxes at the next
   * reconciler pass (at once on this replica).
   */
  public Uni<dev.corral.proto.v1.Tenant> disable(Principal caller, String tenantId) {
    return Uni.createFrom()
        .item(
            () -> {
              Tenant tenant = operatorNamed(caller, tenantId);
              if (tenant.id().equals(config.operatorTenant())) {
                throw new FailedPreconditionException(
                    "the operator tenant " + tenant.id() + " cannot be disabled");
              }
              return tenant;
            })
        .flatMap(tenant -> repository.setDisabled(tenant, true))
        .invoke(
            tenant -> {
              authenticator.forgetTenant(new Tenant(tenant.getId()));
              disabled.fire(new TenantDisabled(new Tenant(tenant.getId())));
            });
  }

  public Uni<dev.corral.proto.v1.Tenant> enable(Principal caller, String tenantId) {
    return Uni.createFrom()
        .item(() -> operatorNamed(caller, tenantId))
        .flatMap(tenant -> repository.setDisabled(tenant, false))
        .invoke(tenant -> authenticator.forgetTenant(new Tenant(tenant.getId())));
  }

  private static Tenant operatorNamed(Principal caller, String tenantId) {
    requireOperator(caller);
    return Tenant.of("tenant_id", tenantId);
  }

  private static void requireOperator(Principal caller) {
    if (!caller.operator()) {
      throw new PermissionDeniedException(
          "only operators (admins of the operator tenant) may manage tenants");
    }
  }
}
