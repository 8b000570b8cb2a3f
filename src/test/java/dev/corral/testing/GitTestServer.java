package dev.corral.testing;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A real git smart-HTTP server: {@code git http-backend} behind the JDK's HTTP server, on this
 * machine's outward address (see {@link TestNetwork}). It serves bare repositories under a
 * temporary directory and demands HTTP basic authentication with one token; it records every
 * request it gets, with the Authorization header it carried. A request whose User-Agent is {@code
 * leak/<n>} gets an error page quoting its Authorization header, then {@code n} characters, then
 * the header again, gzipped if the request accepts gzip; {@code leakgz/<n>} gets it gzipped always.
 */
public final class GitTestServer implements AutoCloseable {

  /** The basic-auth user name GitHub uses for tokens. */
  public static final String USER = "x-access-token";

  /** One request as the server saw it. */
  public record Request(String method, String path, String authorization, int status) {}

  private final HttpServer server;
  private final Path root;
  private final String token;
  private final List<Request> requests = new CopyOnWriteArrayList<>();

  private GitTestServer(Path root, String token) throws IOException {
    this.root = root;
    this.token = token;
    this.server = HttpServer.create(new InetSocketAddress(TestNetwork.outwardAddress(), 0), 16);
    server.setExecutor(Executors.newCachedThreadPool());
    server.createContext("/", this::handle);
    server.start();
  }

  /**
   * A server demanding {@code token}, with a repository {@code app.git} (branch main, a README).
   */
  public static GitTestServer start(String token) throws IOException {
    GitTestServer server = new GitTestServer(Files.createTempDirectory("corral-git-server"), token);
    server.createRepository("app.git");
    return server;
  }

  /** The repository's URL under the name the egress proxy resolves to this server. */
  public String url(String repository) {
    return "http://"
        + EgressTestProfile.GIT
        + ":"
        + server.getAddress().getPort()
        + "/"
        + repository;
  }

  public int port() {
    return server.getAddress().getPort();
  }

  public List<Request> requests() {
    return List.copyOf(requests);
  }

  /** The subjects of the commits on {@code branch}, newest first. */
  public List<String> log(String repository, String branch) {
    return git(root.resolve(repository), "log", "--format=%s", branch).lines().toList();
  }

  /** The commit {@code ref} is at. */
  public String commitOf(String repository, String ref) {
    return git(root.resolve(repository), "rev-parse", ref).strip();
  }

  private void createRepository(String name) throws IOException {
    Path bare = root.resolve(name);
    git(root, "init", "--quiet", "--bare", "-b", "main", bare.toString());
    git(bare, "config", "http.receivepack", "true");
    Path work = Files.createTempDirectory("corral-git-work");
    git(work, "init", "--quiet", "-b", "main");
    Files.writeString(work.resolve("README.md"), "# app\n");
    git(work, "add", "README.md");
    git(work, "commit", "--quiet", "-m", "first commit");
    git(work, "push", "--quiet", bare.toString(), "main");
    delete(work);
  }

  private void handle(HttpExchange exchange) throws IOException {
    String authorization = exchange.getRequestHeaders().getFirst("Authorization");
    String expected =
        "Basic "
            + Base64.getEncoder()
                .encodeToString((USER + ":" + token).getBytes(StandardCharsets.UTF_8));
    String path = exchange.getRequestURI().getRawPath();
    try (exchange) {
      if (!expected.equals(authorization)) {
        requests.add(new Request(exchange.getRequestMethod(), path, authorization, 401));
        exchange.getResponseHeaders().add("WWW-Authenticate", "Basic realm=\"git\"");
        exchange.sendResponseHeaders(401, -1);
        return;
      }
      String agent = exchange.getRequestHeaders().getFirst("User-Agent");
      if (agent != null && (agent.startsWith("leak/") || agent.startsWith("leakgz/"))) {
        // a hostile or careless host's error page, quoting the credential after padding;
        // gzipped when the request allows it, or always (leakgz/)
        byte[] page =
            ("you sent: "
                    + authorization
                    + " "
                    + "x".repeat(Integer.parseInt(agent.substring(agent.indexOf('/') + 1)))
                    + "you sent: "
                    + authorization)
                .getBytes(StandardCharsets.ISO_8859_1);
        String accepted = exchange.getRequestHeaders().getFirst("Accept-Encoding");
        if (agent.startsWith("leakgz/") || (accepted != null && accepted.contains("gzip"))) {
          java.io.ByteArrayOutputStream zipped = new java.io.ByteArrayOutputStream();
          try (java.util.zip.GZIPOutputStream gzip = new java.util.zip.GZIPOutputStream(zipped)) {
            gzip.write(page);
          }
          page = zipped.toByteArray();
          exchange.getResponseHeaders().add("Content-Encoding", "gzip");
        }
        exchange.sendResponseHeaders(500, page.length);
        exchange.getResponseBody().write(page);
        requests.add(new Request(exchange.getRequestMethod(), path, authorization, 500));
        return;
      }
      int status = backend(exchange, path);
      requests.add(new Request(exchange.getRequestMethod(), path, authorization, status));
    }
  }

  /** Runs git http-backend as a CGI program for the request; returns the status it answered. */
  private int backend(HttpExchange exchange, String path) throws IOException {
    ProcessBuilder builder = new ProcessBuilder("git", "http-backend");
    Map<String, String> env = builder.environment();
    env.put("GIT_PROJECT_ROOT", root.toString());
    env.put("GIT_HTTP_EXPORT_ALL", "1");
    env.put("REMOTE_USER", USER);
    env.put("REMOTE_ADDR", exchange.getRemoteAddress().getAddress().getHostAddress());
    env.put("REQUEST_METHOD", exchange.getRequestMethod());
    env.put("PATH_INFO", path);
    String query = exchange.getRequestURI().getRawQuery();
    env.put("QUERY_STRING", query == null ? "" : query);
    copyHeader(exchange, "Content-Type", env, "CONTENT_TYPE");
    copyHeader(exchange, "Content-Length", env, "CONTENT_LENGTH");
    copyHeader(exchange, "Content-Encoding", env, "HTTP_CONTENT_ENCODING");
    copyHeader(exchange, "Git-Protocol", env, "HTTP_GIT_PROTOCOL");
    Process process = builder.redirectError(ProcessBuilder.Redirect.DISCARD).start();
    Thread feeder =
        new Thread(
            () -> {
              try (InputStream body = exchange.getRequestBody();
                  OutputStream stdin = process.getOutputStream()) {
                body.transferTo(stdin);
              } catch (IOException ignored) {
                // the backend stopped reading: its answer says why
              }
            });
    feeder.setDaemon(true);
    feeder.start();
    InputStream out = process.getInputStream();
    int status = 200;
    for (String line = readLine(out); !line.isEmpty(); line = readLine(out)) {
      int colon = line.indexOf(':');
      String name = line.substring(0, colon).trim();
      String value = line.substring(colon + 1).trim();
      if (name.equalsIgnoreCase("Status")) {
        status = Integer.parseInt(value.substring(0, 3));
      } else {
        exchange.getResponseHeaders().add(name, value);
      }
    }
    exchange.sendResponseHeaders(status, 0);
    try (OutputStream body = exchange.getResponseBody()) {
      out.transferTo(body);
    }
    try {
      process.waitFor(30, TimeUnit.SECONDS);
      feeder.join(5_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return status;
  }

  private static void copyHeader(
      HttpExchange exchange, String header, Map<String, String> env, String variable) {
    String value = exchange.getRequestHeaders().getFirst(header);
    if (value != null) {
      env.put(variable, value);
    }
  }

  private static String readLine(InputStream in) throws IOException {
    ByteArrayOutputStream line = new ByteArrayOutputStream();
    for (int b = in.read(); b >= 0 && b != '\n'; b = in.read()) {
      if (b != '\r') {
        line.write(b);
      }
    }
    return line.toString(StandardCharsets.ISO_8859_1);
  }

  /** Runs git in {@code directory} with a fixed identity and no user or system configuration. */
  public static String git(Path directory, String... args) {
    List<String> command = new ArrayList<>(List.of("git", "-c", "user.name=Test", "-c"));
    command.add("user.email=test@example.com");
    command.addAll(List.of(args));
    try {
      ProcessBuilder builder =
          new ProcessBuilder(command).directory(directory.toFile()).redirectErrorStream(true);
      builder.environment().put("GIT_CONFIG_NOSYSTEM", "1");
      builder.environment().put("HOME", directory.toString());
      Process process = builder.start();
      String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (process.waitFor() != 0) {
        throw new IllegalStateException("git " + String.join(" ", args) + " failed: " + output);
      }
      return output;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  private static void delete(Path directory) throws IOException {
    try (Stream<Path> files = Files.walk(directory)) {
      for (Path file : files.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(file);
      }
    }
  }

  @Override
  public void close() throws IOException {
    server.stop(0);
    delete(root);
  }
}
