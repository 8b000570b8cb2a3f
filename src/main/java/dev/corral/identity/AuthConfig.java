package dev.corral.identity;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithConverter;
import io.smallrye.config.WithDefault;
import java.time.Duration;
import java.util.Optional;

/** Authentication and tenants ({@code corral.auth.*}). */
@ConfigMapping(prefix = "corral.auth")
public interface AuthConfig {

  /**
   * Authenticate every call (the default). {@code false} lets every caller act as an admin of the
   * default tenant, and then the server listens on 127.0.0.1 only unless {@link
   * #allowRemoteUnauthenticated()} says otherwise.
   */
  @WithDefault("true")
  @WithConverter(StrictBoolean.class)
  boolean enabled();

  /**
   * With authentication off, listen on {@code quarkus.http.host} (all interfaces by default)
   * instead of 127.0.0.1. A warning is logged at every start.
   */
  @WithDefault("false")
  @WithConverter(StrictBoolean.class)
  boolean allowRemoteUnauthenticated();

  /**
   * How long a checked credential is trusted before it is checked again: a revoked key or a
   * disabled tenant is refused on every replica, and open streams end, within about this interval
   * plus one second.
   */
  @WithDefault("2s")
  Duration recheckInterval();

  /** Credentials whose check is kept in memory at most (beyond that the oldest are dropped). */
  @WithDefault("10000")
  int cacheSize();

  /** The tenant whose admins operate the deployment: tenants, and keys of every tenant. */
  @WithDefault("default")
  String operatorTenant();

  /**
   * An admin key of the operator tenant to accept from the start (for example from a Kubernetes
   * Secret), instead of writing one to {@code $CORRAL_HOME/admin-key} on the first start.
   */
  Optional<String> bootstrapKey();

  /**
   * Write a new admin key of the operator tenant to {@code $CORRAL_HOME/admin-key} at this start,
   * even though keys exist (for a lost key file). Earlier keys stay valid until revoked.
   */
  @WithDefault("false")
  boolean newAdminKey();

  /** Serve gRPC reflection without a credential. */
  @WithDefault("false")
  @WithConverter(StrictBoolean.class)
  boolean publicReflection();

  /** Serve {@code /q/metrics} without a credential (otherwise: any role of the operator tenant). */
  @WithDefault("false")
  @WithConverter(StrictBoolean.class)
  boolean publicMetrics();

  /** OIDC bearer tokens. */
  Oidc oidc();

  /** OIDC bearer tokens ({@code corral.auth.oidc.*}). */
  interface Oidc {

    /** Accept OIDC access tokens (JWTs) besides API keys. Needs the issuer and the audience. */
    @WithDefault("false")
    @WithConverter(StrictBoolean.class)
    boolean enabled();

    /**
     * The issuer's URL; its OpenID configuration ({@code /.well-known/openid-configuration}) names
     * its keys. Tokens of any other issuer are refused.
     */
    Optional<String> issuer();

    /** The audience tokens must name (the {@code aud} claim); required with OIDC. */
    Optional<String> audience();

    /** How far token times ({@code exp}, {@code nbf}, {@code iat}) may be off, in seconds. */
    @WithDefault("30")
    int clockSkewSeconds();

    /** The claim that names the token's tenant. */
    @WithDefault("tenant")
    String tenantClaim();

    /**
     * The claim that holds the token's corral roles (a string or an array; the highest of admin,
     * member and viewer counts). Dots are not paths: {@code realm_access/roles} style paths use
     * slashes.
     */
    @WithDefault("roles")
    String roleClaim();

    /**
     * Subjects ({@code sub}) whose admin tokens in the operator tenant act as operators. Unset: no
     * token does (operators use API keys), since a token's claims are only as safe as the identity
     * provider's control over them.
     */
    Optional<java.util.List<String>> operatorSubjects();

    /**
     * Whether a token naming a tenant corral does not know yet creates it. {@code false}: such a
     * token is refused until an operator creates the tenant ({@code CreateTenant}).
     */
    @WithDefault("true")
    @WithConverter(StrictBoolean.class)
    boolean createTenants();
  }
}
