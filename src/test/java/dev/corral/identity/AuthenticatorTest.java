package dev.corral.identity;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.corral.common.PermissionDeniedException;
import dev.corral.common.Tenant;
import dev.corral.common.UnauthenticatedException;
import io.smallrye.mutiny.Uni;
import java.time.Clock;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class AuthenticatorTest {

  private static final String KEY = "crl_" + "k".repeat(52);

  private final AtomicLong now = new AtomicLong();
  private final AtomicInteger lookups = new AtomicInteger();
  private final Map<String, ApiKeyRepository.Live> live = new ConcurrentHashMap<>();
  private volatile java.util.concurrent.CompletableFuture<Void> database =
      java.util.concurrent.CompletableFuture.completedFuture(null);
  private final AdminKeySettled adminKeySettled = settled();
  private final Authenticator authenticator = authenticator(100);

  @Test
  void aKeyIsCheckedOncePerIntervalAndARevocationIsSeenAfterIt() {
    // Given
    live.put(hex(KEY), new ApiKeyRepository.Live("key_1", new Tenant("acme"), Role.MEMBER, false));
    assertThat(authenticate("Bearer " + KEY).tenant()).isEqualTo(new Tenant("acme"));
    assertThat(authenticate("Bearer " + KEY).role()).isEqualTo(Role.MEMBER);
    assertThat(lookups).hasValue(1);

    // When the key is revoked elsewhere
    live.clear();

    // Then it is still trusted within the interval, and refused after it
    now.addAndGet(Duration.ofMillis(1900).toNanos());
    assertThat(authenticate("Bearer " + KEY).apiKeyId()).isEqualTo("key_1");
    now.addAndGet(Duration.ofMillis(200).toNanos());
    assertThatThrownBy(() -> authenticate("Bearer " + KEY))
        .isInstanceOf(UnauthenticatedException.class)
        .hasMessageContaining("unknown or revoked");
    assertThat(lookups).hasValue(2);
    // and the refusal is kept as the check was: no lookup for the next call within the interval
    assertThatThrownBy(() -> authenticate("Bearer " + KEY))
        .isInstanceOf(UnauthenticatedException.class);
    assertThat(lookups).hasValue(2);
  }

  @Test
  void callsThatFindAKeysCheckStaleTogetherShareOneCheck() throws Exception {
    // Given a key in use, whose check has gone stale, and a database that is slow to answer
    live.put(hex(KEY), new ApiKeyRepository.Live("key_1", new Tenant("acme"), Role.MEMBER, false));
    authenticate("Bearer " + KEY);
    now.addAndGet(Duration.ofSeconds(3).toNanos());
    database = new java.util.concurrent.CompletableFuture<>();

    // When sixteen calls arrive before it answers
    List<java.util.concurrent.CompletableFuture<Principal>> calls = new java.util.ArrayList<>();
    for (int i = 0; i < 16; i++) {
      calls.add(authenticator.authenticate("Bearer " + KEY).subscribeAsCompletionStage());
    }
    database.complete(null);

    // Then every call has its answer, from one check
    for (var call : calls) {
      assertThat(call.get(1, java.util.concurrent.TimeUnit.SECONDS).apiKeyId()).isEqualTo("key_1");
    }
    assertThat(lookups).hasValue(2);
    // and the next stale check is a check of its own
    now.addAndGet(Duration.ofSeconds(3).toNanos());
    authenticate("Bearer " + KEY);
    assertThat(lookups).hasValue(3);
  }

  @Test
  void aKeyCheckedBeforeTheStartHasSetUpItsAdminKeyWaitsForIt() throws Exception {
    // Given a replica whose start is still setting up its configured admin key
    AdminKeySettled starting = new AdminKeySettled();
    Authenticator authenticator =
        new Authenticator(
            config(100, true),
            keys(),
            null,
            new TokenVerifier(null, config(100, true), 0),
            starting,
            Clock.systemUTC(),
            now::get);

    // When a call with that key arrives first
    var call = authenticator.authenticate("Bearer " + KEY).subscribeAsCompletionStage();

    // Then it waits (the database answers at once, so a lookup would have ended the call), and
    // is let in once the key is there
    assertThat(call).isNotDone();
    assertThat(lookups).hasValue(0);
    live.put(
        hex(KEY), new ApiKeyRepository.Live("key_1", new Tenant("default"), Role.ADMIN, false));
    starting.settle();
    assertThat(call.get(1, java.util.concurrent.TimeUnit.SECONDS).role()).isEqualTo(Role.ADMIN);
    assertThat(lookups).hasValue(1);
  }

  @Test
  void aDisabledTenantsKeyIsPermissionDenied() {
    live.put(hex(KEY), new ApiKeyRepository.Live("key_1", new Tenant("acme"), Role.ADMIN, true));
    assertThatThrownBy(() -> authenticate("Bearer " + KEY))
        .isInstanceOf(PermissionDeniedException.class)
        .hasMessageContaining("tenant acme is disabled");
  }

  @Test
  void aFloodOfBadKeysStaysWithinTheCacheAndCostsOneLookupPerKeyAndInterval() {
    for (int i = 0; i < 1000; i++) {
      String key = "crl_" + String.format("%052d", i).replace('1', 'a').replace('0', 'b');
      assertThatThrownBy(() -> authenticate("Bearer " + key))
          .isInstanceOf(UnauthenticatedException.class);
      assertThat(authenticator.cachedChecks()).isLessThanOrEqualTo(100);
    }
    int afterFlood = lookups.get();
    String repeated = "crl_" + "b".repeat(52);
    for (int i = 0; i < 10; i++) {
      assertThatThrownBy(() -> authenticate("Bearer " + repeated))
          .isInstanceOf(UnauthenticatedException.class);
    }
    assertThat(lookups.get() - afterFlood).isLessThanOrEqualTo(1);
  }

  @Test
  void aFloodOfMadeUpKeysNeitherEvictsAKnownKeyNorHoldsTheDatabase() throws Exception {
    // Given a key in use, checked once
    live.put(hex(KEY), new ApiKeyRepository.Live("key_1", new Tenant("acme"), Role.MEMBER, false));
    authenticate("Bearer " + KEY);
    assertThat(lookups).hasValue(1);

    // When a thousand made-up keys are refused
    for (int i = 0; i < 1000; i++) {
      String key = "crl_" + String.format("%052d", i).replace('1', 'a').replace('0', 'b');
      assertThatThrownBy(() -> authenticate("Bearer " + key))
          .isInstanceOf(UnauthenticatedException.class);
    }

    // Then the known key's check is still kept: no lookup for it
    int afterFlood = lookups.get();
    assertThat(authenticate("Bearer " + KEY).apiKeyId()).isEqualTo("key_1");
    assertThat(lookups).hasValue(afterFlood);

    // And when the database is slow, made-up keys beyond the checks allowed at once are turned
    // away without a lookup, while the known key's stale check is made again, past that bound
    database = new java.util.concurrent.CompletableFuture<>();
    int before = lookups.get();
    int unavailable = 0;
    for (int i = 0; i < Authenticator.MAX_CHECKS_IN_FLIGHT + 50; i++) {
      String key = "crl_" + String.format("%052d", i).replace('1', 'c').replace('0', 'd');
      var call = authenticator.authenticate("Bearer " + key).subscribeAsCompletionStage();
      if (call.isCompletedExceptionally()) {
        assertThatThrownBy(call::join)
            .hasCauseInstanceOf(dev.corral.common.UnavailableException.class);
        unavailable++;
      }
    }
    assertThat(unavailable).isEqualTo(50);
    assertThat(lookups.get() - before).isEqualTo(Authenticator.MAX_CHECKS_IN_FLIGHT);
    now.addAndGet(Duration.ofSeconds(3).toNanos()); // its check is stale by now
    var known = authenticator.authenticate("Bearer " + KEY).subscribeAsCompletionStage();
    assertThat(lookups.get() - before).isEqualTo(Authenticator.MAX_CHECKS_IN_FLIGHT + 1);
    database.complete(null);
    assertThat(known.get(10, java.util.concurrent.TimeUnit.SECONDS).apiKeyId()).isEqualTo("key_1");
  }

  @Test
  void aKeyRevokedElsewhereIsRefusedThroughAFloodOfMadeUpKeys() throws Exception {
    // Given a key in use, checked once, then revoked on another replica (this one is not told)
    live.put(hex(KEY), new ApiKeyRepository.Live("key_1", new Tenant("acme"), Role.MEMBER, false));
    authenticate("Bearer " + KEY);
    live.clear();

    // When made-up keys fill the checks allowed at once (the database slow to answer them), and
    // the key's check is stale
    database = new java.util.concurrent.CompletableFuture<>();
    for (int i = 0; i < Authenticator.MAX_CHECKS_IN_FLIGHT; i++) {
      String key = "crl_" + String.format("%052d", i).replace('1', 'g').replace('0', 'h');
      authenticator.authenticate("Bearer " + key).subscribeAsCompletionStage();
    }
    now.addAndGet(Duration.ofSeconds(3).toNanos());
    var call = authenticator.authenticate("Bearer " + KEY).subscribeAsCompletionStage();
    database.complete(null);

    // Then the key is checked again and refused, not let in on its last check
    assertThatThrownBy(() -> call.get(10, java.util.concurrent.TimeUnit.SECONDS))
        .hasCauseInstanceOf(UnauthenticatedException.class);
  }

  @Test
  void aStreamsRecheckIsMadeThroughAFloodOfMadeUpKeysSoThatARevokedKeyIsRefused() {
    // Given a key with a stream open, revoked since its last check, which is long stale
    live.put(hex(KEY), new ApiKeyRepository.Live("key_1", new Tenant("acme"), Role.MEMBER, false));
    authenticate("Bearer " + KEY);
    live.clear();
    now.addAndGet(Duration.ofSeconds(11).toNanos());

    // When made-up keys fill the checks allowed at once (the database slow to answer them)
    database = new java.util.concurrent.CompletableFuture<>();
    for (int i = 0; i < Authenticator.MAX_CHECKS_IN_FLIGHT; i++) {
      String key = "crl_" + String.format("%052d", i).replace('1', 'e').replace('0', 'f');
      authenticator.authenticate("Bearer " + key).subscribeAsCompletionStage();
    }

    // Then the stream's re-check is made, and finds the key revoked
    var recheck = authenticator.authenticate("Bearer " + KEY, true).subscribeAsCompletionStage();
    database.complete(null);
    assertThatThrownBy(() -> recheck.get(10, java.util.concurrent.TimeUnit.SECONDS))
        .hasCauseInstanceOf(UnauthenticatedException.class);
  }

  @Test
  void eachBadFormIsRefusedWithItsReason() {
    assertThatThrownBy(() -> authenticate(null)).hasMessageContaining("needs a credential");
    assertThatThrownBy(() -> authenticate("   ")).hasMessageContaining("needs a credential");
    assertThatThrownBy(() -> authenticate("Basic abc"))
        .hasMessageContaining("'Bearer <credential>'");
    assertThatThrownBy(() -> authenticate("Bearer crl_123")).hasMessageContaining("malformed");
    assertThatThrownBy(() -> authenticate("Bearer eyJ.a.b"))
        .hasMessageContaining("bearer tokens are not accepted");
    assertThat(lookups).hasValue(0);
  }

  @Test
  void withAuthenticationOffEveryCallerIsTheDefaultTenantsAdmin() {
    Authenticator off = authenticator(100, false);
    Principal principal = off.cached(null);
    assertThat(principal.kind()).isEqualTo(Principal.Kind.UNAUTHENTICATED);
    assertThat(principal.tenant()).isEqualTo(Tenant.DEFAULT);
    assertThat(principal.role()).isEqualTo(Role.ADMIN);
  }

  @Test
  void aTokenNamingATenantNobodyCreatedIsRefusedWhenTokensMayNotCreateTenants() {
    // Given tokens that may not create tenants, and one naming a tenant that does not exist
    Authenticator strict = tokenAuthenticator(false, List.of(), "alice", "newco", Role.ADMIN);

    // Then it is refused, and nothing was created
    assertThatThrownBy(
            () -> strict.authenticate("Bearer eyJ.a.b").await().atMost(Duration.ofSeconds(1)))
        .isInstanceOf(PermissionDeniedException.class)
        .hasMessageContaining("tenant newco does not exist");
    assertThat(tenantsCreated).isEmpty();

    // While by default its first use creates it
    Authenticator lenient = tokenAuthenticator(true, List.of(), "alice", "newco", Role.ADMIN);
    assertThat(
            lenient.authenticate("Bearer eyJ.a.b").await().atMost(Duration.ofSeconds(1)).tenant())
        .isEqualTo(new Tenant("newco"));
    assertThat(tenantsCreated).containsExactly("newco");
  }

  @Test
  void anAdminTokenOfTheOperatorTenantIsAnOperatorOnlyForTheSubjectsNamed() {
    // Given admin tokens of the operator tenant, one of a named operator subject
    Principal named =
        tokenAuthenticator(true, List.of("ops-1"), "ops-1", "default", Role.ADMIN)
            .authenticate("Bearer eyJ.a.b")
            .await()
            .atMost(Duration.ofSeconds(1));
    Principal other =
        tokenAuthenticator(true, List.of("ops-1"), "mallory", "default", Role.ADMIN)
            .authenticate("Bearer eyJ.a.b")
            .await()
            .atMost(Duration.ofSeconds(1));
    Principal none =
        tokenAuthenticator(true, List.of(), "ops-1", "default", Role.ADMIN)
            .authenticate("Bearer eyJ.a.b")
            .await()
            .atMost(Duration.ofSeconds(1));

    // Then only the named subject acts as an operator; each is the tenant's admin
    assertThat(named.operator()).isTrue();
    assertThat(other.operator()).isFalse();
    assertThat(none.operator()).isFalse();
    assertThat(List.of(named.role(), other.role(), none.role())).containsOnly(Role.ADMIN);
  }

  private final List<String> tenantsCreated = new java.util.concurrent.CopyOnWriteArrayList<>();

  /** An authenticator whose identity provider vouches for one token of {@code subject}. */
  private Authenticator tokenAuthenticator(
      boolean createTenants, List<String> operators, String subject, String tenant, Role role) {
    AuthConfig config = config(100, true, true, createTenants, operators);
    TokenVerifier verifier =
        new TokenVerifier(null, config, 0) {
          @Override
          Uni<Verified> verify(String token) {
            return Uni.createFrom()
                .item(
                    new Verified(
                        subject,
                        new Tenant(tenant),
                        role,
                        java.time.Instant.now().plusSeconds(600)));
          }
        };
    TenantRepository tenants =
        new TenantRepository(null) {
          @Override
          Uni<dev.corral.proto.v1.Tenant> ensure(Tenant wanted) {
            tenantsCreated.add(wanted.id());
            return Uni.createFrom()
                .item(dev.corral.proto.v1.Tenant.newBuilder().setId(wanted.id()).build());
          }

          @Override
          Uni<Optional<dev.corral.proto.v1.Tenant>> find(Tenant wanted) {
            return Uni.createFrom().item(Optional.empty());
          }
        };
    return new Authenticator(
        config, keys(), tenants, verifier, adminKeySettled, Clock.systemUTC(), now::get);
  }

  private Principal authenticate(String authorization) {
    return authenticator.authenticate(authorization).await().atMost(Duration.ofSeconds(1));
  }

  private Authenticator authenticator(int cacheSize) {
    return authenticator(cacheSize, true);
  }

  private Authenticator authenticator(int cacheSize, boolean enabled) {
    return new Authenticator(
        config(cacheSize, enabled),
        keys(),
        null,
        new TokenVerifier(null, config(cacheSize, enabled), 0),
        adminKeySettled,
        Clock.systemUTC(),
        now::get);
  }

  private ApiKeyRepository keys() {
    return new ApiKeyRepository(null) {
      @Override
      Uni<Optional<Live>> authenticate(byte[] hash) {
        lookups.incrementAndGet();
        return Uni.createFrom()
            .completionStage(database)
            .map(answered -> Optional.ofNullable(live.get(HexFormat.of().formatHex(hash))));
      }
    };
  }

  private static AdminKeySettled settled() {
    AdminKeySettled settled = new AdminKeySettled();
    settled.settle();
    return settled;
  }

  private static String hex(String key) {
    return HexFormat.of().formatHex(ApiKeySecret.sha256(key));
  }

  private static AuthConfig config(int cacheSize, boolean enabled) {
    return config(cacheSize, enabled, false, true, List.of());
  }

  private static AuthConfig config(
      int cacheSize,
      boolean enabled,
      boolean oidc,
      boolean createTenants,
      List<String> operatorSubjects) {
    return new AuthConfig() {
      public boolean enabled() {
        return enabled;
      }

      public boolean allowRemoteUnauthenticated() {
        return false;
      }

      public Duration recheckInterval() {
        return Duration.ofSeconds(2);
      }

      public int cacheSize() {
        return cacheSize;
      }

      public String operatorTenant() {
        return "default";
      }

      public Optional<String> bootstrapKey() {
        return Optional.empty();
      }

      public boolean newAdminKey() {
        return false;
      }

      public boolean publicReflection() {
        return false;
      }

      public boolean publicMetrics() {
        return false;
      }

      public Oidc oidc() {
        return new Oidc() {
          public boolean enabled() {
            return oidc;
          }

          public Optional<List<String>> operatorSubjects() {
            return Optional.of(operatorSubjects);
          }

          public boolean createTenants() {
            return createTenants;
          }

          public Optional<String> issuer() {
            return Optional.empty();
          }

          public Optional<String> audience() {
            return Optional.empty();
          }

          public int clockSkewSeconds() {
            return 30;
          }

          public String tenantClaim() {
            return "tenant";
          }

          public String roleClaim() {
            return "roles";
          }
        };
      }
    };
  }
}
