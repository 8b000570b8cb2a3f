package dev.corral.identity;

import dev.corral.common.CorralHome;
import dev.corral.common.IdKind;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.ApiKey;
import io.quarkus.runtime.StartupEvent;
import io.smallrye.health.api.AsyncHealthCheck;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.infrastructure.Infrastructure;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;
import org.jboss.logging.Logger;

/**
 * Makes sure an operator can get in. On the first start (no API key exists yet) it creates an admin
 * key of the operator tenant and writes it to {@code $CORRAL_HOME/admin-key} (mode 0600), logging
 * the file's path and never the key. With {@code corral.auth.bootstrap-key} set (from a Kubernetes
 * Secret, say) it accepts that key instead and writes nothing. The replica is not ready until this
 * is done.
 */
@Readiness
@ApplicationScoped
class AdminKeyBootstrap implements AsyncHealthCheck {

  private static final Logger LOGGER = Logger.getLogger(AdminKeyBootstrap.class);
  static final String FILE = "admin-key";
  private static final String NAME = "corral authentication";

  private final AuthConfig config;
  private final ApiKeyRepository keys;
  private final TenantRepository tenants;
  private final Optional<String> home;
  private final AdminKeySettled settled;
  private final AtomicReference<String> state = new AtomicReference<>("starting");

  AdminKeyBootstrap(
      AuthConfig config,
      ApiKeyRepository keys,
      TenantRepository tenants,
      @ConfigProperty(name = "corral.home") Optional<String> home,
      AdminKeySettled settled) {
    this.config = config;
    this.keys = keys;
    this.tenants = tenants;
    this.home = home;
    this.settled = settled;
  }

  void start(@Observes StartupEvent event) {
    if (config.enabled() && config.oidc().enabled()) {
      if (config.oidc().issuer().isEmpty() || config.oidc().audience().isEmpty()) {
        throw new IllegalStateException(
            "corral.auth.oidc.enabled needs corral.auth.oidc.issuer and corral.auth.oidc.audience"
                + " (CORRAL_AUTH_OIDC_ISSUER, CORRAL_AUTH_OIDC_AUDIENCE)");
      }
      if (checksNoAudience(config.oidc().audience().get())) {
        throw new IllegalStateException(
            "corral.auth.oidc.audience may not be 'any': name the audience corral's tokens carry");
      }
      LOGGER.infof(
          "Accepting OIDC tokens of %s for audience %s (tenant claim '%s', role claim '%s')",
          config.oidc().issuer().get(),
          config.oidc().audience().get(),
          config.oidc().tenantClaim(),
          config.oidc().roleClaim());
    }
    if (!config.enabled()) {
      if (config.allowRemoteUnauthenticated()) {
        LOGGER.warn(
            "Authentication is OFF and the server listens on every interface"
                + " (corral.auth.allow-remote-unauthenticated): anyone who reaches its port is an"
                + " admin");
      } else {
        LOGGER.warn(
            "Authentication is OFF (corral.auth.enabled=false): the server listens on 127.0.0.1"
                + " only, and every caller is an admin of the default tenant");
      }
      state.set("ready");
      settled.settle();
      return;
    }
    bootstrap()
        .subscribe()
        .with(
            ignored -> {
              state.set("ready");
              settled.settle();
            },
            failure -> {
              // the readiness answer is public: what failed is in the log, not on the wire
              state.set("failed (see the server's log)");
              settled.settle();
              LOGGER.errorf(
                  "The first admin API key could not be set up: %s", failure.getMessage());
            });
  }

  /**
   * Whether quarkus-oidc would read {@code audience} as "check no audience" ({@code any}): a token
   * the issuer made for any other application would then be taken.
   */
  static boolean checksNoAudience(String audience) {
    return java.util.Arrays.stream(audience.split(","))
        .anyMatch(one -> one.strip().equalsIgnoreCase("any"));
  }

  @Override
  public Uni<HealthCheckResponse> call() {
    String now = state.get();
    return Uni.createFrom()
        .item(
            HealthCheckResponse.named(NAME)
                .status("ready".equals(now))
                .withData("state", now)
                .build());
  }

  private Uni<Void> bootstrap() {
    Tenant operator = new Tenant(config.operatorTenant());
    return tenants
        .ensure(operator)
        .flatMap(
            ignored ->
                config.bootstrapKey().isPresent()
                    ? acceptConfiguredKey(operator, config.bootstrapKey().get())
                    : writeFirstKey(operator));
  }

  /** The key from the configuration is an admin key of the operator tenant. */
  private Uni<Void> acceptConfiguredKey(Tenant operator, String key) {
    if (!ApiKeySecret.isWellFormed(key)) {
      return Uni.createFrom()
          .failure(
              new IllegalArgumentException(
                  "corral.auth.bootstrap-key is not a corral API key (crl_ and 52 characters of"
                      + " [0-9a-z] without i, l, o, u)"));
    }
    ApiKeySecret secret = ApiKeySecret.of(key);
    return keys.underBootstrapLock(
        connection ->
            keys.findByHash(connection, secret.hash())
                .flatMap(
                    existing ->
                        existing.isPresent()
                            ? Uni.createFrom()
                                .voidItem()
                                .invoke(() -> warnIfRevoked(existing.get()))
                            : keys.insert(
                                    connection,
                                    IdKind.API_KEY.next(),
                                    operator,
                                    secret,
                                    "bootstrap (corral.auth.bootstrap-key)",
                                    Role.ADMIN,
                                    "corral",
                                    true)
                                .invoke(
                                    created ->
                                        LOGGER.infof(
                                            "Accepted corral.auth.bootstrap-key as admin key %s of"
                                                + " tenant %s",
                                            created.getId(), operator.id()))
                                .replaceWithVoid()));
  }

  /**
   * A revoked bootstrap key stays revoked: the start goes on (other keys may be in use) and says
   * so, rather than bringing it back or failing every later start.
   */
  private static void warnIfRevoked(ApiKey key) {
    if (key.hasRevokedAt()) {
      LOGGER.warnf(
          "corral.auth.bootstrap-key is admin key %s, which was revoked: it stays revoked and lets"
              + " no one in. Remove it from the configuration, or set a new one.",
          key.getId());
    }
  }

  /** On the first start (or when asked), a new admin key, written to the key file. */
  private Uni<Void> writeFirstKey(Tenant operator) {
    Path file = CorralHome.resolve(home.orElse("")).resolve(FILE);
    ApiKeySecret secret = ApiKeySecret.generate();
    return keys.underBootstrapLock(
            connection ->
                keys.anyKey(connection)
                    .flatMap(
                        any ->
                            any && !config.newAdminKey()
                                ? Uni.createFrom().item(false)
                                : keys.insert(
                                        connection,
                                        IdKind.API_KEY.next(),
                                        operator,
                                        secret,
                                        "admin (first start)",
                                        Role.ADMIN,
                                        "corral",
                                        true)
                                    .replaceWith(true)))
        .flatMap(
            created ->
                created
                    ? write(file, secret)
                    : Uni.createFrom()
                        .voidItem()
                        .invoke(
                            () ->
                                LOGGER.infof(
                                    "Authentication is on. The admin API key made at the first"
                                        + " start is in %s (if that file is gone, start once with"
                                        + " CORRAL_AUTH_NEW_ADMIN_KEY=true)",
                                    file)));
  }

  private static Uni<Void> write(Path file, ApiKeySecret secret) {
    return Uni.createFrom()
        .item(
            () -> {
              writeOwnerOnly(file, secret.reveal() + "\n");
              return (Void) null;
            })
        .runSubscriptionOn(Infrastructure.getDefaultWorkerPool())
        .invoke(
            () ->
                LOGGER.infof(
                    "Authentication is on. Wrote a new admin API key to %s (mode 0600); send it as"
                        + " 'authorization: Bearer <key>'",
                    file));
  }

  static void writeOwnerOnly(Path file, String content) {
    try {
      Files.createDirectories(file.getParent());
      Path temporary = file.resolveSibling(file.getFileName() + ".tmp");
      Files.deleteIfExists(temporary);
      Files.createFile(
          temporary,
          PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
      Files.writeString(temporary, content, StandardCharsets.UTF_8, StandardOpenOption.WRITE);
      Files.move(
          temporary,
          file,
          java.nio.file.StandardCopyOption.REPLACE_EXISTING,
          java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
    }
  }
}
