package dev.corral.rest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.ProtoTime;
import dev.corral.proto.v1.BasicAuth;
import dev.corral.proto.v1.CreateCredentialRequest;
import dev.corral.proto.v1.Credential;
import dev.corral.proto.v1.OAuth2Auth;
import dev.corral.proto.v1.StaticHeaderAuth;
import dev.corral.proto.v1.TokenEndpointAuth;
import dev.corral.proto.v1.UpdateCredentialRequest;
import dev.corral.proto.v1.Vault;
import dev.corral.vault.Credentials;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.Optional;
import java.util.Set;

/**
 * Vaults and credentials in the API's shape. {@code static_bearer} is corral's static header {@code
 * Authorization: Bearer …}; {@code mcp_oauth} is its OAuth 2 credential; corral's other kinds
 * ({@code static_header} with another header, {@code basic}) keep their names. A credential is
 * never shown with a secret. {@code environment_variable} credentials (secrets injected into a
 * sandbox) are refused: corral keeps every secret out of sandboxes.
 */
final class VaultShapes {

  private static final String BEARER = "Bearer ";

  private VaultShapes() {}

  static ObjectNode vault(Vault vault) {
    ObjectNode node =
        Shapes.object()
            .put("type", "vault")
            .put("id", vault.getId())
            .put("display_name", vault.getDisplayName());
    node.set("metadata", Shapes.metadata(vault.getMetadataMap()));
    node.set("created_at", Shapes.time(vault.hasCreatedAt(), vault.getCreatedAt()));
    node.set("updated_at", Shapes.time(vault.hasUpdatedAt(), vault.getUpdatedAt()));
    node.set("archived_at", Shapes.time(vault.hasArchivedAt(), vault.getArchivedAt()));
    return node;
  }

  static ObjectNode credential(Credential credential) {
    ObjectNode node =
        Shapes.object()
            .put("type", "vault_credential")
            .put("id", credential.getId())
            .put("vault_id", credential.getVaultId())
            .put("display_name", credential.getName());
    ObjectNode auth = node.putObject("auth");
    switch (credential.getKindCase()) {
      case STATIC_HEADER -> {
        var header = credential.getStaticHeader();
        if (header.getHeaderName().equalsIgnoreCase("authorization")) {
          auth.put("type", "static_bearer");
        } else {
          auth.put("type", "static_header").put("header_name", header.getHeaderName());
        }
        auth.put("mcp_server_url", header.getMcpServerUrl());
      }
      case OAUTH2 -> {
        var oauth = credential.getOauth2();
        auth.put("type", "mcp_oauth").put("mcp_server_url", oauth.getMcpServerUrl());
        auth.set("expires_at", Shapes.time(oauth.hasExpiresAt(), oauth.getExpiresAt()));
        if (oauth.getHasRefreshToken()) {
          ObjectNode refresh =
              auth.putObject("refresh")
                  .put("token_endpoint", oauth.getTokenUrl())
                  .put("client_id", oauth.getClientId());
          if (!oauth.getScope().isEmpty()) {
            refresh.put("scope", oauth.getScope());
          }
          refresh
              .putObject("token_endpoint_auth")
              .put("type", endpointAuth(oauth.getTokenEndpointAuth()));
        } else {
          auth.putNull("refresh");
        }
      }
      case BASIC -> {
        auth.put("type", "basic").put("username", credential.getBasic().getUsername());
        ArrayNode hosts = auth.putArray("hosts");
        credential.getBasic().getHostsList().forEach(hosts::add);
      }
      default -> auth.put("type", "unknown");
    }
    node.set("metadata", Shapes.metadata(credential.getMetadataMap()));
    node.set("created_at", Shapes.time(credential.hasCreatedAt(), credential.getCreatedAt()));
    node.set(
        "updated_at",
        credential.hasRotatedAt()
            ? Shapes.time(true, credential.getRotatedAt())
            : Shapes.time(credential.hasCreatedAt(), credential.getCreatedAt()));
    node.putNull("archived_at");
    return node;
  }

  private static String endpointAuth(TokenEndpointAuth auth) {
    return switch (auth) {
      case TOKEN_ENDPOINT_AUTH_CLIENT_SECRET_BASIC -> "client_secret_basic";
      case TOKEN_ENDPOINT_AUTH_CLIENT_SECRET_POST -> "client_secret_post";
      default -> "none";
    };
  }

  // --- requests
  // -----------------------------------------------------------------------------------

  /**
   * What the credential rules call the fields of a REST credential of {@code body}'s {@code
   * auth.type}: a bearer token is the value of a static header to them.
   */
  static FieldNames fieldNames(JsonNode body) {
    boolean bearer = "static_bearer".equals(body.path("auth").path("type").asText());
    return FieldNames.of(
        "name", "display_name",
        "metadata.entries", "metadata",
        "static_header.value", bearer ? "auth.token" : "auth.value",
        "static_header", "auth",
        "oauth2.refresh_token", "auth.refresh.refresh_token",
        "oauth2.token_url", "auth.refresh.token_endpoint",
        "oauth2.client_id", "auth.refresh.client_id",
        "oauth2.scope", "auth.refresh.scope",
        "oauth2.client_secret", "auth.refresh.token_endpoint_auth.client_secret",
        "oauth2.token_endpoint_auth", "auth.refresh.token_endpoint_auth",
        "oauth2", "auth",
        "basic", "auth");
  }

  /** A credential to create in {@code vaultId}. */
  static CreateCredentialRequest create(String vaultId, JsonNode body) {
    ObjectNode auth = Fields.object(body, "auth", "auth");
    CreateCredentialRequest.Builder request =
        CreateCredentialRequest.newBuilder()
            .setVaultId(vaultId)
            .setName(
                Fields.optionalString(body, "display_name", "display_name")
                    .orElseGet(() -> defaultName(auth)))
            .putAllMetadata(
                Fields.metadata(body, "metadata", "metadata")
                    .map(AgentShapes::withoutNulls)
                    .orElse(java.util.Map.of()));
    String type =
        Fields.type(
            auth,
            "auth",
            Set.of("static_bearer", "mcp_oauth", "static_header", "basic", "environment_variable"));
    switch (type) {
      case "static_bearer" -> request.setStaticHeader(bearer(auth));
      case "static_header" -> request.setStaticHeader(header(auth));
      case "mcp_oauth" -> request.setOauth2(oauth(auth, true));
      case "basic" -> request.setBasic(basic(auth));
      default ->
          throw new InvalidArgumentException(
              "auth.type",
              "corral never puts a secret into a sandbox: environment_variable credentials are not"
                  + " supported");
    }
    return request.build();
  }

  /**
   * An update's metadata patch (a null value deletes its key), to apply to the credential's
   * metadata under its lock; null without one.
   */
  static java.util.function.UnaryOperator<java.util.Map<String, String>> metadataPatch(
      JsonNode body) {
    return Fields.metadata(body, "metadata", "metadata")
        .<java.util.function.UnaryOperator<java.util.Map<String, String>>>map(
            patch -> metadata -> AgentShapes.patched(metadata, patch))
        .orElse(null);
  }

  /** An update: a new display name, or new secret values of the same kind. */
  static UpdateCredentialRequest update(String credentialId, Credential current, JsonNode body) {
    UpdateCredentialRequest.Builder request =
        UpdateCredentialRequest.newBuilder().setCredentialId(credentialId);
    Fields.optionalString(body, "display_name", "display_name").ifPresent(request::setName);
    Optional<ObjectNode> auth = Fields.optionalObject(body, "auth", "auth");
    if (auth.isPresent()) {
      String type =
          Fields.type(
              auth.get(), "auth", Set.of("static_bearer", "mcp_oauth", "static_header", "basic"));
      ObjectNode given = auth.get().deepCopy();
      // An update may leave the binding out: it keeps the one the credential has.
      if (!given.has("mcp_server_url")) {
        String url =
            current.hasStaticHeader()
                ? current.getStaticHeader().getMcpServerUrl()
                : current.hasOauth2() ? current.getOauth2().getMcpServerUrl() : "";
        if (!url.isEmpty()) {
          given.put("mcp_server_url", url);
        }
      }
      switch (type) {
        case "static_bearer" -> request.setStaticHeader(bearer(given));
        case "static_header" -> request.setStaticHeader(header(given));
        // every field of an OAuth update may be left out (as the SDKs' update params allow):
        // corral keeps what the credential has, secrets included; where and as whom tokens are
        // refreshed cannot change
        case "mcp_oauth" -> request.setOauth2(oauth(given, false));
        default -> request.setBasic(basic(given));
      }
    }
    return request.build();
  }

  /** The name of a credential created without a display name: its server's URL, cut to fit. */
  private static String defaultName(ObjectNode auth) {
    return fitName(
        Fields.optionalString(auth, "mcp_server_url", "auth.mcp_server_url").orElse("credential"));
  }

  /** {@code name}, or its first characters and an ellipsis if it is longer than a name may be. */
  static String fitName(String name) {
    return name.codePointCount(0, name.length()) <= Credentials.MAX_NAME
        ? name
        : name.substring(0, name.offsetByCodePoints(0, Credentials.MAX_NAME - 1)) + "\u2026";
  }

  private static StaticHeaderAuth bearer(ObjectNode auth) {
    String token = Fields.string(auth, "token", "auth.token");
    if (token.length() > Credentials.MAX_SECRET - BEARER.length()) {
      // the rules count the header value, which would name a length the client never sent
      throw new InvalidArgumentException(
          "auth.token",
          "has "
              + token.length()
              + " characters; the limit is "
              + (Credentials.MAX_SECRET - BEARER.length())
              + " (the header value, \""
              + BEARER
              + "\" and the token, is at most "
              + Credentials.MAX_SECRET
              + ")");
    }
    return StaticHeaderAuth.newBuilder()
        .setMcpServerUrl(Fields.string(auth, "mcp_server_url", "auth.mcp_server_url"))
        .setHeaderName("Authorization")
        .setValue(BEARER + token)
        .build();
  }

  private static StaticHeaderAuth header(ObjectNode auth) {
    return StaticHeaderAuth.newBuilder()
        .setMcpServerUrl(Fields.string(auth, "mcp_server_url", "auth.mcp_server_url"))
        .setHeaderName(Fields.string(auth, "header_name", "auth.header_name"))
        .setValue(Fields.string(auth, "value", "auth.value"))
        .build();
  }

  private static BasicAuth basic(ObjectNode auth) {
    return BasicAuth.newBuilder()
        .addAllHosts(Fields.strings(auth, "hosts", "auth.hosts"))
        .setUsername(Fields.string(auth, "username", "auth.username"))
        .setPassword(Fields.string(auth, "password", "auth.password"))
        .build();
  }

  /**
   * An {@code mcp_oauth} auth; for an update ({@code create} false) every field may be left out,
   * and is then empty.
   */
  private static OAuth2Auth oauth(ObjectNode auth, boolean create) {
    OAuth2Auth.Builder oauth = OAuth2Auth.newBuilder();
    if (create) {
      oauth
          .setMcpServerUrl(Fields.string(auth, "mcp_server_url", "auth.mcp_server_url"))
          .setAccessToken(Fields.string(auth, "access_token", "auth.access_token"));
    } else {
      Fields.optionalString(auth, "mcp_server_url", "auth.mcp_server_url")
          .ifPresent(oauth::setMcpServerUrl);
      Fields.optionalString(auth, "access_token", "auth.access_token")
          .ifPresent(oauth::setAccessToken);
    }
    Fields.optionalString(auth, "expires_at", "auth.expires_at")
        .ifPresent(
            expires -> {
              try {
                oauth.setExpiresAt(ProtoTime.of(OffsetDateTime.parse(expires)));
              } catch (DateTimeParseException e) {
                throw new InvalidArgumentException("auth.expires_at", "is not an RFC 3339 time");
              }
            });
    Fields.optionalObject(auth, "refresh", "auth.refresh")
        .ifPresent(
            refresh -> {
              if (Fields.has(refresh, "resource")) {
                throw new InvalidArgumentException(
                    "auth.refresh.resource",
                    "is not supported: corral sends no resource indicator when it refreshes");
              }
              if (create) {
                oauth
                    .setRefreshToken(
                        Fields.string(refresh, "refresh_token", "auth.refresh.refresh_token"))
                    .setTokenUrl(
                        Fields.string(refresh, "token_endpoint", "auth.refresh.token_endpoint"))
                    .setClientId(Fields.string(refresh, "client_id", "auth.refresh.client_id"));
              } else {
                Fields.optionalString(refresh, "refresh_token", "auth.refresh.refresh_token")
                    .ifPresent(oauth::setRefreshToken);
                Fields.optionalString(refresh, "token_endpoint", "auth.refresh.token_endpoint")
                    .ifPresent(oauth::setTokenUrl);
                Fields.optionalString(refresh, "client_id", "auth.refresh.client_id")
                    .ifPresent(oauth::setClientId);
              }
              Fields.optionalString(refresh, "scope", "auth.refresh.scope")
                  .ifPresent(oauth::setScope);
              Fields.optionalObject(
                      refresh, "token_endpoint_auth", "auth.refresh.token_endpoint_auth")
                  .ifPresent(
                      endpoint -> {
                        String type =
                            Fields.type(
                                endpoint,
                                "auth.refresh.token_endpoint_auth",
                                Set.of("none", "client_secret_basic", "client_secret_post"));
                        oauth.setTokenEndpointAuth(
                            switch (type) {
                              case "client_secret_basic" ->
                                  TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_CLIENT_SECRET_BASIC;
                              case "client_secret_post" ->
                                  TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_CLIENT_SECRET_POST;
                              default -> TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_NONE;
                            });
                        Fields.optionalString(
                                endpoint,
                                "client_secret",
                                "auth.refresh.token_endpoint_auth.client_secret")
                            .ifPresent(oauth::setClientSecret);
                      });
            });
    return oauth.build();
  }
}
