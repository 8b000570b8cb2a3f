package dev.corral.identity;

import dev.corral.common.FailedPreconditionException;
import dev.corral.common.IdKind;
import dev.corral.common.InputRules;
import dev.corral.common.Page;
import dev.corral.common.Paging;
import dev.corral.common.PermissionDeniedException;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.ApiKey;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;

/** Creates, lists and revokes API keys of the caller's tenant (or, for operators, of any). */
@ApplicationScoped
public class ApiKeys {

  public static final int MAX_NAME = 128;

  private final ApiKeyRepository repository;
  private final TenantRepository tenants;
  private final Authenticator authenticator;
  private final dev.corral.db.TenantLimits limits;
  private final dev.corral.db.TenantCaps caps;

  ApiKeys(
      ApiKeyRepository repository,
      TenantRepository tenants,
      Authenticator authenticator,
      dev.corral.db.TenantLimits limits,
      dev.corral.db.TenantCaps caps) {
    this.repository = repository;
    this.tenants = tenants;
    this.authenticator = authenticator;
    this.limits = limits;
    this.caps = caps;
  }

  /** A new key and the key itself, which is shown only this once. */
  public record Created(ApiKey record, String key) {

    @Override
    public String toString() {
      return "Created[" + record.getId() + "]";
    }
  }

  public Uni<Created> create(
      Principal caller, String name, dev.corral.proto.v1.Role role, String tenantId) {
    return Uni.createFrom()
        .item(() -> new NewKey(checkName(name), checkRole(caller, role), target(caller, tenantId)))
        .invoke(key -> requireOperatorFor(caller, key.tenant(), key.role()))
        .flatMap(
            key ->
                tenants
                    .ensure(key.tenant())
                    .invoke(
                        tenant -> {
                          if (tenant.hasDisabledAt()) {
                            throw new FailedPreconditionException(
                                "tenant " + tenant.getId() + " is disabled");
                          }
                        })
                    .flatMap(ignored -> insert(caller, key)));
  }

  /** A key of the caller's tenant, or ({@code tenantId}, operators only) of another. */
  public Uni<ApiKey> get(Principal caller, String apiKeyId, String tenantId) {
    return Uni.createFrom()
        .item(() -> keyOf(caller, tenantId, apiKeyId))
        .flatMap(key -> repository.find(key.tenant(), key.id()));
  }

  public Uni<Page<ApiKey>> list(
      Principal caller, int pageSize, String pageToken, boolean includeRevoked, String tenantId) {
    return Uni.createFrom()
        .item(() -> target(caller, tenantId))
        .flatMap(
            tenant -> {
              int size = Paging.pageSize("page_size", pageSize, 20, 100);
              return repository
                  .list(
                      tenant,
                      Paging.keyOf("page_token", pageToken, IdKind.API_KEY::isValid),
                      includeRevoked,
                      size + 1)
                  .map(keys -> Page.of(keys, size, ApiKey::getId));
            });
  }

  /**
   * Revokes a key of the caller's tenant or ({@code tenantId}, operators only) of another; this
   * replica refuses it at once, every other within the re-check interval.
   */
  public Uni<ApiKey> revoke(Principal caller, String apiKeyId, String tenantId) {
    return Uni.createFrom()
        .item(() -> keyOf(caller, tenantId, apiKeyId))
        .call(
            key ->
                repository
                    .find(key.tenant(), key.id())
                    .invoke(
                        found ->
                            requireOperatorFor(
                                caller, key.tenant(), Roles.fromProto("role", found.getRole()))))
        .flatMap(
            key ->
                repository
                    .revoke(key.tenant(), key.id())
                    .flatMap(
                        revoked -> {
                          if (revoked.isEmpty()) {
                            // revoked already: nothing changes, and nothing is forgotten, for
                            // forgetting is not free (every check under way on this replica then
                            // goes uncached: a loop of such calls must not turn the cache off)
                            return repository.find(key.tenant(), key.id());
                          }
                          authenticator.forgetKey(revoked.get().getId());
                          return Uni.createFrom().item(revoked.get());
                        }));
  }

  private Uni<Created> insert(Principal caller, NewKey key) {
    ApiKeySecret secret = ApiKeySecret.generate();
    return limits
        .capped(
            dev.corral.db.TenantLimits.Capped.API_KEYS,
            key.tenant().id(),
            caps.maxApiKeys(),
            connection ->
                repository.insert(
                    connection,
                    IdKind.API_KEY.next(),
                    key.tenant(),
                    secret,
                    key.name(),
                    key.role(),
                    caller.subject(),
                    false))
        .map(record -> new Created(record, secret.reveal()));
  }

  private static String checkName(String name) {
    return InputRules.name("name", name, 1, MAX_NAME);
  }

  private static Role checkRole(Principal caller, dev.corral.proto.v1.Role requested) {
    Role role = Roles.fromProto("role", requested);
    if (!caller.has(role)) {
      throw new PermissionDeniedException(
          "a " + caller.role().wireName() + " cannot create a key with role " + role.wireName());
    }
    return role;
  }

  /**
   * An admin key of the operator tenant makes whoever holds it an operator, so only an operator
   * makes or revokes one: an admin token of that tenant whose subject is not among the operators
   * (corral.auth.oidc.operator-subjects) would otherwise make itself one.
   */
  private void requireOperatorFor(Principal caller, Tenant tenant, Role role) {
    if (authenticator.isOperator(tenant, role) && !caller.operator()) {
      throw new PermissionDeniedException(
          "only operators may make or revoke an admin key of the operator tenant "
              + tenant.id()
              + ", which makes its holder an operator");
    }
  }

  private static Tenant target(Principal caller, String tenantId) {
    if (tenantId.isEmpty()) {
      return caller.tenant();
    }
    Tenant tenant = Tenant.of("tenant_id", tenantId);
    if (!tenant.equals(caller.tenant()) && !caller.operator()) {
      throw new PermissionDeniedException(
          "only operators (admins of the operator tenant) may manage keys of another tenant");
    }
    return tenant;
  }

  private record NewKey(String name, Role role, Tenant tenant) {}

  /** A key named by a request: its id, in the caller's tenant or the one it named. */
  private record KeyOf(Tenant tenant, String id) {}

  private static KeyOf keyOf(Principal caller, String tenantId, String apiKeyId) {
    return new KeyOf(target(caller, tenantId), IdKind.API_KEY.require("api_key_id", apiKeyId));
  }
}
