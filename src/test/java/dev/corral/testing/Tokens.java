package dev.corral.testing;

import io.smallrye.jwt.build.Jwt;
import io.smallrye.jwt.build.JwtClaimsBuilder;
import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.Base64;
import java.util.List;

/**
 * OIDC access tokens for tests: good ones signed by the test identity provider's key ({@link
 * OidcTestProfile}), and every kind of bad one.
 */
public final class Tokens {

  public static final String ISSUER = "https://server.example.com";
  public static final String AUDIENCE = "https://corral.example.com";

  private Tokens() {}

  /** A valid token of {@code subject} in {@code tenant} with {@code roles}. */
  public static String of(String subject, String tenant, String... roles) {
    return claims(subject, tenant, roles).jws().keyId("1").sign("privateKey.jwk");
  }

  public static JwtClaimsBuilder claims(String subject, String tenant, String... roles) {
    long now = Instant.now().getEpochSecond();
    JwtClaimsBuilder claims =
        Jwt.issuer(ISSUER)
            .audience(AUDIENCE)
            .subject(subject)
            .issuedAt(now)
            .expiresAt(now + 600)
            .claim("roles", List.of(roles));
    if (tenant != null) {
      claims.claim("tenant", tenant);
    }
    return claims;
  }

  public static String expired(String tenant) {
    long now = Instant.now().getEpochSecond();
    return claims("alice", tenant, "admin")
        .issuedAt(now - 7200)
        .expiresAt(now - 3600)
        .jws()
        .keyId("1")
        .sign("privateKey.jwk");
  }

  /** A token that expired {@code seconds} ago, within the clock skew a server allows. */
  public static String expiredSecondsAgo(String tenant, long seconds) {
    long now = Instant.now().getEpochSecond();
    return claims("alice", tenant, "admin")
        .issuedAt(now - 600)
        .expiresAt(now - seconds)
        .jws()
        .keyId("1")
        .sign("privateKey.jwk");
  }

  public static String notYetValid(String tenant) {
    long now = Instant.now().getEpochSecond();
    return claims("alice", tenant, "admin")
        .claim("nbf", now + 3600)
        .expiresAt(now + 7200)
        .jws()
        .keyId("1")
        .sign("privateKey.jwk");
  }

  public static String issuedInTheFuture(String tenant) {
    long now = Instant.now().getEpochSecond();
    return claims("alice", tenant, "admin")
        .issuedAt(now + 3600)
        .expiresAt(now + 7200)
        .jws()
        .keyId("1")
        .sign("privateKey.jwk");
  }

  public static String wrongIssuer(String tenant) {
    return claims("alice", tenant, "admin")
        .issuer("https://evil.example.com")
        .jws()
        .keyId("1")
        .sign("privateKey.jwk");
  }

  public static String wrongAudience(String tenant) {
    return claims("alice", tenant, "admin")
        .audience("https://someone-else.example.com")
        .jws()
        .keyId("1")
        .sign("privateKey.jwk");
  }

  /** Signed by a key the identity provider does not publish, under its key id. */
  public static String badSignature(String tenant) {
    return claims("alice", tenant, "admin").jws().keyId("1").sign(otherKey().getPrivate());
  }

  public static String unknownKid(String tenant) {
    return claims("alice", tenant, "admin").jws().keyId("nope").sign(otherKey().getPrivate());
  }

  /** The claims of a good token, unsigned, with {@code "alg": "none"}. */
  public static String algNone(String tenant) {
    String good = of("alice", tenant, "admin");
    String payload = good.split("\\.")[1];
    String header =
        Base64.getUrlEncoder()
            .withoutPadding()
            .encodeToString("{\"alg\":\"none\",\"typ\":\"JWT\"}".getBytes(StandardCharsets.UTF_8));
    return header + "." + payload + ".";
  }

  /** A good token's header and claims with the signature of HS256 keyed by the public key. */
  public static String symmetric(String tenant) {
    String good = of("alice", tenant, "admin");
    String[] parts = good.split("\\.");
    String header =
        Base64.getUrlEncoder()
            .withoutPadding()
            .encodeToString(
                "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"1\"}"
                    .getBytes(StandardCharsets.UTF_8));
    return header + "." + parts[1] + "." + parts[2];
  }

  private static KeyPair otherKey() {
    try {
      KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
      generator.initialize(2048);
      return generator.generateKeyPair();
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
