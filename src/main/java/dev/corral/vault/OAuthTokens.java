package dev.corral.vault;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.corral.proto.v1.OAuth2Info;
import dev.corral.proto.v1.TokenEndpointAuth;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * Refreshes OAuth 2 access tokens at a credential's token endpoint (RFC 6749 section 6), without
 * blocking: the JDK's HTTP client, asynchronously, with a timeout. Nothing of what it sends or
 * receives is logged, and its failures name the endpoint and the OAuth error code only.
 */
@ApplicationScoped
class OAuthTokens {

  /** The longest lifetime taken from a token endpoint's {@code expires_in} (ten years). */
  private static final long MAX_EXPIRES_IN = 10L * 366 * 24 * 3600;

  static final Duration TIMEOUT = Duration.ofSeconds(10);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Pattern ERROR_CODE = Pattern.compile("[a-z_]{1,64}");
  private static final int MAX_ANSWER = 64 * 1024;

  private final dev.corral.common.OutboundAddresses outbound;

  private final HttpClient http;
  private final dev.corral.common.OutboundProxy proxy;

  OAuthTokens(dev.corral.common.OutboundAddresses outbound, dev.corral.common.OutboundProxy proxy) {
    this.outbound = outbound;
    this.proxy = proxy;
    this.http =
        HttpClient.newBuilder()
            .connectTimeout(Duration.ofSeconds(5))
            .followRedirects(HttpClient.Redirect.NEVER)
            // to the address corral checked, not to a second lookup's
            .proxy(proxy.selector())
            .build();
  }

  /** A fresh access token, its expiry (null if not said) and a new refresh token (or null). */
  record Refreshed(String accessToken, Instant expiresAt, String refreshToken) {

    @Override
    public String toString() {
      return "Refreshed[redacted, expires " + expiresAt + "]";
    }
  }

  Uni<Refreshed> refresh(dev.corral.common.Tenant tenant, OAuth2Info info, SecretValues secrets) {
    String form = form(info, secrets);
    HttpRequest.Builder request =
        HttpRequest.newBuilder(URI.create(info.getTokenUrl()))
            .timeout(TIMEOUT)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(form));
    if (basicAuth(info, secrets)) {
      String pair = encode(info.getClientId()) + ":" + encode(secrets.clientSecret());
      request.header(
          "authorization",
          "Basic " + Base64.getEncoder().encodeToString(pair.getBytes(StandardCharsets.UTF_8)));
    }
    // The request's own timeout covers only the wait for the headers; the whole answer, body
    // included, gets the same time. A refresh runs under the credential's row lock.
    return outbound
        .check(tenant, "its host", info.getTokenUrl())
        .onFailure()
        .transform(refused -> refusal(info, "may not be called: " + refused.getMessage()))
        .flatMap(
            reachable -> {
              long started = System.nanoTime();
              return exchange(request.build())
                  .onFailure()
                  .transform(
                      failure ->
                          refusal(
                              info,
                              proxied(info, started)
                                  .orElse("could not be reached (" + reason(failure) + ")")))
                  .map(
                      response -> {
                        // an answer of the proxy's own, not the endpoint's
                        Optional<String> proxied = proxied(info, started);
                        if (proxied.isPresent() && response.statusCode() >= 400) {
                          throw refusal(info, proxied.get());
                        }
                        return refreshed(info, response);
                      });
            });
  }

  /** Why the outbound proxy refused or failed the connection to the endpoint, if it did. */
  private Optional<String> proxied(OAuth2Info info, long started) {
    return proxy.failureSince(info.getTokenUrl(), started);
  }

  /**
   * The exchange, within {@link #TIMEOUT} in all. Past it, or when the caller gives up, the body's
   * subscription is cancelled, which closes the connection: the JDK's client does not abort an
   * exchange whose future is cancelled, and a slow endpoint would keep its connection open.
   */
  private Uni<HttpResponse<byte[]>> exchange(HttpRequest request) {
    Bounded body = new Bounded();
    return Uni.createFrom()
        .completionStage(() -> http.sendAsync(request, responseInfo -> body))
        .ifNoItem()
        .after(TIMEOUT)
        .fail()
        .onFailure()
        .invoke(failure -> body.abort())
        .onCancellation()
        .invoke(body::abort);
  }

  /**
   * The body, at most {@link #MAX_ANSWER} bytes: a longer one is cut off (the exchange is
   * cancelled) and reads as null, so that an endless answer costs nothing more.
   */
  private static final class Bounded implements HttpResponse.BodySubscriber<byte[]> {
    private final java.util.concurrent.CompletableFuture<byte[]> body =
        new java.util.concurrent.CompletableFuture<>();
    private final java.io.ByteArrayOutputStream kept = new java.io.ByteArrayOutputStream();
    private volatile java.util.concurrent.Flow.Subscription subscription;
    private volatile boolean aborted;

    @Override
    public java.util.concurrent.CompletionStage<byte[]> getBody() {
      return body;
    }

    @Override
    public void onSubscribe(java.util.concurrent.Flow.Subscription subscription) {
      this.subscription = subscription;
      if (aborted) {
        subscription.cancel();
        return;
      }
      subscription.request(Long.MAX_VALUE);
    }

    @Override
    public void onNext(java.util.List<java.nio.ByteBuffer> buffers) {
      synchronized (kept) {
        for (java.nio.ByteBuffer buffer : buffers) {
          if (body.isDone()) {
            return;
          }
          if (kept.size() + buffer.remaining() > MAX_ANSWER) {
            subscription.cancel();
            body.complete(null);
            return;
          }
          byte[] bytes = new byte[buffer.remaining()];
          buffer.get(bytes);
          kept.writeBytes(bytes);
        }
      }
    }

    @Override
    public void onError(Throwable failure) {
      body.completeExceptionally(failure);
    }

    @Override
    public void onComplete() {
      synchronized (kept) {
        body.complete(kept.toByteArray());
      }
    }

    /** Gives up the exchange: its connection closes. */
    void abort() {
      aborted = true;
      var current = subscription;
      if (current != null) {
        current.cancel();
      }
      body.completeExceptionally(new java.io.IOException("the exchange was given up"));
    }
  }

  private static Refreshed refreshed(OAuth2Info info, HttpResponse<byte[]> response) {
    if (response.body() == null) {
      throw refusal(
          info,
          "answered HTTP " + response.statusCode() + " with more than " + MAX_ANSWER + " bytes");
    }
    JsonNode answer;
    try {
      answer = JSON.readTree(response.body());
    } catch (java.io.IOException malformed) {
      answer = null;
    }
    if (response.statusCode() / 100 != 2) {
      String code = answer == null ? "" : answer.path("error").asText("");
      throw refusal(
          info,
          "answered HTTP "
              + response.statusCode()
              + (ERROR_CODE.matcher(code).matches() ? " (" + code + ")" : ""));
    }
    String accessToken = answer == null ? "" : answer.path("access_token").asText("");
    if (!CredentialRules.isHeaderValue(accessToken)) {
      // a line break in it would add headers of the endpoint's choosing to every call
      throw refusal(info, "answered without a usable access_token");
    }
    String refreshToken = answer.path("refresh_token").asText("");
    if (!refreshToken.isEmpty() && !CredentialRules.isHeaderValue(refreshToken)) {
      throw refusal(info, "answered with an unusable refresh_token");
    }
    long expiresIn = Math.min(answer.path("expires_in").asLong(0), MAX_EXPIRES_IN);
    return new Refreshed(
        accessToken,
        expiresIn > 0 ? Instant.now().plusSeconds(expiresIn) : null,
        refreshToken.isEmpty() ? null : refreshToken);
  }

  private static String form(OAuth2Info info, SecretValues secrets) {
    StringBuilder form =
        new StringBuilder("grant_type=refresh_token&refresh_token=")
            .append(encode(secrets.refreshToken()));
    if (!basicAuth(info, secrets)) {
      form.append("&client_id=").append(encode(info.getClientId()));
      if (info.getTokenEndpointAuth() == TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_CLIENT_SECRET_POST) {
        form.append("&client_secret=").append(encode(secrets.clientSecret()));
      }
    }
    if (!info.getScope().isEmpty()) {
      form.append("&scope=").append(encode(info.getScope()));
    }
    return form.toString();
  }

  private static boolean basicAuth(OAuth2Info info, SecretValues secrets) {
    TokenEndpointAuth auth = info.getTokenEndpointAuth();
    return auth == TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_CLIENT_SECRET_BASIC
        || (auth == TokenEndpointAuth.TOKEN_ENDPOINT_AUTH_UNSPECIFIED
            && secrets.clientSecret() != null
            && !secrets.clientSecret().isEmpty());
  }

  private static String encode(String value) {
    return URLEncoder.encode(value == null ? "" : value, StandardCharsets.UTF_8);
  }

  private static CredentialUnusableException refusal(OAuth2Info info, String what) {
    return new CredentialUnusableException(
        "the OAuth token endpoint " + info.getTokenUrl() + " " + what, true);
  }

  private static String reason(Throwable failure) {
    Throwable cause = failure;
    while (cause.getCause() != null && cause.getCause() != cause) {
      cause = cause.getCause();
    }
    if (cause instanceof java.net.http.HttpTimeoutException
        || cause instanceof io.smallrye.mutiny.TimeoutException) {
      return "timed out after " + TIMEOUT.toSeconds() + " s";
    }
    if (cause instanceof java.net.ConnectException) {
      return "connection refused";
    }
    return cause
        .getClass()
        .getSimpleName()
        .replace("Exception", "")
        .toLowerCase(java.util.Locale.ROOT);
  }
}
