package dev.corral.identity;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.corral.common.PermissionDeniedException;
import dev.corral.common.Tenant;
import dev.corral.common.UnauthenticatedException;
import dev.corral.common.UnavailableException;
import io.quarkus.oidc.AccessTokenCredential;
import io.quarkus.oidc.OIDCException;
import io.quarkus.oidc.TenantIdentityProvider;
import io.quarkus.security.identity.SecurityIdentity;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import jakarta.json.JsonString;
import jakarta.json.JsonValue;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Pattern;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.eclipse.microprofile.jwt.JsonWebToken;
import org.jboss.logging.Logger;
import org.jose4j.jwt.consumer.ErrorCodes;
import org.jose4j.jwt.consumer.InvalidJwtException;

/**
 * Checks OIDC access tokens with quarkus-oidc (the issuer's JWKS, discovered and cached; issuer,
 * audience, expiry and not-before with {@code quarkus.oidc.token.lifespan-grace} of clock skew),
 * then reads the tenant and the corral role from the token's claims. Every failure is an {@link
 * UnauthenticatedException} whose message says what was wrong and never quotes the token.
 */
@ApplicationScoped
class TokenVerifier {

  private static final Logger LOGGER = Logger.getLogger(TokenVerifier.class);
  private static final Pattern SHAPE =
      Pattern.compile("[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]*");
  private static final ObjectMapper JSON = new ObjectMapper();

  private final TenantIdentityProvider oidc;
  private final AuthConfig config;
  private final int clockSkewSeconds;

  TokenVerifier(
      TenantIdentityProvider oidc,
      AuthConfig config,
      @ConfigProperty(name = "quarkus.oidc.token.lifespan-grace", defaultValue = "0")
          int clockSkewSeconds) {
    this.oidc = oidc;
    this.config = config;
    this.clockSkewSeconds = clockSkewSeconds;
  }

  /** A checked token: who, in which tenant, with which role, until when. */
  record Verified(String subject, Tenant tenant, Role role, Instant expiresAt) {}

  Uni<Verified> verify(String token) {
    if (!config.oidc().enabled()) {
      return Uni.createFrom()
          .failure(
              new UnauthenticatedException(
                  "bearer tokens are not accepted by this server (corral.auth.oidc.enabled is"
                      + " false); use a corral API key (crl_…)"));
    }
    try {
      checkShape(token);
    } catch (UnauthenticatedException refused) {
      return Uni.createFrom().failure(refused);
    }
    return oidc.authenticate(new AccessTokenCredential(token))
        .onFailure()
        .transform(TokenVerifier::refusal)
        .map(this::verified);
  }

  /** Refuses what is not a signed JWT before any key is looked for. */
  private static void checkShape(String token) {
    if (!SHAPE.matcher(token).matches()) {
      throw new UnauthenticatedException("the bearer token is malformed: it is not a JWT");
    }
    JsonNode header;
    try {
      byte[] bytes = Base64.getUrlDecoder().decode(token.substring(0, token.indexOf('.')));
      header = JSON.readTree(new String(bytes, StandardCharsets.UTF_8));
    } catch (IllegalArgumentException | java.io.IOException e) {
      throw new UnauthenticatedException("the bearer token is malformed: its header is not JSON");
    }
    String algorithm = header == null ? "" : header.path("alg").asText("");
    String upper = algorithm.toUpperCase(Locale.ROOT);
    if (!(upper.startsWith("RS") || upper.startsWith("PS") || upper.startsWith("ES"))
        || upper.equals("NONE")) {
      throw new UnauthenticatedException(
          "the bearer token's algorithm '"
              + (algorithm.length() > 16 ? algorithm.substring(0, 16) : algorithm)
              + "' is not accepted (only RS*, PS* and ES* signatures are)");
    }
    if (token.endsWith(".")) {
      throw new UnauthenticatedException("the bearer token is not signed");
    }
  }

  private Verified verified(SecurityIdentity identity) {
    if (!(identity.getPrincipal() instanceof JsonWebToken jwt)) {
      throw new UnauthenticatedException("the bearer token is not a JWT");
    }
    long now = Instant.now().getEpochSecond();
    long issuedAt = seconds(jwt.getClaim("iat"));
    if (issuedAt > now + clockSkewSeconds) {
      throw new UnauthenticatedException("the bearer token is not yet valid: it was issued later");
    }
    String subject = jwt.getSubject();
    if (subject == null || subject.isEmpty()) {
      throw new UnauthenticatedException("the bearer token has no subject");
    }
    String tenantClaim = config.oidc().tenantClaim();
    Object tenantValue = claim(jwt, tenantClaim);
    String tenantId = tenantValue instanceof String text ? text : null;
    if (tenantId == null) {
      throw new UnauthenticatedException(
          "the bearer token has no '" + tenantClaim + "' claim naming its tenant");
    }
    if (!Tenant.isValid(tenantId)) {
      throw new UnauthenticatedException(
          "the bearer token's '" + tenantClaim + "' claim is not a valid tenant id");
    }
    Role role =
        highestRole(claim(jwt, config.oidc().roleClaim()))
            .orElseThrow(
                () ->
                    new PermissionDeniedException(
                        "the bearer token grants no corral role (admin, member or viewer in its '"
                            + config.oidc().roleClaim()
                            + "' claim)"));
    long expiry = seconds(jwt.getClaim("exp"));
    // the token is taken until its expiry plus the clock skew allowed, as the check above took
    // it: a cached check must not end it sooner than a fresh one would
    return new Verified(
        subject,
        new Tenant(tenantId),
        role,
        expiry > 0 ? Instant.ofEpochSecond(expiry).plusSeconds(clockSkewSeconds) : null);
  }

  private static long seconds(Object claim) {
    if (claim instanceof Number number) {
      return number.longValue();
    }
    if (claim instanceof jakarta.json.JsonNumber number) {
      return number.longValue();
    }
    return 0;
  }

  /** The value at a claim path such as {@code roles} or {@code realm_access/roles}. */
  private static Object claim(JsonWebToken jwt, String path) {
    String[] parts = path.split("/");
    Object value = jwt.getClaim(parts[0]);
    for (int i = 1; i < parts.length && value != null; i++) {
      value = value instanceof JsonObject object ? object.get(parts[i]) : null;
    }
    return plain(value);
  }

  private static Object plain(Object value) {
    if (value instanceof JsonString text) {
      return text.getString();
    }
    if (value instanceof JsonArray array) {
      List<Object> items = new ArrayList<>();
      array.forEach(item -> items.add(plain(item)));
      return items;
    }
    if (value instanceof JsonValue json && json.getValueType() == JsonValue.ValueType.NULL) {
      return null;
    }
    return value;
  }

  private static Optional<Role> highestRole(Object claim) {
    List<Object> names = new ArrayList<>();
    if (claim instanceof Collection<?> many) {
      names.addAll(many);
    } else if (claim instanceof String one) {
      names.addAll(List.of(one.split("[ ,]+")));
    }
    Role best = null;
    for (Object name : names) {
      Optional<Role> role =
          name instanceof String text ? Role.fromWireName(text) : Optional.empty();
      if (role.isPresent() && (best == null || role.get().covers(best))) {
        best = role.get();
      }
    }
    return Optional.ofNullable(best);
  }

  /** What a client is told about a token quarkus-oidc refused. */
  private static RuntimeException refusal(Throwable failure) {
    for (Throwable cause = failure; cause != null; cause = cause.getCause()) {
      if (cause instanceof OIDCException) {
        LOGGER.warnf("The identity provider is unavailable: %s", cause.getMessage());
        return new UnavailableException(
            "the identity provider is unavailable; the token could not be checked", null);
      }
      if (cause instanceof InvalidJwtException invalid) {
        return new UnauthenticatedException("the bearer token " + why(invalid));
      }
      if (cause instanceof org.jose4j.lang.UnresolvableKeyException) {
        return new UnauthenticatedException(
            "the bearer token is signed with a key the issuer does not publish (unknown kid)");
      }
    }
    return new UnauthenticatedException("the bearer token is not valid");
  }

  private static String why(InvalidJwtException invalid) {
    if (invalid.hasExpired()) {
      return "has expired";
    }
    if (invalid.hasErrorCode(ErrorCodes.NOT_YET_VALID)
        || invalid.hasErrorCode(ErrorCodes.ISSUED_AT_INVALID_FUTURE)) {
      return "is not yet valid";
    }
    if (invalid.hasErrorCode(ErrorCodes.ISSUER_INVALID)
        || invalid.hasErrorCode(ErrorCodes.ISSUER_MISSING)) {
      return "has an issuer this server does not accept";
    }
    if (invalid.hasErrorCode(ErrorCodes.AUDIENCE_INVALID)
        || invalid.hasErrorCode(ErrorCodes.AUDIENCE_MISSING)) {
      return "is not meant for this server (audience)";
    }
    if (invalid.hasErrorCode(ErrorCodes.SIGNATURE_INVALID)
        || invalid.hasErrorCode(ErrorCodes.SIGNATURE_MISSING)) {
      return "has an invalid signature";
    }
    for (Throwable cause = invalid.getCause(); cause != null; cause = cause.getCause()) {
      if (cause instanceof org.jose4j.lang.UnresolvableKeyException) {
        return "is signed with a key the issuer does not publish (unknown kid)";
      }
      if (cause instanceof org.jose4j.lang.InvalidAlgorithmException) {
        return "uses an algorithm this server does not accept";
      }
    }
    if (invalid.hasErrorCode(ErrorCodes.JSON_INVALID)
        || invalid.hasErrorCode(ErrorCodes.MALFORMED_CLAIM)) {
      return "is malformed";
    }
    return "is not valid";
  }
}
