package dev.corral.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.modelcontextprotocol.json.jackson2.JacksonMcpJsonMapper;
import io.modelcontextprotocol.server.McpServer;
import io.modelcontextprotocol.server.McpServerFeatures;
import io.modelcontextprotocol.server.McpSyncServer;
import io.modelcontextprotocol.server.transport.HttpServletStreamableServerTransportProvider;
import io.modelcontextprotocol.spec.McpSchema;
import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServlet;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.catalina.Context;
import org.apache.catalina.Wrapper;
import org.apache.catalina.connector.Connector;
import org.apache.catalina.startup.Tomcat;
import org.apache.tomcat.util.descriptor.web.FilterDef;
import org.apache.tomcat.util.descriptor.web.FilterMap;

/**
 * A real MCP server for the tests: the MCP Java SDK's own Streamable HTTP server, in an embedded
 * Tomcat on loopback, behind a filter that checks the Authorization header, records every request
 * and can be told to fail (401, 403, a malformed answer, slowness, or being down). It also serves
 * an OAuth 2 token endpoint ({@code /token}) that refreshes tokens.
 *
 * <p>Its tools: {@code echo} (read-only), {@code create_issue}, {@code leak} (answers with the
 * Authorization header it received, or only its value after the scheme, as a hostile server might),
 * {@code fail} (a tool error) and {@code hang} (answers when released).
 */
public final class McpTestServer implements AutoCloseable {

  /** How the server misbehaves. */
  public enum Mode {
    NORMAL,
    UNAUTHORIZED,
    FORBIDDEN,
    MALFORMED,
    /** Every tools/list page names one tool and a cursor to one more page. */
    ENDLESS_PAGES
  }

  /** One HTTP request the server received. */
  public record Request(String method, String path, String authorization) {}

  /** One tool call the server ran. */
  public record ToolCall(String tool, Map<String, Object> arguments) {}

  private static final ObjectMapper JSON = new ObjectMapper();

  private final Tomcat tomcat;
  private final McpSyncServer mcp;
  private final java.util.concurrent.atomic.AtomicInteger pagesServed =
      new java.util.concurrent.atomic.AtomicInteger();
  private final int port;
  private final List<Request> requests = new CopyOnWriteArrayList<>();
  private final List<ToolCall> calls = new CopyOnWriteArrayList<>();
  private final AtomicReference<Mode> mode = new AtomicReference<>(Mode.NORMAL);
  private final AtomicReference<String> expectedAuthorization = new AtomicReference<>();
  private final AtomicReference<CountDownLatch> hang = new AtomicReference<>(new CountDownLatch(1));
  private final AtomicInteger slowMillis = new AtomicInteger();

  /** While set, the token endpoint holds its answers until it is counted down. */
  private final AtomicReference<CountDownLatch> tokensHeld = new AtomicReference<>();

  private final AtomicInteger issues = new AtomicInteger();
  private final AtomicReference<String> refreshToken = new AtomicReference<>();
  private final AtomicReference<String> nextAccessToken = new AtomicReference<>();
  private final java.util.concurrent.atomic.AtomicLong nextExpiresIn =
      new java.util.concurrent.atomic.AtomicLong(3600);
  private final List<String> tokenRequests = new CopyOnWriteArrayList<>();

  private McpTestServer(Tomcat tomcat, McpSyncServer mcp, int port) {
    this.tomcat = tomcat;
    this.mcp = mcp;
    this.port = port;
  }

  public static McpTestServer start() throws Exception {
    Tomcat tomcat = new Tomcat();
    tomcat.setBaseDir(Files.createTempDirectory("mcp-tomcat-").toString());
    Connector connector = new Connector();
    connector.setPort(0);
    connector.setProperty("address", "127.0.0.1");
    tomcat.setConnector(connector);
    Context context = tomcat.addContext("", null);
    HttpServletStreamableServerTransportProvider transport =
        HttpServletStreamableServerTransportProvider.builder()
            .jsonMapper(new JacksonMcpJsonMapper(JSON))
            .mcpEndpoint("/mcp")
            .build();
    McpTestServer[] self = new McpTestServer[1];
    McpSyncServer mcp =
        McpServer.sync(transport)
            .serverInfo("corral-test-mcp", "1.0")
            .capabilities(McpSchema.ServerCapabilities.builder().tools(false).build())
            .tools(tools(self))
            .build();
    Wrapper servlet = Tomcat.addServlet(context, "mcp", transport);
    servlet.setAsyncSupported(true);
    context.addServletMappingDecoded("/mcp", "mcp");
    Tomcat.addServlet(context, "token", new TokenEndpoint(self));
    context.addServletMappingDecoded("/token", "token");
    FilterDef filter = new FilterDef();
    filter.setFilterName("guard");
    filter.setFilter(new Guard(self));
    filter.setAsyncSupported("true");
    context.addFilterDef(filter);
    FilterMap mapping = new FilterMap();
    mapping.setFilterName("guard");
    mapping.addURLPattern("/mcp");
    context.addFilterMap(mapping);
    tomcat.start();
    int port = tomcat.getConnector().getLocalPort();
    McpTestServer server = new McpTestServer(tomcat, mcp, port);
    self[0] = server;
    return server;
  }

  /** The Streamable HTTP endpoint. */
  public String url() {
    return "http://127.0.0.1:" + port + "/mcp";
  }

  public String tokenUrl() {
    return "http://127.0.0.1:" + port + "/token";
  }

  public int port() {
    return port;
  }

  /** Requests with another Authorization than this one get 401 (null: any is fine). */
  public void requireAuthorization(String authorization) {
    expectedAuthorization.set(authorization);
  }

  /** tools/list pages answered in {@link Mode#ENDLESS_PAGES}. */
  public int pagesServed() {
    return pagesServed.get();
  }

  public void mode(Mode next) {
    mode.set(next);
  }

  /** Every request waits this long before it is answered. */
  public void slow(int millis) {
    slowMillis.set(millis);
  }

  /** The token endpoint records requests but answers none until {@link #releaseTokens}. */
  public void holdTokens() {
    tokensHeld.set(new CountDownLatch(1));
  }

  /** How the token endpoint misbehaves: it answers 200 with a body that never ends. */
  public enum TokenBody {
    /** Sent as fast as the client takes it (up to 256 MB). */
    ENDLESS,
    /** One byte every 100 ms (for up to 60 s). */
    DRIP
  }

  private final AtomicReference<TokenBody> tokenBody = new AtomicReference<>();
  private final java.util.concurrent.atomic.AtomicInteger tokenAnswersAbandoned =
      new java.util.concurrent.atomic.AtomicInteger();

  /** Endless token answers whose client closed the connection. */
  public int tokenAnswersAbandoned() {
    return tokenAnswersAbandoned.get();
  }

  /** The token endpoint's answers from now on: a body that never ends ({@code null}: normal). */
  public void answerTokensWith(TokenBody body) {
    tokenBody.set(body);
  }

  /** Answers the token requests held, and those to come. */
  public void releaseTokens() {
    CountDownLatch held = tokensHeld.getAndSet(null);
    if (held != null) {
      held.countDown();
    }
  }

  /** The token endpoint accepts {@code refresh} and answers with {@code accessToken}. */
  public void issueOnRefresh(String refresh, String accessToken) {
    issueOnRefresh(refresh, accessToken, 3600);
  }

  /** The same, saying the new token expires in {@code expiresIn} seconds. */
  public void issueOnRefresh(String refresh, String accessToken, long expiresIn) {
    refreshToken.set(refresh);
    nextAccessToken.set(accessToken);
    nextExpiresIn.set(expiresIn);
  }

  /** Answers every hanging call. */
  public void release() {
    hang.getAndSet(new CountDownLatch(1)).countDown();
  }

  public List<Request> requests() {
    return List.copyOf(requests);
  }

  public List<ToolCall> calls() {
    return List.copyOf(calls);
  }

  /** The form bodies the token endpoint received. */
  public List<String> tokenRequests() {
    return List.copyOf(tokenRequests);
  }

  /** Stops answering (the port refuses connections). */
  public void down() throws Exception {
    tomcat.stop();
  }

  @Override
  public void close() throws Exception {
    release();
    mcp.close();
    tomcat.stop();
    tomcat.destroy();
  }

  private static List<McpServerFeatures.SyncToolSpecification> tools(McpTestServer[] self) {
    Map<String, Object> textInput =
        Map.of(
            "type", "object",
            "properties", Map.of("text", Map.of("type", "string")),
            "required", List.of("text"));
    return List.of(
        tool(
            "echo",
            "Echoes its text",
            textInput,
            true,
            (arguments) ->
                McpSchema.CallToolResult.builder()
                    .addTextContent("echo: " + arguments.get("text"))
                    .build(),
            self),
        tool(
            "create_issue",
            "Creates an issue",
            Map.of("type", "object", "properties", Map.of("title", Map.of("type", "string"))),
            false,
            (arguments) ->
                McpSchema.CallToolResult.builder()
                    .addTextContent(
                        "created issue #"
                            + self[0].issues.incrementAndGet()
                            + ": "
                            + arguments.get("title"))
                    .build(),
            self),
        tool(
            "leak",
            "Answers with the Authorization header it received, after pad characters, or as"
                + " structured content",
            Map.of(
                "type",
                "object",
                "properties",
                Map.of(
                    "pad",
                    Map.of("type", "integer"),
                    "structured",
                    Map.of("type", "boolean"),
                    "bare",
                    Map.of("type", "boolean"))),
            true,
            (arguments) ->
                Boolean.TRUE.equals(arguments.get("structured"))
                    ? McpSchema.CallToolResult.builder()
                        .structuredContent(Map.of("sent", self[0].lastAuthorization()))
                        .build()
                    : McpSchema.CallToolResult.builder()
                        .addTextContent(
                            "x".repeat(((Number) arguments.getOrDefault("pad", 0)).intValue())
                                + "you sent: "
                                + (Boolean.TRUE.equals(arguments.get("bare"))
                                    ? self[0].lastAuthorization().replaceFirst("^\\S+\\s+", "")
                                    : self[0].lastAuthorization()))
                        .build(),
            self),
        tool(
            "fail",
            "Always fails",
            Map.of("type", "object"),
            false,
            (arguments) ->
                McpSchema.CallToolResult.builder().addTextContent("boom").isError(true).build(),
            self),
        tool(
            "refuse",
            "Answers with a JSON-RPC error that quotes the Authorization header it received",
            Map.of("type", "object"),
            false,
            (arguments) -> {
              throw new io.modelcontextprotocol.spec.McpError(
                  new McpSchema.JSONRPCResponse.JSONRPCError(
                      -32001, "refused Authorization: " + self[0].lastAuthorization()));
            },
            self),
        tool(
            "hang",
            "Answers when the test releases it",
            Map.of("type", "object"),
            false,
            (arguments) -> {
              try {
                self[0].hang.get().await(120, TimeUnit.SECONDS);
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
              return McpSchema.CallToolResult.builder().addTextContent("released").build();
            },
            self));
  }

  private static McpServerFeatures.SyncToolSpecification tool(
      String name,
      String description,
      Map<String, Object> schema,
      boolean readOnly,
      java.util.function.Function<Map<String, Object>, McpSchema.CallToolResult> handler,
      McpTestServer[] self) {
    return McpServerFeatures.SyncToolSpecification.builder()
        .tool(
            McpSchema.Tool.builder()
                .name(name)
                .description(description)
                .inputSchema(schema)
                .annotations(McpSchema.ToolAnnotations.builder().readOnlyHint(readOnly).build())
                .build())
        .callHandler(
            (exchange, request) -> {
              Map<String, Object> arguments =
                  request.arguments() == null ? Map.of() : request.arguments();
              self[0].calls.add(new ToolCall(name, arguments));
              return handler.apply(arguments);
            })
        .build();
  }

  private String lastAuthorization() {
    for (int i = requests.size() - 1; i >= 0; i--) {
      if ("POST".equals(requests.get(i).method())) {
        return requests.get(i).authorization();
      }
    }
    return null;
  }

  /** Checks, records and misbehaves in front of the MCP servlet. */
  private record Guard(McpTestServer[] self) implements Filter {

    @Override
    public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
        throws IOException, ServletException {
      McpTestServer server = self[0];
      HttpServletRequest http = (HttpServletRequest) request;
      HttpServletResponse answer = (HttpServletResponse) response;
      String authorization = http.getHeader("Authorization");
      server.requests.add(new Request(http.getMethod(), http.getRequestURI(), authorization));
      if (server.slowMillis.get() > 0) {
        try {
          Thread.sleep(server.slowMillis.get());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      switch (server.mode.get()) {
        case UNAUTHORIZED -> {
          answer.sendError(401);
          return;
        }
        case FORBIDDEN -> {
          answer.sendError(403);
          return;
        }
        case MALFORMED -> {
          answer.setStatus(200);
          answer.setContentType("application/json");
          answer.getWriter().write("{this is not json");
          return;
        }
        case ENDLESS_PAGES -> {
          if ("POST".equals(http.getMethod())) {
            byte[] body = http.getInputStream().readAllBytes();
            com.fasterxml.jackson.databind.JsonNode call =
                new com.fasterxml.jackson.databind.ObjectMapper().readTree(body);
            if ("tools/list".equals(call.path("method").asText())) {
              int page = server.pagesServed.incrementAndGet();
              answer.setStatus(200);
              answer.setContentType("application/json");
              answer
                  .getWriter()
                  .write(
                      "{\"jsonrpc\":\"2.0\",\"id\":"
                          + call.path("id").toString()
                          + ",\"result\":{\"tools\":[{\"name\":\"page"
                          + page
                          + "\",\"inputSchema\":{\"type\":\"object\"}}],\"nextCursor\":\"c"
                          + page
                          + "\"}}");
              return;
            }
            chain.doFilter(new ReadAgain(http, body), response);
            return;
          }
        }
        default -> {}
      }
      String expected = server.expectedAuthorization.get();
      if (expected != null && !expected.equals(authorization)) {
        answer.sendError(401);
        return;
      }
      chain.doFilter(request, response);
    }
  }

  /** A request whose body was read, to be read again. */
  private static final class ReadAgain extends jakarta.servlet.http.HttpServletRequestWrapper {
    private final byte[] body;

    ReadAgain(HttpServletRequest request, byte[] body) {
      super(request);
      this.body = body;
    }

    @Override
    public jakarta.servlet.ServletInputStream getInputStream() {
      java.io.ByteArrayInputStream bytes = new java.io.ByteArrayInputStream(body);
      return new jakarta.servlet.ServletInputStream() {
        @Override
        public int read() {
          return bytes.read();
        }

        @Override
        public boolean isFinished() {
          return bytes.available() == 0;
        }

        @Override
        public boolean isReady() {
          return true;
        }

        @Override
        public void setReadListener(jakarta.servlet.ReadListener listener) {
          try { // every byte is here already
            listener.onDataAvailable();
            listener.onAllDataRead();
          } catch (IOException failed) {
            listener.onError(failed);
          }
        }
      };
    }

    @Override
    public java.io.BufferedReader getReader() {
      return new java.io.BufferedReader(
          new java.io.InputStreamReader(getInputStream(), java.nio.charset.StandardCharsets.UTF_8));
    }
  }

  /** An OAuth 2 token endpoint that honours one refresh token. */
  private static final class TokenEndpoint extends HttpServlet {

    private final McpTestServer[] self;

    TokenEndpoint(McpTestServer[] self) {
      this.self = self;
    }

    @Override
    protected void doPost(HttpServletRequest request, HttpServletResponse response)
        throws IOException {
      McpTestServer server = self[0];
      String body = new String(request.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      server.tokenRequests.add(body);
      CountDownLatch held = server.tokensHeld.get();
      if (held != null) {
        try {
          held.await(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
      }
      Map<String, String> form = new java.util.HashMap<>();
      for (String pair : body.split("&")) {
        int equals = pair.indexOf('=');
        if (equals > 0) {
          form.put(
              pair.substring(0, equals),
              URLDecoder.decode(pair.substring(equals + 1), StandardCharsets.UTF_8));
        }
      }
      response.setContentType("application/json");
      TokenBody endless = server.tokenBody.get();
      if (endless != null) {
        var out = response.getOutputStream();
        out.write("{\"access_token\":\"".getBytes(StandardCharsets.US_ASCII));
        byte[] chunk = "a".repeat(endless == TokenBody.ENDLESS ? 64 * 1024 : 1).getBytes();
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        try {
          for (long sent = 0;
              sent < (256L << 20) && System.nanoTime() < until;
              sent += chunk.length) {
            out.write(chunk);
            out.flush();
            if (endless == TokenBody.DRIP) {
              Thread.sleep(100);
            }
          }
        } catch (IOException | InterruptedException clientLeft) {
          server.tokenAnswersAbandoned.incrementAndGet(); // the client closed the connection
        }
        return;
      }
      if (!"refresh_token".equals(form.get("grant_type"))
          || server.refreshToken.get() == null
          || !server.refreshToken.get().equals(form.get("refresh_token"))) {
        response.setStatus(400);
        response.getWriter().write("{\"error\":\"invalid_grant\"}");
        return;
      }
      JsonNode answer =
          JSON.createObjectNode()
              .put("access_token", server.nextAccessToken.get())
              .put("token_type", "Bearer")
              .put("expires_in", server.nextExpiresIn.get());
      response.getWriter().write(answer.toString());
    }
  }
}
