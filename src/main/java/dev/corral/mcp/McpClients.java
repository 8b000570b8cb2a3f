package dev.corral.mcp;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.corral.vault.HttpAuth;
import io.modelcontextprotocol.client.McpAsyncClient;
import io.modelcontextprotocol.client.McpClient;
import io.modelcontextprotocol.client.transport.HttpClientStreamableHttpTransport;
import io.modelcontextprotocol.common.McpTransportContext;
import io.modelcontextprotocol.json.jackson2.JacksonMcpJsonMapper;
import io.modelcontextprotocol.json.schema.jackson2.DefaultJsonSchemaValidator;
import io.modelcontextprotocol.spec.McpSchema;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import java.net.URI;
import java.net.http.HttpClient;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.jboss.logging.Logger;
import reactor.core.publisher.Mono;
import reactor.util.context.Context;

/**
 * Open MCP clients, one per tenant, server URL and credential, so that no MCP session is shared
 * between tenants or credentials. At most {@link McpConfig#maxClients()} are open; the least
 * recently used is closed first. The credential travels with each call (in the Reactor context) and
 * is added to that call's requests only; a client holds none.
 */
@ApplicationScoped
class McpClients {

  private static final Logger LOGGER = Logger.getLogger(McpClients.class);
  private static final String AUTH = "corral-http-auth";
  private static final int MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

  private final McpConfig config;
  private final dev.corral.common.OutboundProxy proxy;
  private final ObjectMapper json = new ObjectMapper();
  private final Map<Key, Open> clients = new ConcurrentHashMap<>();

  /**
   * MCP requests (listings and calls) one tenant may have under way on this replica: they hold
   * connections of the outbound proxy, which all tenants share.
   */
  static final int MAX_IN_FLIGHT_PER_TENANT = 64;

  private final dev.corral.common.InFlightCounts tenantsInFlight =
      new dev.corral.common.InFlightCounts();

  /** A tenant has as many MCP requests under way here as it may: no server's failure. */
  static final class TenantBusyException extends dev.corral.common.FailedPreconditionException {
    TenantBusyException(String message) {
      super(message);
    }
  }

  /** MCP requests under way, every tenant's (for tests). */
  int inFlight() {
    return tenantsInFlight.total();
  }

  McpClients(McpConfig config, dev.corral.common.OutboundProxy proxy) {
    this.config = config;
    this.proxy = proxy;
  }

  /** Which client: whose, to which server, with which credential (empty for none). */
  record Key(String tenantId, String url, String credentialId) {}

  /**
   * @param inUse calls and listings under way on the client: it is not closed for room while any is
   */
  private record Open(
      McpAsyncClient client, long[] lastUsed, java.util.concurrent.atomic.AtomicInteger inUse) {}

  /**
   * What {@code use} does with the client of {@code key}, which counts as in use until that ends.
   * Past {@code corral.mcp.max-clients}, an idle client is closed for room: of the tenant that
   * holds the most clients, its least recently used. A client with a call under way is never closed
   * for room (its call would fail midway, after the server may have acted on it).
   */
  <T> Mono<T> using(Key key, java.util.function.Function<McpAsyncClient, Mono<T>> use) {
    return Mono.defer(
        () -> {
          if (!tenantsInFlight.enter(key.tenantId(), MAX_IN_FLIGHT_PER_TENANT)) {
            return Mono.error(
                new TenantBusyException(
                    "its tenant has "
                        + MAX_IN_FLIGHT_PER_TENANT
                        + " MCP requests under way on this replica; try again when one ends"));
          }
          Open used;
          Mono<T> work;
          try {
            used = inUse(key);
            work = use.apply(used.client());
          } catch (RuntimeException failed) {
            tenantsInFlight.leave(key.tenantId());
            throw failed;
          }
          return work.doFinally(
              ignored -> {
                tenantsInFlight.leave(key.tenantId());
                used.inUse().decrementAndGet();
                used.lastUsed()[0] = System.nanoTime();
              });
        });
  }

  /**
   * The client of {@code key}, counted as in use. A new client is built outside the lock (that
   * starts threads of its own); only the count and the choice of one to close for room are made
   * under it.
   */
  private Open inUse(Key key) {
    while (true) {
      Open open = clients.get(key);
      if (open == null) {
        Open fresh = open(key);
        open = clients.putIfAbsent(key, fresh);
        if (open == null) {
          open = fresh;
        } else {
          close(fresh.client()); // another call built one first
        }
      }
      synchronized (clients) {
        if (clients.get(key) != open) {
          continue; // closed for room meanwhile: take or build the one there now
        }
        open.lastUsed()[0] = System.nanoTime();
        open.inUse().incrementAndGet();
        if (clients.size() > config.maxClients()) {
          closeIdlest();
        }
        return open;
      }
    }
  }

  /** Closes a client after its server failed it: the next call starts a fresh MCP session. */
  void discard(Key key) {
    Open open = clients.remove(key);
    if (open != null) {
      close(open.client());
    }
  }

  /** The Reactor context that carries {@code auth} (or none) to the requests of one call. */
  static Context withAuth(Context context, HttpAuth auth) {
    return auth == null
        ? context
        : context.put(McpTransportContext.KEY, McpTransportContext.create(Map.of(AUTH, auth)));
  }

  private Open open(Key key) {
    URI url = URI.create(key.url());
    String origin = url.getScheme() + "://" + url.getRawAuthority();
    String endpoint =
        (url.getRawPath() == null || url.getRawPath().isEmpty() ? "/" : url.getRawPath())
            + (url.getRawQuery() == null ? "" : "?" + url.getRawQuery());
    HttpClientStreamableHttpTransport transport =
        HttpClientStreamableHttpTransport.builder(origin)
            .endpoint(endpoint)
            .jsonMapper(new JacksonMcpJsonMapper(json))
            .connectTimeout(config.connectTimeout())
            // A redirect would carry the credential to another URL than the one it is bound to.
            .customizeClient(
                client ->
                    client
                        .followRedirects(HttpClient.Redirect.NEVER)
                        // to the address corral checked, not to a second lookup's
                        .proxy(proxy.selector()))
            .openConnectionOnStartup(false)
            .maxResponseSize(MAX_RESPONSE_BYTES)
            .httpRequestCustomizer(McpClients::authorize)
            .build();
    McpAsyncClient client =
        McpClient.async(transport)
            .requestTimeout(config.callTimeout())
            .initializationTimeout(config.listTimeout())
            .jsonSchemaValidator(new DefaultJsonSchemaValidator(json))
            .clientInfo(new McpSchema.Implementation("corral", "0.1.0"))
            .build();
    return new Open(
        client, new long[] {System.nanoTime()}, new java.util.concurrent.atomic.AtomicInteger());
  }

  /** Adds the call's credential header, when the call has one. */
  private static void authorize(
      java.net.http.HttpRequest.Builder request,
      String method,
      URI uri,
      String body,
      McpTransportContext context) {
    Object auth = context == null ? null : context.get(AUTH);
    if (auth instanceof HttpAuth httpAuth) {
      request.setHeader(httpAuth.headerName(), httpAuth.headerValue());
    }
  }

  private void closeIdlest() {
    toClose(
            clients.entrySet().stream()
                .map(
                    entry ->
                        new Candidate(
                            entry.getKey(),
                            entry.getValue().lastUsed()[0],
                            entry.getValue().inUse().get()))
                .toList())
        .ifPresent(this::discard);
  }

  /** A client that might be closed for room: when it was last used, and its calls under way. */
  record Candidate(Key key, long lastUsed, int inUse) {}

  /**
   * The client to close for room: an idle one (no call under way) of the tenant that holds the most
   * clients, the least recently used of those; none when every client is in use.
   */
  static Optional<Key> toClose(List<Candidate> candidates) {
    Map<String, Long> perTenant =
        candidates.stream()
            .collect(
                java.util.stream.Collectors.groupingBy(
                    candidate -> candidate.key().tenantId(),
                    java.util.stream.Collectors.counting()));
    return candidates.stream()
        .filter(candidate -> candidate.inUse() == 0)
        .min(
            Comparator.<Candidate>comparingLong(
                    candidate -> -perTenant.get(candidate.key().tenantId()))
                .thenComparingLong(Candidate::lastUsed))
        .map(Candidate::key);
  }

  private static void close(McpAsyncClient client) {
    client
        .closeGracefully()
        .subscribe(
            ignored -> {},
            failure ->
                LOGGER.debugf("an MCP client did not close cleanly: %s", failure.getMessage()));
  }

  @PreDestroy
  void closeAll() {
    clients.keySet().forEach(this::discard);
  }
}
