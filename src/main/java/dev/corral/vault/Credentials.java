package dev.corral.vault;

import dev.corral.common.IdKind;
import dev.corral.common.InputRules;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.LogFields;
import dev.corral.common.NotFoundException;
import dev.corral.common.Page;
import dev.corral.common.Paging;
import dev.corral.common.ProtoTime;
import dev.corral.common.ResourceExhaustedException;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.BasicAuthInfo;
import dev.corral.proto.v1.CreateCredentialRequest;
import dev.corral.proto.v1.Credential;
import dev.corral.proto.v1.OAuth2Info;
import dev.corral.proto.v1.StaticHeaderInfo;
import dev.corral.proto.v1.UpdateCredentialRequest;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.jboss.logging.Logger;

/**
 * The vault's operations: storing, rotating, reading (never a secret), deleting and re-wrapping
 * credentials, and handing one to a call as an {@link HttpAuth} for the URL or host it is bound to,
 * refreshing an OAuth token first when it is about to expire or was refused.
 */
@ApplicationScoped
public class Credentials implements dev.corral.common.CredentialBindings {

  private static final Logger LOGGER = Logger.getLogger(Credentials.class);

  /** The longest name of a credential, in characters. */
  public static final int MAX_NAME = CredentialRules.MAX_NAME;

  /** The longest secret value of a credential (a header value, a token, a password). */
  public static final int MAX_SECRET = CredentialRules.MAX_SECRET;

  /** An OAuth access token closer than this to its expiry is refreshed before it is used. */
  static final Duration REFRESH_BEFORE = Duration.ofSeconds(60);

  private static final Duration TOUCH_EVERY = Duration.ofMinutes(1);
  private static final int REWRAP_BATCH = 100;

  private final CredentialRepository repository;
  private final VaultRepository vaults;
  private final KeyRing keys;
  private final OAuthTokens tokens;
  private final Clock clock;
  private final Map<String, Instant> touched = new ConcurrentHashMap<>();

  /** Two refreshes of a tenant at once on a replica, 64 more waiting. */
  private final RefreshGate<HttpAuth> refreshes = new RefreshGate<>(2, 64);

  Credentials(
      CredentialRepository repository,
      VaultRepository vaults,
      KeyRing keys,
      OAuthTokens tokens,
      Clock clock) {
    this.repository = repository;
    this.vaults = vaults;
    this.keys = keys;
    this.tokens = tokens;
    this.clock = clock;
  }

  public Uni<Credential> create(Tenant tenant, CreateCredentialRequest request) {
    return Uni.createFrom()
        .item(
            () -> {
              String name = CredentialRules.name("name", request.getName());
              InputRules.metadata("metadata", request.getMetadataMap());
              String id = IdKind.CREDENTIAL.next();
              Kinded kinded = kinded(request);
              if (!request.getVaultId().isEmpty()) {
                IdKind.VAULT.require("vault_id", request.getVaultId());
              }
              // a request that could never be stored says so first, whatever the server's keys
              keys.requireConfigured();
              Credential info =
                  kinded.info().toBuilder()
                      .setName(name)
                      .putAllMetadata(request.getMetadataMap())
                      .setVaultId(request.getVaultId())
                      .build();
              byte[] plaintext = kinded.secrets().toBytes();
              try {
                Envelope.Box box = Envelope.seal(keys, plaintext, tenant.id(), id);
                return new Pending(id, kinded.kind(), info, box);
              } finally {
                Arrays.fill(plaintext, (byte) 0);
              }
            })
        .call(pending -> requireUsableVault(tenant, pending.info().getVaultId()))
        .flatMap(
            pending ->
                repository.insert(
                    tenant,
                    pending.id(),
                    pending.kind(),
                    pending.info(),
                    pending.box(),
                    Credentials::mcpServerUrl))
        .flatMap(
            inserted ->
                inserted.isPresent()
                    ? Uni.createFrom().item(inserted.get())
                    // its vault went meanwhile, or the tenant is at its limit
                    : requireUsableVault(tenant, request.getVaultId())
                        .map(
                            usable -> {
                              throw new ResourceExhaustedException(
                                  "tenant "
                                      + tenant.id()
                                      + " holds "
                                      + CredentialRepository.MAX_PER_TENANT
                                      + " credentials, the most it may; delete one first");
                            }));
  }

  private Uni<Void> requireUsableVault(Tenant tenant, String vaultId) {
    if (vaultId.isEmpty()) {
      return Uni.createFrom().voidItem();
    }
    return vaults.requireUsable(tenant, List.of(vaultId));
  }

  /**
   * The id of the credential an MCP server at {@code url} uses when it names none: the newest one
   * bound to that URL in the first of {@code vaultIds} (usable vaults of {@code tenant}) that has
   * one.
   */
  public Uni<java.util.Optional<String>> forMcpServer(
      Tenant tenant, List<String> vaultIds, String url) {
    if (vaultIds.isEmpty()) {
      return Uni.createFrom().item(java.util.Optional.empty());
    }
    return repository
        .forMcp(tenant, vaultIds)
        .map(
            candidates -> {
              for (String vault : vaultIds) {
                for (Credential credential : candidates) {
                  if (credential.getVaultId().equals(vault) && boundTo(credential, url)) {
                    return java.util.Optional.of(credential.getId());
                  }
                }
              }
              return java.util.Optional.<String>empty();
            });
  }

  private static boolean boundTo(Credential credential, String url) {
    String bound = mcpServerUrl(credential);
    try {
      return bound != null && bound.equals(dev.corral.common.HttpUrls.normalized("url", url));
    } catch (RuntimeException malformed) {
      return false;
    }
  }

  /** The MCP server {@code credential} is bound to, normalized; null for none (or unreadable). */
  private static String mcpServerUrl(Credential credential) {
    String bound =
        credential.hasStaticHeader()
            ? credential.getStaticHeader().getMcpServerUrl()
            : credential.hasOauth2() ? credential.getOauth2().getMcpServerUrl() : "";
    if (bound.isEmpty()) {
      return null;
    }
    try {
      return dev.corral.common.HttpUrls.normalized("url", bound);
    } catch (RuntimeException malformed) {
      return null;
    }
  }

  @Override
  public Uni<Void> requireBound(
      Tenant tenant,
      String field,
      String credentialId,
      String url,
      dev.corral.common.CredentialUse use) {
    return repository
        .find(tenant, credentialId)
        .invoke(
            stored -> {
              if (stored.vaultArchived()) {
                throw new dev.corral.common.FailedPreconditionException(
                    field + ": " + archived(stored));
              }
              try {
                requireBound(stored.credential(), url, use);
              } catch (CredentialUnusableException elsewhere) {
                throw new InvalidArgumentException(field, elsewhere.getMessage());
              }
            })
        .replaceWithVoid();
  }

  private static String archived(CredentialRepository.Stored stored) {
    return "credential "
        + stored.credential().getId()
        + " is in vault "
        + stored.credential().getVaultId()
        + ", which is archived; no session uses its credentials";
  }

  public Uni<Credential> get(Tenant tenant, String credentialId) {
    return Uni.createFrom()
        .item(() -> IdKind.CREDENTIAL.require("credential_id", credentialId))
        .flatMap(id -> repository.find(tenant, id))
        .map(CredentialRepository.Stored::credential);
  }

  public Uni<Page<Credential>> list(Tenant tenant, int pageSize, String pageToken, String vaultId) {
    return Uni.createFrom()
        .item(
            () -> {
              if (!vaultId.isEmpty()) {
                IdKind.VAULT.require("vault_id", vaultId);
              }
              return Paging.pageSize("page_size", pageSize, 20, 100);
            })
        .flatMap(
            size ->
                repository
                    .list(
                        tenant,
                        Paging.keyOf("page_token", pageToken, IdKind.CREDENTIAL::isValid),
                        size + 1,
                        vaultId.isEmpty() ? null : vaultId)
                    .map(rows -> Page.of(rows, size, Credential::getId)));
  }

  /** Replaces the secret values (rotation), the name or the metadata. */
  public Uni<Credential> update(Tenant tenant, UpdateCredentialRequest request) {
    return update(tenant, request, null);
  }

  /**
   * {@link #update(Tenant, UpdateCredentialRequest)}, with {@code metadataPatch} (if not null)
   * applied to the credential's metadata as it is under its lock, so that two patches of different
   * keys both hold (REST's update patches metadata). What it makes of empty metadata is checked
   * before the lookup, and what it makes of the credential's, under the lock.
   */
  public Uni<Credential> update(
      Tenant tenant,
      UpdateCredentialRequest request,
      java.util.function.UnaryOperator<Map<String, String>> metadataPatch) {
    return Uni.createFrom()
        .item(
            () -> {
              IdKind.CREDENTIAL.require("credential_id", request.getCredentialId());
              if (request.hasName()) {
                CredentialRules.name("name", request.getName());
              }
              if (request.hasMetadata()) {
                InputRules.metadata("metadata.entries", request.getMetadata().getEntriesMap());
              }
              if (metadataPatch != null) {
                InputRules.metadata("metadata.entries", metadataPatch.apply(Map.of()));
              }
              if (request.getAuthCase() != UpdateCredentialRequest.AuthCase.AUTH_NOT_SET) {
                keys.requireConfigured();
              }
              return request.getCredentialId();
            })
        .flatMap(
            id ->
                repository.underLock(
                    tenant,
                    id,
                    stored ->
                        Uni.createFrom()
                            .item(() -> updated(tenant, stored, request, metadataPatch))));
  }

  public Uni<Void> delete(Tenant tenant, String credentialId) {
    return Uni.createFrom()
        .item(() -> IdKind.CREDENTIAL.require("credential_id", credentialId))
        .flatMap(id -> repository.delete(tenant, id));
  }

  /** What re-wrapping did. */
  public record Rewrapped(int count, String activeKeyId) {}

  /** Wraps every data key, of every tenant, with the active key-encryption key. */
  public Uni<Rewrapped> rewrapAll() {
    return Uni.createFrom()
        .item(keys::activeId)
        .flatMap(active -> rewrapFrom(active, 0).map(count -> new Rewrapped(count, active)));
  }

  private Uni<Integer> rewrapFrom(String active, int done) {
    return repository
        .rewrapBatch(active, REWRAP_BATCH, (id, box) -> Envelope.rewrap(keys, box, id))
        .flatMap(
            count ->
                count < REWRAP_BATCH
                    ? Uni.createFrom().item(done + count)
                    : rewrapFrom(active, done + count));
  }

  /**
   * The header a request to {@code url} carries for {@code tenant}'s credential {@code
   * credentialId}, which must be bound to that URL (or, for basic authentication, its scheme, host
   * and port: {@link BasicOrigin}). An OAuth token about to expire is refreshed first.
   *
   * @throws CredentialUnusableException (in the Uni) if it does not exist, is bound elsewhere, or
   *     cannot be refreshed
   */
  public Uni<HttpAuth> authFor(Tenant tenant, String credentialId, String url) {
    return authFor(tenant, credentialId, url, dev.corral.common.CredentialUse.MCP_SERVER);
  }

  /** {@link #authFor(Tenant, String, String)} for {@code use}. */
  public Uni<HttpAuth> authFor(
      Tenant tenant, String credentialId, String url, dev.corral.common.CredentialUse use) {
    return repository
        .find(tenant, credentialId)
        .onFailure(NotFoundException.class)
        .transform(
            missing ->
                new CredentialUnusableException(
                    "credential " + credentialId + " does not exist in tenant " + tenant.id(),
                    false))
        .invoke(
            stored -> {
              if (stored.vaultArchived()) {
                throw new CredentialUnusableException(archived(stored), false);
              }
              requireBound(stored.credential(), url, use);
            })
        .flatMap(
            stored ->
                expiring(stored.credential())
                    ? refresh(tenant, credentialId, null)
                    : Uni.createFrom().item(httpAuth(tenant, stored)))
        .invoke(auth -> touch(tenant, credentialId));
  }

  /**
   * After a call with {@code used} was refused (HTTP 401): a refreshed OAuth token, or the one
   * another replica refreshed meanwhile; null if the credential cannot be refreshed.
   */
  public Uni<HttpAuth> afterUnauthorized(Tenant tenant, HttpAuth used) {
    return repository
        .find(tenant, used.credentialId())
        .flatMap(
            stored ->
                !stored.vaultArchived()
                        && stored.credential().hasOauth2()
                        && stored.credential().getOauth2().getHasRefreshToken()
                    ? refresh(tenant, used.credentialId(), used.bearerToken())
                    : Uni.createFrom().nullItem());
  }

  /**
   * Refreshes the OAuth token under the credential's row lock, unless another call did since it was
   * read: since {@code usedToken} was refused, or, when {@code usedToken} is null (the token was
   * about to expire), if it is no longer about to expire. Then that token is returned.
   */
  private Uni<HttpAuth> refresh(Tenant tenant, String credentialId, String usedToken) {
    return refreshes.refresh(
        tenant.id(),
        credentialId,
        usedToken,
        () -> refreshUnderLock(tenant, credentialId, usedToken));
  }

  private Uni<HttpAuth> refreshUnderLock(Tenant tenant, String credentialId, String usedToken) {
    return repository.underLock(
        tenant,
        credentialId,
        stored -> {
          SecretValues secrets = open(tenant, stored);
          boolean refreshedMeanwhile =
              usedToken == null
                  ? !expiring(stored.credential())
                  : !usedToken.equals(secrets.accessToken());
          if (refreshedMeanwhile || !stored.credential().getOauth2().getHasRefreshToken()) {
            HttpAuth current = httpAuth(stored.credential(), secrets);
            return Uni.createFrom()
                .item(new CredentialRepository.Change<>(null, ignored -> current));
          }
          return tokens
              .refresh(tenant, stored.credential().getOauth2(), secrets)
              .map(refreshed -> refreshedChange(tenant, stored, secrets, refreshed));
        });
  }

  private CredentialRepository.Change<HttpAuth> refreshedChange(
      Tenant tenant,
      CredentialRepository.Stored stored,
      SecretValues secrets,
      OAuthTokens.Refreshed refreshed) {
    SecretValues next = secrets.withTokens(refreshed.accessToken(), refreshed.refreshToken());
    OAuth2Info.Builder info =
        stored.credential().getOauth2().toBuilder()
            .setRefreshedAt(ProtoTime.of(clock.instant()))
            .setHasRefreshToken(next.refreshToken() != null && !next.refreshToken().isEmpty());
    if (refreshed.expiresAt() == null) {
      info.clearExpiresAt();
    } else {
      info.setExpiresAt(ProtoTime.of(refreshed.expiresAt()));
    }
    Credential credential = infoOf(stored.credential()).toBuilder().setOauth2(info).build();
    byte[] plaintext = next.toBytes();
    try {
      Envelope.Box box = Envelope.seal(keys, plaintext, tenant.id(), stored.credential().getId());
      LogFields.tenant(tenant.id())
          .log(
              () ->
                  LOGGER.infof(
                      "credential=%s tenant=%s OAuth token refreshed",
                      stored.credential().getId(), tenant.id()));
      HttpAuth refreshedAuth = httpAuth(stored.credential(), next);
      return new CredentialRepository.Change<>(
          new CredentialRepository.Update(credential, box, true), ignored -> refreshedAuth);
    } finally {
      Arrays.fill(plaintext, (byte) 0);
    }
  }

  private CredentialRepository.Change<Credential> updated(
      Tenant tenant,
      CredentialRepository.Stored stored,
      UpdateCredentialRequest request,
      java.util.function.UnaryOperator<Map<String, String>> metadataPatch) {
    Credential current = infoOf(stored.credential());
    Credential.Builder next = current.toBuilder();
    if (request.hasName()) {
      next.setName(request.getName());
    }
    if (request.hasMetadata()) {
      next.clearMetadata().putAllMetadata(request.getMetadata().getEntriesMap());
    }
    if (metadataPatch != null) {
      Map<String, String> patched = metadataPatch.apply(current.getMetadataMap());
      InputRules.metadata("metadata.entries", patched);
      next.clearMetadata().putAllMetadata(patched);
    }
    Envelope.Box box = stored.box();
    boolean rotated = request.getAuthCase() != UpdateCredentialRequest.AuthCase.AUTH_NOT_SET;
    if (rotated) {
      if (request.hasOauth2()) {
        request =
            request.toBuilder().setOauth2(keptOauth(tenant, current, stored, request)).build();
      }
      if (request.hasStaticHeader()
          && request.getStaticHeader().getHeaderName().isEmpty()
          && current.hasStaticHeader()) {
        // a rotation of the value keeps the header it goes in
        request =
            request.toBuilder()
                .setStaticHeader(
                    request.getStaticHeader().toBuilder()
                        .setHeaderName(current.getStaticHeader().getHeaderName()))
                .build();
      }
      Kinded kinded = kinded(request);
      requireSameBinding(current, kinded.info());
      SecretValues secrets = kinded.secrets();
      Credential info = kinded.info();
      copyKind(next, info);
      byte[] plaintext = secrets.toBytes();
      try {
        box = Envelope.seal(keys, plaintext, tenant.id(), stored.credential().getId());
      } finally {
        Arrays.fill(plaintext, (byte) 0);
      }
    }
    return new CredentialRepository.Change<>(
        new CredentialRepository.Update(next.build(), box, rotated), credential -> credential);
  }

  /**
   * An OAuth rotation with what it leaves out kept: the refresh token and client secret (corral may
   * have rotated the refresh token itself), the scope and how the token endpoint is called. Checked
   * as a whole afterwards, as a new credential would be.
   */
  private dev.corral.proto.v1.OAuth2Auth keptOauth(
      Tenant tenant,
      Credential current,
      CredentialRepository.Stored stored,
      UpdateCredentialRequest request) {
    dev.corral.proto.v1.OAuth2Auth.Builder auth = request.getOauth2().toBuilder();
    boolean newToken = !auth.getAccessToken().isEmpty();
    String keptSecret = null;
    if (!newToken || auth.getRefreshToken().isEmpty() || auth.getClientSecret().isEmpty()) {
      SecretValues kept = open(tenant, stored);
      if (!newToken && kept.accessToken() != null) {
        // a rotation of the refresh token (or of the scope) alone keeps the access token, and
        // when it expires
        auth.setAccessToken(kept.accessToken());
        if (!auth.hasExpiresAt() && current.hasOauth2() && current.getOauth2().hasExpiresAt()) {
          auth.setExpiresAt(current.getOauth2().getExpiresAt());
        }
      }
      if (auth.getRefreshToken().isEmpty() && kept.refreshToken() != null) {
        auth.setRefreshToken(kept.refreshToken());
      }
      if (auth.getClientSecret().isEmpty()) {
        keptSecret = kept.clientSecret();
      }
    }
    if (current.hasOauth2()) {
      // where and as whom tokens are refreshed never changes: left out, they are kept
      if (auth.getMcpServerUrl().isEmpty()) {
        auth.setMcpServerUrl(current.getOauth2().getMcpServerUrl());
      }
      if (auth.getTokenUrl().isEmpty()) {
        auth.setTokenUrl(current.getOauth2().getTokenUrl());
      }
      if (auth.getClientId().isEmpty()) {
        auth.setClientId(current.getOauth2().getClientId());
      }
      if (auth.getScope().isEmpty()) {
        auth.setScope(current.getOauth2().getScope());
      }
      if (auth.getTokenEndpointAuth()
          == dev.corral.proto.v1.TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_UNSPECIFIED) {
        auth.setTokenEndpointAuth(current.getOauth2().getTokenEndpointAuth());
      }
    }
    // a kept client secret stays where it is sent; one stored before that was checked, where it
    // never is, goes (kept, it would make every update of its credential fail)
    if (keptSecret != null
        && !auth.getTokenUrl().isEmpty()
        && auth.getTokenEndpointAuth()
            != dev.corral.proto.v1.TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_NONE) {
      auth.setClientSecret(keptSecret);
    }
    return auth.build();
  }

  /** A credential's kind, public part and secret values, from a request's {@code auth}. */
  private record Kinded(String kind, Credential info, SecretValues secrets) {}

  private static Kinded kinded(CreateCredentialRequest request) {
    return switch (request.getAuthCase()) {
      case STATIC_HEADER -> staticHeader("static_header", request.getStaticHeader());
      case OAUTH2 -> oauth2("oauth2", request.getOauth2());
      case BASIC -> basic("basic", request.getBasic());
      default -> throw new InvalidArgumentException("auth", "needs static_header, oauth2 or basic");
    };
  }

  private static Kinded kinded(UpdateCredentialRequest request) {
    return switch (request.getAuthCase()) {
      case STATIC_HEADER -> staticHeader("static_header", request.getStaticHeader());
      case OAUTH2 -> oauth2("oauth2", request.getOauth2());
      case BASIC -> basic("basic", request.getBasic());
      default -> throw new IllegalStateException("no auth to rotate");
    };
  }

  private static Kinded staticHeader(String field, dev.corral.proto.v1.StaticHeaderAuth auth) {
    CredentialRules.staticHeader(field, auth);
    return new Kinded(
        "static_header",
        Credential.newBuilder()
            .setStaticHeader(
                StaticHeaderInfo.newBuilder()
                    .setMcpServerUrl(CredentialRules.normalized(field, auth.getMcpServerUrl()))
                    .setHeaderName(
                        auth.getHeaderName().isEmpty() ? "Authorization" : auth.getHeaderName()))
            .build(),
        new SecretValues(auth.getValue(), null, null, null, null));
  }

  private static Kinded oauth2(String field, dev.corral.proto.v1.OAuth2Auth auth) {
    CredentialRules.oauth2(field, auth);
    OAuth2Info.Builder info =
        OAuth2Info.newBuilder()
            .setMcpServerUrl(CredentialRules.normalized(field, auth.getMcpServerUrl()))
            .setHasRefreshToken(!auth.getRefreshToken().isEmpty())
            .setTokenUrl(auth.getTokenUrl())
            .setClientId(auth.getClientId())
            .setScope(auth.getScope())
            .setTokenEndpointAuth(auth.getTokenEndpointAuth());
    if (auth.hasExpiresAt()) {
      info.setExpiresAt(auth.getExpiresAt());
    }
    return new Kinded(
        "oauth2",
        Credential.newBuilder().setOauth2(info).build(),
        new SecretValues(
            null,
            auth.getAccessToken(),
            emptyToNull(auth.getRefreshToken()),
            emptyToNull(auth.getClientSecret()),
            null));
  }

  private static Kinded basic(String field, dev.corral.proto.v1.BasicAuth auth) {
    CredentialRules.basic(field, auth);
    return new Kinded(
        "basic",
        Credential.newBuilder()
            .setBasic(
                BasicAuthInfo.newBuilder()
                    .addAllHosts(auth.getHostsList())
                    .setUsername(auth.getUsername()))
            .build(),
        new SecretValues(null, null, null, null, auth.getPassword()));
  }

  /** The bindings of a rotated credential must be the ones it was made with. */
  private static void requireSameBinding(Credential current, Credential next) {
    if (current.getKindCase() != next.getKindCase()) {
      throw new InvalidArgumentException(
          "auth",
          "is of another kind than the credential's; a credential's kind cannot change (create"
              + " another credential)");
    }
    switch (current.getKindCase()) {
      case STATIC_HEADER -> {
        same(
            "static_header.mcp_server_url",
            current.getStaticHeader().getMcpServerUrl(),
            next.getStaticHeader().getMcpServerUrl());
      }
      case OAUTH2 -> {
        same(
            "oauth2.mcp_server_url",
            current.getOauth2().getMcpServerUrl(),
            next.getOauth2().getMcpServerUrl());
        // as the URL reads once normalized (its case, a default port): the same endpoint; a
        // token with no refresh has none
        same(
            "oauth2.token_url",
            tokenEndpoint(current.getOauth2().getTokenUrl()),
            tokenEndpoint(next.getOauth2().getTokenUrl()));
        same("oauth2.client_id", current.getOauth2().getClientId(), next.getOauth2().getClientId());
      }
      case BASIC -> {
        // the origins the hosts name, in any order and spelling (github.com is github.com:443)
        if (!origins(current.getBasic().getHostsList())
            .equals(origins(next.getBasic().getHostsList()))) {
          same(
              "basic.hosts",
              current.getBasic().getHostsList().toString(),
              next.getBasic().getHostsList().toString());
        }
      }
      default -> {}
    }
  }

  private static java.util.Set<BasicOrigin> origins(List<String> hosts) {
    java.util.Set<BasicOrigin> origins = new java.util.HashSet<>();
    hosts.forEach(host -> BasicOrigin.ofEntry(host).ifPresent(origins::add));
    return origins;
  }

  /** A token URL as it reads once normalized, or "" when there is none. */
  private static String tokenEndpoint(String url) {
    return url.isEmpty() ? "" : CredentialRules.normalized("oauth2.token_url", url);
  }

  private static void same(String field, String before, String after) {
    if (!before.equals(after)) {
      throw new InvalidArgumentException(
          field, "cannot change (it was " + before + "); make a new credential instead");
    }
  }

  private static void copyKind(Credential.Builder next, Credential kind) {
    switch (kind.getKindCase()) {
      case STATIC_HEADER -> next.setStaticHeader(kind.getStaticHeader());
      case OAUTH2 -> next.setOauth2(kind.getOauth2());
      case BASIC -> next.setBasic(kind.getBasic());
      default -> {}
    }
  }

  private static void requireBound(
      Credential credential, String url, dev.corral.common.CredentialUse use) {
    if (use == dev.corral.common.CredentialUse.GIT_REPOSITORY && !credential.hasBasic()) {
      throw new CredentialUnusableException(
          "credential "
              + credential.getId()
              + " is an MCP server's ("
              + credential.getKindCase().name().toLowerCase(java.util.Locale.ROOT)
              + "); a git repository takes a basic credential",
          false);
    }
    String target;
    try {
      target = CredentialRules.normalized("url", url);
    } catch (InvalidArgumentException e) {
      throw new CredentialUnusableException(
          "the URL " + url + " is not an http or https URL", false);
    }
    String bound =
        switch (credential.getKindCase()) {
          case STATIC_HEADER -> credential.getStaticHeader().getMcpServerUrl();
          case OAUTH2 -> credential.getOauth2().getMcpServerUrl();
          default -> null;
        };
    if (bound != null && bound.equals(target)) {
      return;
    }
    if (credential.hasBasic()) {
      Optional<BasicOrigin> origin = BasicOrigin.ofUrl(target);
      if (origin.isPresent()
          && credential.getBasic().getHostsList().stream()
              .map(BasicOrigin::ofEntry)
              .anyMatch(origin::equals)) {
        return;
      }
    }
    throw new CredentialUnusableException(
        "credential "
            + credential.getId()
            + " is bound to "
            + (bound != null ? bound : "the hosts " + credential.getBasic().getHostsList())
            + ", not to "
            + target,
        false);
  }

  private boolean expiring(Credential credential) {
    return credential.hasOauth2()
        && credential.getOauth2().getHasRefreshToken()
        && credential.getOauth2().hasExpiresAt()
        && ProtoTime.toInstant(credential.getOauth2().getExpiresAt())
            .isBefore(clock.instant().plus(REFRESH_BEFORE));
  }

  private HttpAuth httpAuth(Tenant tenant, CredentialRepository.Stored stored) {
    return httpAuth(stored.credential(), open(tenant, stored));
  }

  private SecretValues open(Tenant tenant, CredentialRepository.Stored stored) {
    byte[] plaintext = Envelope.open(keys, stored.box(), tenant.id(), stored.credential().getId());
    try {
      return SecretValues.fromBytes(plaintext);
    } finally {
      Arrays.fill(plaintext, (byte) 0);
    }
  }

  /**
   * The credential of a header value made of an authentication scheme (a token of letters, digits
   * and {@code !#$%&'*+.^_`|~-}), white space and the credential; null for any other value.
   */
  static String afterScheme(String value) {
    int end = 0;
    while (end < value.length() && isTokenCharacter(value.charAt(end))) {
      end++;
    }
    if (end == 0 || end == value.length() || !Character.isWhitespace(value.charAt(end))) {
      return null;
    }
    String credential = value.substring(end).strip();
    return credential.isEmpty() ? null : credential;
  }

  private static boolean isTokenCharacter(char c) {
    return (c < 128 && Character.isLetterOrDigit(c)) || "!#$%&'*+.^_`|~-".indexOf(c) >= 0;
  }

  private static HttpAuth httpAuth(Credential credential, SecretValues secrets) {
    List<String> all = new ArrayList<>(secrets.all());
    return switch (credential.getKindCase()) {
      case STATIC_HEADER -> {
        // "Bearer <token>", "token <token>": a server may quote the token without its scheme
        String token = afterScheme(secrets.headerValue());
        if (token != null) {
          all.add(token);
        }
        yield new HttpAuth(
            credential.getId(),
            credential.getStaticHeader().getHeaderName(),
            secrets.headerValue(),
            all);
      }
      case OAUTH2 -> {
        String value = "Bearer " + secrets.accessToken();
        all.add(value);
        yield new HttpAuth(credential.getId(), "Authorization", value, all);
      }
      case BASIC -> {
        String pair = credential.getBasic().getUsername() + ":" + secrets.password();
        String encoded = Base64.getEncoder().encodeToString(pair.getBytes(StandardCharsets.UTF_8));
        all.add(encoded);
        yield new HttpAuth(credential.getId(), "Authorization", "Basic " + encoded, all);
      }
      default ->
          throw new IllegalStateException("credential " + credential.getId() + " has no kind");
    };
  }

  /** Records a use, off the call's path and at most once a minute per credential. */
  private void touch(Tenant tenant, String credentialId) {
    Instant now = clock.instant();
    Instant last = touched.get(credentialId);
    if (last != null && last.plus(TOUCH_EVERY).isAfter(now)) {
      return;
    }
    if (touched.size() >= 10_000) {
      touched.clear();
    }
    touched.put(credentialId, now);
    repository
        .used(tenant, credentialId)
        .subscribe()
        .with(
            ignored -> {},
            failure ->
                LOGGER.debugf(
                    "credential=%s use not recorded: %s", credentialId, failure.getMessage()));
  }

  /** What a credential's row holds as its public record (without the columns' fields). */
  private static Credential infoOf(Credential credential) {
    return credential.toBuilder()
        .clearId()
        .clearTenantId()
        .clearKeyId()
        .clearCreatedAt()
        .clearRotatedAt()
        .clearLastUsedAt()
        .build();
  }

  private static String emptyToNull(String value) {
    return value == null || value.isEmpty() ? null : value;
  }

  private record Pending(String id, String kind, Credential info, Envelope.Box box) {}
}
