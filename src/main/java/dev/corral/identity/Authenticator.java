package dev.corral.identity;

import dev.corral.common.CorralException;
import dev.corral.common.PermissionDeniedException;
import dev.corral.common.Tenant;
import dev.corral.common.UnauthenticatedException;
import dev.corral.common.VertxContexts;
import io.smallrye.mutiny.Uni;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import jakarta.enterprise.context.ApplicationScoped;
import java.time.Clock;
import java.time.Instant;
import java.util.Base64;
import java.util.Iterator;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import java.util.function.LongSupplier;

/**
 * Turns the credential a request carries ({@code Bearer crl_…} or {@code Bearer <JWT>}) into a
 * {@link Principal}, or refuses it: {@link UnauthenticatedException} for a missing or bad
 * credential, {@link PermissionDeniedException} for a disabled tenant or a token without a role.
 *
 * <p>Checks are cached for {@link AuthConfig#recheckInterval()} (refusals too, so that a flood of
 * one bad key costs one query per interval), in at most {@link AuthConfig#cacheSize()} entries
 * keyed by the credential's SHA-256. After the interval the next use checks again against the
 * database, which is how a revocation or a disabled tenant reaches every replica.
 */
@ApplicationScoped
public class Authenticator {

  /** What {@link #credentialOf} returns for a value that is not {@code Bearer <credential>}. */
  private static final String NOT_BEARER = "\u0000not-bearer";

  private final AuthConfig config;
  private final ApiKeyRepository keys;
  private final TenantRepository tenants;
  private final TokenVerifier tokens;
  private final AdminKeySettled adminKeySettled;
  private final Clock clock;
  private final LongSupplier nanoTime;
  private final Map<String, Checked> checked = new ConcurrentHashMap<>();

  /**
   * Refused credentials, apart: a flood of made-up keys fills this smaller map, never the checks of
   * the credentials that work.
   */
  private final Map<String, Checked> refusals = new ConcurrentHashMap<>();

  /**
   * Distinct credentials checked against the database or the identity provider at once, at most:
   * beyond, a credential not checked recently is answered UNAVAILABLE at once, so that a flood of
   * made-up keys holds neither the database pool nor the calls of known credentials.
   */
  static final int MAX_CHECKS_IN_FLIGHT = 256;

  private final Map<String, Checked> tenantStates = new ConcurrentHashMap<>();

  /** Checks under way, by cache key; each is removed as it ends. */
  private final Map<String, Uni<Principal>> inFlight = new ConcurrentHashMap<>();

  /**
   * Counts the forgets (a key revoked, a tenant disabled, here): a check that started before one
   * may have read the credential as it was, so its answer is not cached.
   */
  private final java.util.concurrent.atomic.AtomicLong forgets =
      new java.util.concurrent.atomic.AtomicLong();

  /**
   * Counts the keys revoked here: each revoked key is stamped with the count after it in {@link
   * #forgottenKeys}, and a check of that key that started before the stamp is not cached. One key's
   * revocation leaves every other check cacheable (a tenant that makes and revokes keys in a loop
   * must not turn the cache off for all).
   */
  private final java.util.concurrent.atomic.AtomicLong keyForgets =
      new java.util.concurrent.atomic.AtomicLong();

  /** Keys revoked here lately: their stamp, and when (nanoTime). */
  private final Map<String, long[]> forgottenKeys = new ConcurrentHashMap<>();

  /** How many revoked keys are remembered before those older than a minute are dropped. */
  private static final int FORGOTTEN_KEYS = 1_000;

  @jakarta.inject.Inject
  Authenticator(
      AuthConfig config,
      ApiKeyRepository keys,
      TenantRepository tenants,
      TokenVerifier tokens,
      AdminKeySettled adminKeySettled,
      Clock clock) {
    this(config, keys, tenants, tokens, adminKeySettled, clock, System::nanoTime);
  }

  Authenticator(
      AuthConfig config,
      ApiKeyRepository keys,
      TenantRepository tenants,
      TokenVerifier tokens,
      AdminKeySettled adminKeySettled,
      Clock clock,
      LongSupplier nanoTime) {
    this.config = config;
    this.keys = keys;
    this.tenants = tenants;
    this.tokens = tokens;
    this.adminKeySettled = adminKeySettled;
    this.clock = clock;
    this.nanoTime = nanoTime;
  }

  /** Checks held in memory now. */
  int cachedChecks() {
    return checked.size() + refusals.size();
  }

  /** Whether calls must carry a credential. */
  public boolean enabled() {
    return config.enabled();
  }

  /**
   * The principal of {@code authorization} (an {@code authorization} header's value, or null) if
   * its check is cached and still fresh; null otherwise (then call {@link #authenticate}).
   *
   * @throws CorralException if the cached check refused the credential
   */
  public Principal cached(String authorization) {
    if (!config.enabled()) {
      return Principal.unauthenticated(config.operatorTenant());
    }
    String credential = credentialOf(authorization);
    String key = cacheKey(credential);
    Checked entry = checked.get(key);
    if (entry == null) {
      entry = refusals.get(key);
    }
    if (entry == null || !entry.fresh(nanoTime.getAsLong(), config.recheckInterval().toNanos())) {
      return null;
    }
    return entry.principalAt(clock.instant());
  }

  /** Checks {@code authorization} (from the cache while the last check is fresh). */
  public Uni<Principal> authenticate(String authorization) {
    return authenticate(authorization, false);
  }

  /**
   * @param watched a re-check of a call under way ({@link #watch}): it is made even when many
   *     checks are in flight, so that a flood of made-up credentials cannot keep a revoked key's
   *     streams open (such checks are bounded by the streams a replica serves)
   */
  Uni<Principal> authenticate(String authorization, boolean watched) {
    Principal principal;
    try {
      principal = cached(authorization);
    } catch (CorralException refused) {
      return Uni.createFrom().failure(refused);
    }
    if (principal != null) {
      return Uni.createFrom().item(principal);
    }
    String credential = credentialOf(authorization);
    String key = cacheKey(credential);
    // Calls that find the same credential's check stale together share one check: when a busy
    // key's entry expires, its concurrent calls would otherwise each update its row in turn.
    long generation = forgets.get();
    long keyGeneration = keyForgets.get();
    Checked known = checked.get(key);
    if (!watched
        && inFlight.size() >= MAX_CHECKS_IN_FLIGHT
        && !inFlight.containsKey(key)
        && (known == null || known.principal() == null)) {
      // A credential that worked before is checked again through a flood of made-up ones, past
      // the bound (such checks are bounded by the credentials that ever worked, each once per
      // interval): its calls are neither turned away nor let in on a stale check, which would
      // keep a key revoked on another replica working for as long as the flood lasts.
      return Uni.createFrom()
          .failure(
              new dev.corral.common.UnavailableException(
                  "too many credentials are being checked at once on this replica; retry shortly",
                  null));
    }
    return inFlight.computeIfAbsent(
        key,
        absent -> {
          java.util.concurrent.atomic.AtomicReference<Uni<Principal>> self =
              new java.util.concurrent.atomic.AtomicReference<>();
          Uni<Principal> shared =
              check(credential)
                  .invoke(
                      checkedPrincipal ->
                          rememberUnlessForgotten(
                              generation,
                              keyGeneration,
                              key,
                              new Checked(checkedPrincipal, null, now())))
                  .onFailure(Authenticator::isVerdict)
                  .invoke(
                      failure ->
                          rememberUnlessForgotten(
                              generation,
                              keyGeneration,
                              key,
                              new Checked(null, (CorralException) failure, now())))
                  .onTermination()
                  // only itself: a check started after a forget may have taken its place
                  .invoke(() -> inFlight.remove(key, self.get()))
                  .memoize()
                  .indefinitely();
          self.set(shared);
          return shared;
        });
  }

  /**
   * Checks {@code authorization} again every half re-check interval while a long call (a stream)
   * lasts. A refusal meanwhile (a key revoked, a tenant disabled, a token expired) goes to {@code
   * refused}, on the Vert.x context this was called on; a check that cannot be made (the database
   * or the identity provider is down) changes nothing. Returns the timer to cancel when the call
   * ends.
   */
  public long watch(Vertx vertx, String authorization, Consumer<Throwable> refused) {
    Context context = Vertx.currentContext();
    return vertx.setPeriodic(
        Math.max(1, config.recheckInterval().toMillis() / 2),
        tick ->
            authenticate(authorization, true)
                .subscribe()
                .with(
                    stillValid -> {},
                    failure -> {
                      if (!isVerdict(failure)) {
                        return;
                      }
                      VertxContexts.runOn(context, () -> refused.accept(failure));
                    }));
  }

  /**
   * Whether a failed check says something about the credential (and may be cached), rather than
   * about a database or identity provider that could not be asked.
   */
  private static boolean isVerdict(Throwable failure) {
    return failure instanceof UnauthenticatedException
        || failure instanceof PermissionDeniedException;
  }

  private void rememberUnlessForgotten(
      long generation, long keyGeneration, String key, Checked entry) {
    if (forgets.get() == generation && !keyForgottenSince(entry, keyGeneration)) {
      boolean works = entry.principal() != null;
      // the newer verdict replaces the other kind's older one, which cached() would read first
      (works ? refusals : checked).remove(key);
      remember(
          works ? checked : refusals,
          works ? config.cacheSize() : Math.max(100, config.cacheSize() / 10),
          key,
          entry);
      if (forgets.get() != generation || keyForgottenSince(entry, keyGeneration)) {
        // a forget came in between: it may not have seen this entry
        checked.remove(key, entry);
        refusals.remove(key, entry);
      }
    }
  }

  /** Whether {@code entry}'s key was revoked here after {@code keyGeneration} was read. */
  private boolean keyForgottenSince(Checked entry, long keyGeneration) {
    if (entry.principal() == null || entry.principal().apiKeyId() == null) {
      return false;
    }
    long[] forgotten = forgottenKeys.get(entry.principal().apiKeyId());
    return forgotten != null && forgotten[0] > keyGeneration;
  }

  /**
   * Forgets the cached checks of one key: revoked on this replica, it is refused here at once. A
   * check of it under way is neither cached nor shared from now on; other checks are untouched.
   */
  void forgetKey(String apiKeyId) {
    long now = nanoTime.getAsLong();
    if (forgottenKeys.size() >= FORGOTTEN_KEYS) {
      // a check lasts at most the statement timeout: a minute-old stamp guards none
      forgottenKeys.values().removeIf(forgotten -> now - forgotten[1] > 60_000_000_000L);
      if (forgottenKeys.size() >= 10 * FORGOTTEN_KEYS) {
        // revoked faster than that: every check under way forgets, as before, and the map empties
        forget();
        forgottenKeys.clear();
      }
    }
    forgottenKeys.put(apiKeyId, new long[] {keyForgets.incrementAndGet(), now});
    checked
        .entrySet()
        .removeIf(
            entry -> {
              Principal principal = entry.getValue().principal;
              boolean its = principal != null && apiKeyId.equals(principal.apiKeyId());
              if (its) {
                inFlight.remove(entry.getKey());
              }
              return its;
            });
  }

  /** Forgets the cached checks of one tenant's credentials (disabled or enabled here). */
  void forgetTenant(Tenant tenant) {
    forget();
    tenantStates.remove(tenant.id());
    checked.values().removeIf(entry -> tenant.equals(entry.tenant()));
    refusals.values().removeIf(entry -> tenant.equals(entry.tenant()));
  }

  /** Checks under way may have read what is now forgotten: calls from now on start their own. */
  private void forget() {
    forgets.incrementAndGet();
    inFlight.clear();
  }

  private Uni<Principal> check(String credential) {
    if (credential == null) {
      return Uni.createFrom()
          .failure(
              new UnauthenticatedException(
                  "this call needs a credential: send the metadata 'authorization: Bearer"
                      + " <corral API key or OIDC token>'"));
    }
    if (NOT_BEARER.equals(credential)) {
      return Uni.createFrom()
          .failure(
              new UnauthenticatedException(
                  "the authorization metadata must be 'Bearer <credential>'"));
    }
    if (ApiKeySecret.looksLikeKey(credential)) {
      return checkKey(credential);
    }
    return tokens.verify(credential).flatMap(this::tokenPrincipal);
  }

  private Uni<Principal> checkKey(String credential) {
    if (!ApiKeySecret.isWellFormed(credential)) {
      return Uni.createFrom().failure(new UnauthenticatedException("the API key is malformed"));
    }
    // A key is judged only once the start has set up its admin key (see AdminKeySettled).
    return adminKeySettled
        .settledOrWaited()
        .flatMap(settled -> keys.authenticate(ApiKeySecret.sha256(credential)))
        .map(
            live -> {
              ApiKeyRepository.Live key =
                  live.orElseThrow(
                      () -> new UnauthenticatedException("the API key is unknown or revoked"));
              if (key.tenantDisabled()) {
                throw disabled(key.tenant());
              }
              return new Principal(
                  Principal.Kind.API_KEY,
                  key.tenant(),
                  key.role(),
                  key.id(),
                  key.id(),
                  isOperator(key.tenant(), key.role()),
                  null);
            });
  }

  private Uni<Principal> tokenPrincipal(TokenVerifier.Verified token) {
    return tenantEnabled(token.tenant())
        .map(
            ignored ->
                new Principal(
                    Principal.Kind.TOKEN,
                    token.tenant(),
                    token.role(),
                    token.subject(),
                    null,
                    isOperator(token.tenant(), token.role())
                        && config
                            .oidc()
                            .operatorSubjects()
                            .orElse(java.util.List.of())
                            .contains(token.subject()),
                    token.expiresAt()));
  }

  /**
   * A token's tenant exists from its first use on (or, without {@code create-tenants}, must exist
   * already); a disabled one is refused.
   */
  private Uni<Void> tenantEnabled(Tenant tenant) {
    Checked state = tenantStates.get(tenant.id());
    if (state != null && state.fresh(nanoTime.getAsLong(), config.recheckInterval().toNanos())) {
      return state.failure == null
          ? Uni.createFrom().voidItem()
          : Uni.createFrom().failure(state.failure);
    }
    long generation = forgets.get();
    Uni<Optional<dev.corral.proto.v1.Tenant>> known =
        config.oidc().createTenants()
            ? tenants.ensure(tenant).map(Optional::of)
            : tenants.find(tenant);
    return known.map(
        row -> {
          CorralException failure =
              row.isEmpty()
                  ? new PermissionDeniedException(
                      "tenant "
                          + tenant.id()
                          + " does not exist; an operator creates it (CreateTenant)")
                  : row.get().hasDisabledAt() ? disabled(tenant) : null;
          if (forgets.get() == generation) { // else a disable here may have come after it
            remember(
                tenantStates, config.cacheSize(), tenant.id(), new Checked(null, failure, now()));
          }
          if (failure != null) {
            throw failure;
          }
          return null;
        });
  }

  /** Whether an API key of {@code role} in {@code tenant} makes its holder an operator. */
  boolean isOperator(Tenant tenant, Role role) {
    return role == Role.ADMIN && tenant.id().equals(config.operatorTenant());
  }

  private static TenantDisabledException disabled(Tenant tenant) {
    return new TenantDisabledException(tenant);
  }

  /** A credential of a disabled tenant. */
  static final class TenantDisabledException extends PermissionDeniedException {

    private final Tenant tenant;

    TenantDisabledException(Tenant tenant) {
      super("tenant " + tenant.id() + " is disabled");
      this.tenant = tenant;
    }
  }

  private long now() {
    return nanoTime.getAsLong();
  }

  private void remember(Map<String, Checked> cache, int size, String key, Checked entry) {
    if (cache.size() >= size) {
      evictStale(cache, size);
    }
    cache.put(key, entry);
  }

  /** Drops stale entries, or (if none is stale) about a tenth of the cache. */
  private void evictStale(Map<String, Checked> cache, int size) {
    long now = nanoTime.getAsLong();
    long interval = config.recheckInterval().toNanos();
    cache.values().removeIf(entry -> !entry.fresh(now, interval));
    int excess = cache.size() - size * 9 / 10;
    Iterator<String> keys = cache.keySet().iterator();
    while (excess-- > 0 && keys.hasNext()) {
      keys.next();
      keys.remove();
    }
  }

  /** The credential of an {@code authorization} value: what follows {@code Bearer }, or null. */
  static String credentialOf(String authorization) {
    if (authorization == null) {
      return null;
    }
    String value = authorization.strip();
    if (value.length() > 7 && value.regionMatches(true, 0, "Bearer ", 0, 7)) {
      String credential = value.substring(7).strip();
      return credential.isEmpty() ? null : credential;
    }
    return value.isEmpty() ? null : NOT_BEARER;
  }

  private static String cacheKey(String credential) {
    if (credential == null) {
      return "";
    }
    return Base64.getEncoder().encodeToString(ApiKeySecret.sha256(credential));
  }

  /** One check's outcome, and when it was made. */
  private record Checked(Principal principal, CorralException failure, long checkedAt) {

    boolean fresh(long now, long interval) {
      return now - checkedAt < interval;
    }

    /** The tenant this check is about, if it is known. */
    Tenant tenant() {
      if (principal != null) {
        return principal.tenant();
      }
      return failure instanceof TenantDisabledException disabled ? disabled.tenant : null;
    }

    Principal principalAt(Instant now) {
      if (failure != null) {
        throw failure;
      }
      if (principal.expiresAt() != null && !principal.expiresAt().isAfter(now)) {
        throw new UnauthenticatedException("the bearer token has expired");
      }
      return principal;
    }
  }
}
