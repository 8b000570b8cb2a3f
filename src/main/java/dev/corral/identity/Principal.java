package dev.corral.identity;

import dev.corral.common.Tenant;
import java.time.Instant;

/**
 * Who makes a request: a tenant, a role in it, and how that was established. Holds no secret.
 *
 * @param subject the OIDC subject, or the API key's id
 * @param apiKeyId the API key's id, or null for a token
 * @param operator whether the principal administers the deployment (an admin of the operator
 *     tenant): it may manage tenants and keys of every tenant
 * @param expiresAt when the credential stops being valid, or null if it does not expire by itself
 */
public record Principal(
    Kind kind,
    Tenant tenant,
    Role role,
    String subject,
    String apiKeyId,
    boolean operator,
    Instant expiresAt) {

  /** How the principal was authenticated. */
  public enum Kind {
    /** A corral API key. */
    API_KEY,
    /** An OIDC bearer token. */
    TOKEN,
    /** Authentication is turned off: every caller is this admin of the default tenant. */
    UNAUTHENTICATED
  }

  /** The principal of every call when authentication is off. */
  public static Principal unauthenticated(String operatorTenant) {
    return new Principal(
        Kind.UNAUTHENTICATED,
        Tenant.DEFAULT,
        Role.ADMIN,
        "anonymous",
        null,
        Tenant.DEFAULT.id().equals(operatorTenant),
        null);
  }

  /** What the events this principal emits record about who emitted them. */
  public dev.corral.proto.v1.EventEmitter emitter() {
    dev.corral.proto.v1.EventEmitter.Builder emitter =
        dev.corral.proto.v1.EventEmitter.newBuilder()
            .setKind(
                switch (kind) {
                  case API_KEY -> dev.corral.proto.v1.EmitterKind.EMITTER_KIND_API_KEY;
                  case TOKEN -> dev.corral.proto.v1.EmitterKind.EMITTER_KIND_TOKEN;
                  case UNAUTHENTICATED ->
                      dev.corral.proto.v1.EmitterKind.EMITTER_KIND_UNAUTHENTICATED;
                })
            .setTenantId(tenant.id())
            .setSubject(subject);
    if (apiKeyId != null) {
      emitter.setApiKeyId(apiKeyId);
    }
    return emitter.build();
  }

  /** Whether the principal may do what {@code required} may. */
  public boolean has(Role required) {
    return role.covers(required);
  }
}
