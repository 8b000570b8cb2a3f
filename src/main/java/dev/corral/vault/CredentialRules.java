package dev.corral.vault;

import dev.corral.common.HttpUrls;
import dev.corral.common.InputRules;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.BasicAuth;
import dev.corral.proto.v1.OAuth2Auth;
import dev.corral.proto.v1.StaticHeaderAuth;
import dev.corral.proto.v1.TokenEndpointAuth;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;

/** What a credential must look like before it is sealed. */
final class CredentialRules {

  static final int MAX_NAME = 256;
  static final int MAX_SECRET = 8192;
  static final int MAX_URL = 2048;
  static final int MAX_HOSTS = 16;

  /** Headers that frame or route the request, or that MCP itself sets: never from a credential. */
  private static final Set<String> RESERVED_HEADERS =
      Set.of(
          "host",
          "content-length",
          "content-type",
          "transfer-encoding",
          "connection",
          "upgrade",
          "te",
          "trailer",
          "accept",
          "expect",
          "mcp-session-id",
          "mcp-protocol-version",
          "last-event-id");

  /** Visible ASCII and spaces: what a header value or token may hold (no CR, LF or controls). */
  private static final Pattern HEADER_VALUE = Pattern.compile("[\\x20-\\x7E]+");

  private CredentialRules() {}

  static String name(String field, String name) {
    InputRules.length(field, name, 1, MAX_NAME);
    if (name.chars().anyMatch(Character::isISOControl)) {
      throw new InvalidArgumentException(field, "must not contain control characters");
    }
    return name;
  }

  static void staticHeader(String field, StaticHeaderAuth auth) {
    url(field + ".mcp_server_url", auth.getMcpServerUrl());
    String header = auth.getHeaderName().isEmpty() ? "Authorization" : auth.getHeaderName();
    if (!HttpAuth.HEADER_NAME.matcher(header).matches()) {
      throw new InvalidArgumentException(field + ".header_name", "is not an HTTP header name");
    }
    if (RESERVED_HEADERS.contains(header.toLowerCase(Locale.ROOT))) {
      throw new InvalidArgumentException(
          field + ".header_name", "names a header corral or MCP sets itself");
    }
    headerValue(field + ".value", auth.getValue(), true);
  }

  /** The last second of the year 9999, as far as RFC 3339 (and the REST facade) can write. */
  private static final long MAX_SECONDS = 253_402_300_799L;

  /** A moment a token may expire at: from 1970 to the year 9999, with valid nanos. */
  private static void timestamp(String field, com.google.protobuf.Timestamp time) {
    if (time.getSeconds() < 0 || time.getSeconds() > MAX_SECONDS) {
      throw new InvalidArgumentException(field, "must be between 1970 and the end of 9999");
    }
    if (time.getNanos() < 0 || time.getNanos() > 999_999_999) {
      throw new InvalidArgumentException(field + ".nanos", "must be between 0 and 999999999");
    }
  }

  static void oauth2(String field, OAuth2Auth auth) {
    url(field + ".mcp_server_url", auth.getMcpServerUrl());
    headerValue(field + ".access_token", auth.getAccessToken(), true);
    headerValue(field + ".refresh_token", auth.getRefreshToken(), false);
    if (!auth.getRefreshToken().isEmpty() || !auth.getTokenUrl().isEmpty()) {
      url(field + ".token_url", auth.getTokenUrl());
      if (auth.getClientId().isEmpty()) {
        throw new InvalidArgumentException(field + ".client_id", "is required to refresh tokens");
      }
    }
    InputRules.length(field + ".client_id", auth.getClientId(), 0, 256);
    if (!auth.getClientId().isEmpty() && !HEADER_VALUE.matcher(auth.getClientId()).matches()) {
      throw new InvalidArgumentException(field + ".client_id", "must be visible ASCII");
    }
    headerValue(field + ".client_secret", auth.getClientSecret(), false);
    InputRules.length(field + ".scope", auth.getScope(), 0, 1024);
    if (!auth.getScope().isEmpty() && !HEADER_VALUE.matcher(auth.getScope()).matches()) {
      throw new InvalidArgumentException(field + ".scope", "must be visible ASCII");
    }
    if (auth.hasExpiresAt()) {
      timestamp(field + ".expires_at", auth.getExpiresAt());
    }
    if (auth.getTokenEndpointAuth() == TokenEndpointAuth.UNRECOGNIZED) {
      throw new InvalidArgumentException(field + ".token_endpoint_auth", "is not a known value");
    }
    if (!auth.getClientSecret().isEmpty()) {
      // a secret corral would keep sealed and never send
      if (auth.getTokenUrl().isEmpty()) {
        throw new InvalidArgumentException(
            field + ".client_secret",
            "is sent only to refresh tokens, at token_url, which is not set");
      }
      if (auth.getTokenEndpointAuth() == TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_NONE) {
        throw new InvalidArgumentException(
            field + ".client_secret",
            "is never sent with token_endpoint_auth NONE; leave it empty, or choose BASIC or POST");
      }
    }
    if (auth.getTokenEndpointAuth() != TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_NONE
        && auth.getTokenEndpointAuth() != TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_UNSPECIFIED
        && auth.getClientSecret().isEmpty()) {
      throw new InvalidArgumentException(
          field + ".client_secret",
          "is required by token_endpoint_auth " + auth.getTokenEndpointAuth());
    }
  }

  static void basic(String field, BasicAuth auth) {
    List<String> hosts = auth.getHostsList();
    if (hosts.isEmpty() || hosts.size() > MAX_HOSTS) {
      throw new InvalidArgumentException(field + ".hosts", "needs 1 to " + MAX_HOSTS + " hosts");
    }
    Map<BasicOrigin, Integer> origins = new HashMap<>();
    for (int i = 0; i < hosts.size(); i++) {
      Optional<BasicOrigin> origin = BasicOrigin.ofEntry(hosts.get(i));
      if (origin.isEmpty()) {
        throw new InvalidArgumentException(
            field + ".hosts[" + i + "]",
            "is not a lowercase host name (https on port 443), host:port (https), or"
                + " http(s)://host[:port] (no path)");
      }
      Integer first = origins.putIfAbsent(origin.get(), i);
      if (first != null) {
        throw new InvalidArgumentException(
            field + ".hosts[" + i + "]",
            "names the scheme, host and port hosts[" + first + "] names already");
      }
    }
    InputRules.length(field + ".username", auth.getUsername(), 0, 256);
    if (auth.getUsername().contains(":")
        || !auth.getUsername().isEmpty() && !HEADER_VALUE.matcher(auth.getUsername()).matches()) {
      throw new InvalidArgumentException(field + ".username", "must be visible ASCII without ':'");
    }
    headerValue(field + ".password", auth.getPassword(), true);
  }

  /** An http or https URL with a host and no user information or fragment; normalized. */
  static String url(String field, String value) {
    return HttpUrls.normalized(field, value);
  }

  static String normalized(String field, String value) {
    return HttpUrls.normalized(field, value);
  }

  /** Whether {@code value} may be sent in a header: 1 to 8 KiB of visible ASCII and spaces. */
  static boolean isHeaderValue(String value) {
    return !value.isEmpty()
        && value.length() <= MAX_SECRET
        && HEADER_VALUE.matcher(value).matches();
  }

  private static void headerValue(String field, String value, boolean required) {
    if (value.isEmpty()) {
      if (required) {
        throw new InvalidArgumentException(field, "is required");
      }
      return;
    }
    if (value.length() > MAX_SECRET) {
      throw new InvalidArgumentException(
          field, "has " + value.length() + " characters; the limit is " + MAX_SECRET);
    }
    if (!HEADER_VALUE.matcher(value).matches()) {
      throw new InvalidArgumentException(
          field, "must be visible ASCII and spaces (no line breaks or control characters)");
    }
  }
}
