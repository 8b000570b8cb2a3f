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
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.jboss.logging.Logger;
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

  McpClients(McpConfig config, dev.corral.common.OutboundProxy proxy) {
    this.config = config;
    this.proxy = proxy;
  }

  /** Which client: whose, to which server, with which credential (empty for none). */
  record Key(String tenantId, String url, String credentialId) {}

  private record Open(McpAsyncClient client, long[] lastUsed) {}

  McpAsyncClient client(Key key) {
    Open open = clients.computeIfAbsent(key, this::open);
    open.lastUsed()[0] = System.nanoTime();
    if (clients.size() > config.maxClients()) {
      closeIdlest();
    }
    return open.client();
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
    return new Open(client, new long[] {System.nanoTime()});
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
    clients.entrySet().stream()
        .min(Comparator.comparingLong(entry -> entry.getValue().lastUsed()[0]))
        .ifPresent(entry -> discard(entry.getKey()));
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
