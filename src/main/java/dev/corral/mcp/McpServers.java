package dev.corral.mcp;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.McpServer;
import dev.corral.vault.CredentialUnusableException;
import dev.corral.vault.Credentials;
import dev.corral.vault.HttpAuth;
import io.modelcontextprotocol.client.transport.McpHttpClientTransportAuthorizationException;
import io.modelcontextprotocol.spec.McpError;
import io.modelcontextprotocol.spec.McpSchema;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.net.ConnectException;
import java.net.UnknownHostException;
import java.net.http.HttpTimeoutException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;
import org.jboss.logging.Logger;
import reactor.core.publisher.Mono;

/**
 * An agent's MCP servers, as corral's server uses them: their tools (listed once per session and
 * server, then again after {@link McpConfig#toolsTtl()}), and tool calls, with the server's vault
 * credential added to each request, one refresh and retry after a 401 for an OAuth token, and every
 * secret of the credential removed from what the server answers. A server that is down, refuses the
 * credential, takes too long or answers nonsense is a {@link McpFailure}, never an exception.
 */
@ApplicationScoped
public class McpServers {

  private static final Logger LOGGER = Logger.getLogger(McpServers.class);

  /** Tools of one server offered to the model at most. */
  static final int MAX_TOOLS = 128;

  private static final int MAX_DESCRIPTION = 10_000;
  private static final int MAX_SCHEMA = 64 * 1024;
  private static final int MAX_LISTINGS = 10_000;

  /**
   * Pages of one server's listing read at most: a server that answers with cursors for ever would
   * otherwise be read until the list timeout, every page kept.
   */
  static final int MAX_PAGES = 8;

  /**
   * Characters of names, descriptions and schemas the kept listings hold at most (one listing can
   * hold some 9 M); past it the oldest listings are dropped first.
   */
  static final long MAX_LISTED_CHARS = 32L * 1024 * 1024;

  private static final ObjectMapper JSON = new ObjectMapper();

  private final McpClients clients;
  private final Credentials credentials;
  private final dev.corral.common.OutboundAddresses outbound;
  private final dev.corral.common.OutboundProxy proxy;
  private final McpConfig config;
  private final Map<String, Listed> listings = new ConcurrentHashMap<>();

  McpServers(
      McpClients clients,
      Credentials credentials,
      McpConfig config,
      dev.corral.common.OutboundAddresses outbound,
      dev.corral.common.OutboundProxy proxy) {
    this.clients = clients;
    this.credentials = credentials;
    this.config = config;
    this.outbound = outbound;
    this.proxy = proxy;
  }

  /** The tools of {@code servers} for a session, and the servers that could not list theirs. */
  public record Listing(List<McpTool> tools, List<McpFailure> failures) {}

  private record Listed(List<McpTool> tools, long at, long chars) {}

  /** The characters of {@link #listings}, under its lock. */
  private long listedChars;

  public Uni<Listing> tools(String sessionId, Tenant tenant, List<McpServer> servers) {
    if (servers.isEmpty()) {
      return Uni.createFrom().item(new Listing(List.of(), List.of()));
    }
    return Multi.createFrom()
        .iterable(servers)
        .onItem()
        .transformToUniAndMerge(server -> listed(sessionId, tenant, server))
        .collect()
        .asList()
        .map(McpServers::listing);
  }

  /** One server's tools, or why there are none, from the session's cache when it is fresh. */
  private Uni<Object> listed(String sessionId, Tenant tenant, McpServer server) {
    String key = sessionId + "\u0000" + server.getName() + "\u0000" + server.getUrl();
    Listed cached = listings.get(key);
    if (cached != null && System.nanoTime() - cached.at() < config.toolsTtl().toNanos()) {
      return Uni.createFrom().item(cached.tools());
    }
    AtomicReference<HttpAuth> used = new AtomicReference<>();
    long started = System.nanoTime();
    return withCredential(tenant, server, used, auth -> list(tenant, server, auth))
        .invoke(tools -> remember(key, tools))
        .map(tools -> (Object) tools)
        .onFailure()
        .recoverWithItem(
            failure -> {
              McpFailure why = failure(server, failure, used.get(), proxied(server, started));
              LOGGER.debugf("MCP server %s listed no tools: %s", server.getName(), why.message());
              return cached != null ? cached.tools() : why;
            });
  }

  private Uni<List<McpTool>> list(Tenant tenant, McpServer server, HttpAuth auth) {
    McpClients.Key key = key(tenant, server);
    return uni(() ->
            clients
                .using(key, client -> pages(client, null, new ArrayList<>(), 1))
                .contextWrite(context -> McpClients.withAuth(context, auth)))
        .onFailure(failure -> !(failure instanceof McpClients.TenantBusyException))
        .invoke(failure -> clients.discard(key))
        .ifNoItem()
        .after(config.listTimeout())
        .failWith(
            () ->
                new TimeoutException(
                    "no tool list within " + config.listTimeout().toSeconds() + " s"))
        .map(result -> tools(server, result, auth));
  }

  /**
   * Calls {@code tool} of {@code server} with {@code inputJson} for {@code tenant}. Cancelling the
   * Uni abandons the call.
   */
  public Uni<McpAnswer> call(Tenant tenant, McpServer server, String tool, String inputJson) {
    Map<String, Object> arguments;
    try {
      arguments = JSON.readValue(inputJson, new TypeReference<Map<String, Object>>() {});
    } catch (java.io.IOException | IllegalArgumentException e) {
      return Uni.createFrom()
          .item(new McpAnswer(List.of("The input is not a JSON object."), true, null));
    }
    AtomicReference<HttpAuth> used = new AtomicReference<>();
    long started = System.nanoTime();
    McpSchema.CallToolRequest request = new McpSchema.CallToolRequest(tool, arguments);
    return withCredential(tenant, server, used, auth -> attempt(tenant, server, request, auth))
        .map(result -> answer(result, used.get()))
        .onFailure(McpServers::isProtocolError)
        .recoverWithItem(failure -> refusedCall(failure, used.get()))
        .onFailure()
        .recoverWithItem(
            failure ->
                McpAnswer.failed(failure(server, failure, used.get(), proxied(server, started))));
  }

  /** The server answered the call with a JSON-RPC error: the model sees it as the tool's error. */
  private static McpAnswer refusedCall(Throwable failure, HttpAuth auth) {
    McpError error = (McpError) rootOf(failure);
    String message = error.getJsonRpcError() == null ? "" : error.getJsonRpcError().message();
    return new McpAnswer(
        List.of(scrub(auth, "The MCP server refused the call: " + message)), true, null);
  }

  private static boolean isProtocolError(Throwable failure) {
    return rootOf(failure) instanceof McpError error && error.getJsonRpcError() != null;
  }

  private Uni<McpSchema.CallToolResult> attempt(
      Tenant tenant, McpServer server, McpSchema.CallToolRequest request, HttpAuth auth) {
    McpClients.Key key = key(tenant, server);
    return uni(() ->
            clients
                .using(key, client -> client.callTool(request))
                .contextWrite(context -> McpClients.withAuth(context, auth)))
        .onFailure(
            failure ->
                !(failure instanceof McpError)
                    && !(failure instanceof McpClients.TenantBusyException))
        .invoke(failure -> clients.discard(key))
        .ifNoItem()
        .after(config.callTimeout())
        .failWith(
            () ->
                new TimeoutException(
                    "no answer within " + config.callTimeout().toSeconds() + " s"));
  }

  /**
   * Runs {@code work} with the server's credential (none if it has none), and once more with a
   * refreshed OAuth token if the server answered 401. {@code used} holds the credential last used,
   * so that what comes back can be scrubbed of it.
   */
  private <T> Uni<T> withCredential(
      Tenant tenant,
      McpServer server,
      AtomicReference<HttpAuth> used,
      java.util.function.Function<HttpAuth, Uni<T>> work) {
    // the address first: no credential goes to, and no refresh happens for, a server corral may
    // not call
    return outbound
        .check(tenant, "the MCP server's host", server.getUrl())
        .flatMap(reachable -> authFor(tenant, server))
        .invoke(used::set)
        .flatMap(auth -> work.apply(auth))
        .onFailure(McpServers::unauthorized)
        .recoverWithUni(
            refused ->
                used.get() == null
                    ? Uni.createFrom().failure(refused)
                    : credentials
                        .afterUnauthorized(tenant, used.get())
                        .flatMap(
                            fresh -> {
                              if (fresh == null) {
                                return Uni.createFrom().failure(refused);
                              }
                              used.set(fresh);
                              return work.apply(fresh);
                            }));
  }

  private Uni<HttpAuth> authFor(Tenant tenant, McpServer server) {
    return server.getCredentialId().isEmpty()
        ? Uni.createFrom().nullItem()
        : credentials.authFor(
            tenant,
            server.getCredentialId(),
            server.getUrl(),
            dev.corral.common.CredentialUse.MCP_SERVER);
  }

  private McpAnswer answer(McpSchema.CallToolResult result, HttpAuth auth) {
    List<String> texts = new ArrayList<>();
    int left = config.maxResultChars();
    for (McpSchema.Content content :
        result.content() == null ? List.<McpSchema.Content>of() : result.content()) {
      String text = scrub(auth, text(content)); // before the cut, which could split a secret
      if (left <= 0) {
        texts.add("[corral: the rest of the answer is cut]");
        break;
      }
      if (text.length() > left) {
        text =
            dev.corral.common.Json.cut(text, left)
                + "\n[corral: the answer is cut at "
                + config.maxResultChars()
                + " characters]";
      }
      left -= text.length();
      texts.add(text);
    }
    if (texts.isEmpty() && result.structuredContent() != null) {
      texts.add(cut(scrub(auth, json(result.structuredContent()))));
    }
    return new McpAnswer(texts, Boolean.TRUE.equals(result.isError()), null);
  }

  private String cut(String text) {
    return text.length() <= config.maxResultChars()
        ? text
        : dev.corral.common.Json.cut(text, config.maxResultChars())
            + "\n[corral: the answer is cut]";
  }

  private static String text(McpSchema.Content content) {
    if (content instanceof McpSchema.TextContent text) {
      return text.text() == null ? "" : text.text();
    }
    if (content instanceof McpSchema.ImageContent image) {
      return "[an image (" + image.mimeType() + ") the server returned; not shown]";
    }
    if (content instanceof McpSchema.EmbeddedResource resource
        && resource.resource() instanceof McpSchema.TextResourceContents contents) {
      return "[resource "
          + contents.uri()
          + "]\n"
          + (contents.text() == null ? "" : contents.text());
    }
    return json(content);
  }

  private static String json(Object value) {
    try {
      return JSON.writeValueAsString(value);
    } catch (java.io.IOException e) {
      return String.valueOf(value);
    }
  }

  /**
   * The tools of a listing, their descriptions and schemas scrubbed of the credential's secrets (a
   * server that quotes the token it was sent must not hand it to the model); a tool whose name
   * holds one is left out.
   */
  static List<McpTool> tools(McpServer server, McpSchema.ListToolsResult result, HttpAuth auth) {
    List<McpTool> tools = new ArrayList<>();
    for (McpSchema.Tool tool :
        result.tools() == null ? List.<McpSchema.Tool>of() : result.tools()) {
      if (tools.size() == MAX_TOOLS) {
        LOGGER.warnf(
            "MCP server %s lists more than %d tools; the rest are not offered",
            server.getName(), MAX_TOOLS);
        break;
      }
      String schema =
          scrubbed(
              auth,
              json(tool.inputSchema() == null ? Map.of("type", "object") : tool.inputSchema()));
      if (tool.name() == null
          || schema.length() > MAX_SCHEMA
          || (auth != null && auth.reveals(tool.name()))) {
        continue;
      }
      if (!dev.corral.agent.SchemaShape.acceptsAsInput(schema)) {
        // the API would refuse every request that offered it; judged once, here
        LOGGER.debugf(
            "MCP server %s lists tool %s with a schema the model's API refuses; not offered",
            server.getName(), tool.name());
        continue;
      }
      String description = scrubbed(auth, tool.description() == null ? "" : tool.description());
      tools.add(
          new McpTool(
              server.getName(),
              tool.name(),
              description.length() > MAX_DESCRIPTION
                  ? dev.corral.common.Json.cut(description, MAX_DESCRIPTION)
                  : description,
              schema,
              tool.annotations() != null
                  && Boolean.TRUE.equals(tool.annotations().readOnlyHint())));
    }
    tools.sort(Comparator.comparing(McpTool::name));
    return tools;
  }

  private static String scrubbed(HttpAuth auth, String text) {
    return auth == null ? text : auth.scrub(text);
  }

  /**
   * The listing from {@code cursor} on, one page after another, into {@code tools}: at most {@link
   * #MAX_PAGES} pages, and no page past the one that brought {@link #MAX_TOOLS} tools.
   */
  private static Mono<McpSchema.ListToolsResult> pages(
      io.modelcontextprotocol.client.McpAsyncClient client,
      String cursor,
      List<McpSchema.Tool> tools,
      int page) {
    return client
        .listTools(cursor)
        .flatMap(
            result -> {
              if (result.tools() != null) {
                tools.addAll(result.tools());
              }
              String next = result.nextCursor();
              if (next != null && !next.isEmpty() && page < MAX_PAGES && tools.size() < MAX_TOOLS) {
                return pages(client, next, tools, page + 1);
              }
              return Mono.just(new McpSchema.ListToolsResult(List.copyOf(tools), null));
            });
  }

  private void remember(String key, List<McpTool> tools) {
    long chars = 0;
    for (McpTool tool : tools) {
      chars += tool.name().length() + tool.description().length() + tool.inputSchemaJson().length();
    }
    long now = System.nanoTime();
    synchronized (listings) {
      Listed previous = listings.put(key, new Listed(tools, now, chars));
      listedChars += chars - (previous == null ? 0 : previous.chars());
      if (listings.size() <= MAX_LISTINGS && listedChars <= MAX_LISTED_CHARS) {
        return;
      }
      List<Map.Entry<String, Listed>> oldest = new ArrayList<>(listings.entrySet());
      oldest.sort(Comparator.comparingLong(entry -> entry.getValue().at()));
      for (Map.Entry<String, Listed> entry : oldest) {
        if (listings.size() <= MAX_LISTINGS * 9 / 10 && listedChars <= MAX_LISTED_CHARS * 9 / 10) {
          break;
        }
        if (listings.remove(entry.getKey(), entry.getValue())) {
          listedChars -= entry.getValue().chars();
        }
      }
    }
  }

  /** Characters the kept listings hold (for tests). */
  long listedChars() {
    synchronized (listings) {
      return listedChars;
    }
  }

  @SuppressWarnings("unchecked")
  private static Listing listing(List<Object> outcomes) {
    List<McpTool> tools = new ArrayList<>();
    List<McpFailure> failures = new ArrayList<>();
    for (Object outcome : outcomes) {
      if (outcome instanceof McpFailure failure) {
        failures.add(failure);
      } else {
        tools.addAll((List<McpTool>) outcome);
      }
    }
    tools.sort(Comparator.comparing(McpTool::server).thenComparing(McpTool::name));
    failures.sort(Comparator.comparing(McpFailure::server));
    return new Listing(tools, failures);
  }

  /**
   * Why the outbound proxy, which every request to an MCP server goes through, refused or failed a
   * connection to {@code server} since {@code started}: the client saw only the proxy's answer.
   */
  private java.util.Optional<String> proxied(McpServer server, long started) {
    return proxy.failureSince(server.getUrl(), started);
  }

  /**
   * What a server's failure is: its kind, and a message with no secret in it ({@code proxied}: why
   * the outbound proxy could not connect to it, if it could not).
   */
  static McpFailure failure(
      McpServer server, Throwable failure, HttpAuth auth, java.util.Optional<String> proxied) {
    String name = server.getName();
    String where = "MCP server " + name + " (" + server.getUrl() + ")";
    Throwable cause = rootOf(failure);
    if (cause instanceof CredentialUnusableException unusable) {
      return new McpFailure(name, McpFailure.AUTHENTICATION, where + ": " + unusable.getMessage());
    }
    if (cause instanceof dev.corral.common.FailedPreconditionException refused) {
      return new McpFailure(name, McpFailure.CONNECTION, where + ": " + refused.getMessage());
    }
    if (proxied.isPresent()) {
      return new McpFailure(name, McpFailure.CONNECTION, where + " " + proxied.get());
    }
    Integer status = statusOf(failure);
    if (status != null && (status == 401 || status == 403)) {
      return new McpFailure(
          name, McpFailure.AUTHENTICATION, where + " refused the credential (HTTP " + status + ")");
    }
    if (cause instanceof McpError error && error.getJsonRpcError() != null) {
      return new McpFailure(
          name,
          McpFailure.CONNECTION,
          scrub(auth, where + " answered with an error: " + error.getJsonRpcError().message()));
    }
    String reason;
    if (cause instanceof TimeoutException || cause instanceof HttpTimeoutException) {
      reason = "did not answer in time (" + cause.getMessage() + ")";
    } else if (causedBy(failure, ConnectException.class)) {
      reason = "could not be reached: connection refused";
    } else if (causedBy(failure, UnknownHostException.class)) {
      reason = "could not be reached: unknown host";
    } else if (cause instanceof java.io.IOException io) {
      reason = "closed the connection (" + io.getClass().getSimpleName() + ")";
    } else if (status != null) {
      reason = "answered HTTP " + status;
    } else {
      reason = "answered something that is not MCP (" + cause.getClass().getSimpleName() + ")";
    }
    return new McpFailure(name, McpFailure.CONNECTION, scrub(auth, where + " " + reason));
  }

  private static boolean causedBy(Throwable failure, Class<? extends Throwable> kind) {
    int depth = 0;
    for (Throwable current = failure; current != null && depth < 16; current = current.getCause()) {
      if (kind.isInstance(current)) {
        return true;
      }
      depth++;
    }
    return false;
  }

  private static boolean unauthorized(Throwable failure) {
    Integer status = statusOf(failure);
    return status != null && status == 401;
  }

  private static Integer statusOf(Throwable failure) {
    for (Throwable current = failure; current != null; current = current.getCause()) {
      if (current instanceof McpHttpClientTransportAuthorizationException refused
          && refused.getResponseInfo() != null) {
        return refused.getResponseInfo().statusCode();
      }
      String message = current.getMessage();
      if (message != null && message.startsWith("Received unexpected status code: ")) {
        String digits = message.substring(33).replaceAll("^(\\d{3}).*$", "$1");
        if (digits.matches("\\d{3}")) {
          return Integer.parseInt(digits);
        }
      }
      if (current.getCause() == current) {
        break;
      }
    }
    return null;
  }

  private static Throwable rootOf(Throwable failure) {
    Throwable current = failure;
    for (int depth = 0;
        depth < 16 && current.getCause() != null && current.getCause() != current;
        depth++) {
      if (current instanceof McpError
          || current instanceof CredentialUnusableException
          || current instanceof TimeoutException) {
        return current;
      }
      current = current.getCause();
    }
    return current;
  }

  private static String scrub(HttpAuth auth, String text) {
    return auth == null ? text : auth.scrub(text);
  }

  private static McpClients.Key key(Tenant tenant, McpServer server) {
    return new McpClients.Key(tenant.id(), server.getUrl(), server.getCredentialId());
  }

  private static <T> Uni<T> uni(Supplier<Mono<T>> mono) {
    return Uni.createFrom().completionStage(() -> mono.get().toFuture());
  }
}
