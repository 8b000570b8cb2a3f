package dev.corral.testing;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** The packaged corral ({@code target/quarkus-app/quarkus-run.jar}) running as its own process. */
public final class ServerProcess implements AutoCloseable {

  private final Process process;
  private final int port;
  private final Path log;
  private ManagedChannel channel;

  private ServerProcess(Process process, int port, Path log) {
    this.process = process;
    this.port = port;
    this.log = log;
  }

  /**
   * Starts a server on a free port with {@code environment} added to this process's environment,
   * and waits until it is ready.
   */
  public static ServerProcess start(Map<String, String> environment)
      throws IOException, InterruptedException {
    return start(environment, List.of("-Xmx512m"));
  }

  /** As {@link #start(Map)}, with these JVM options. */
  public static ServerProcess start(Map<String, String> environment, List<String> jvmOptions)
      throws IOException, InterruptedException {
    int port = freePort();
    Path log = Files.createTempFile("corral-server-", ".log");
    List<String> command = new java.util.ArrayList<>(List.of(javaBin()));
    command.addAll(jvmOptions);
    command.addAll(List.of("-jar", System.getProperty("corral.app.jar")));
    ProcessBuilder builder =
        new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
    Map<String, String> env = new HashMap<>(environment);
    env.putIfAbsent("QUARKUS_HTTP_PORT", Integer.toString(port));
    // Servers accept the test admin key, unless the test asks for none (an empty value: the
    // server then writes its first admin key to $CORRAL_HOME/admin-key).
    if (!"false".equals(env.get("CORRAL_AUTH_ENABLED"))) {
      env.putIfAbsent("CORRAL_AUTH_BOOTSTRAP_KEY", TestCredentials.ADMIN_KEY);
    }
    if ("".equals(env.get("CORRAL_AUTH_BOOTSTRAP_KEY"))) {
      env.remove("CORRAL_AUTH_BOOTSTRAP_KEY");
    }
    builder.environment().putAll(env);
    if (!env.containsKey("CORRAL_AUTH_BOOTSTRAP_KEY")) {
      builder.environment().remove("CORRAL_AUTH_BOOTSTRAP_KEY");
    }
    ServerProcess server =
        new ServerProcess(builder.start(), Integer.parseInt(env.get("QUARKUS_HTTP_PORT")), log);
    server.awaitReady(Duration.ofSeconds(90));
    return server;
  }

  public int port() {
    return port;
  }

  public long pid() {
    return process.pid();
  }

  /** A channel whose calls carry the test admin key (unless they carry another credential). */
  public synchronized ManagedChannel channel() {
    if (channel == null) {
      channel =
          ManagedChannelBuilder.forAddress("localhost", port)
              .usePlaintext()
              .intercept(new TestCredentials())
              .build();
    }
    return channel;
  }

  public String log() throws IOException {
    return Files.readString(log);
  }

  /** SIGTERM, and wait for a clean exit. */
  public void stop() throws InterruptedException {
    closeChannel();
    process.destroy();
    if (!process.waitFor(30, TimeUnit.SECONDS)) {
      process.destroyForcibly().waitFor();
    }
  }

  /** kill -9: no shutdown hook runs. */
  public void kill() throws InterruptedException {
    closeChannel();
    process.destroyForcibly().waitFor();
  }

  @Override
  public void close() throws InterruptedException {
    if (process.isAlive()) {
      stop();
    }
  }

  private void closeChannel() {
    if (channel != null) {
      channel.shutdownNow();
      channel = null;
    }
  }

  private void awaitReady(Duration timeout) throws IOException, InterruptedException {
    HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(1)).build();
    HttpRequest ready =
        HttpRequest.newBuilder(URI.create("http://localhost:" + port + "/q/health/ready")).build();
    Instant deadline = Instant.now().plus(timeout);
    while (Instant.now().isBefore(deadline)) {
      if (!process.isAlive()) {
        throw new IllegalStateException(
            "corral exited with " + process.exitValue() + ":\n" + log());
      }
      try {
        if (http.send(ready, HttpResponse.BodyHandlers.discarding()).statusCode() == 200) {
          return;
        }
      } catch (IOException notYet) {
        // still starting
      }
      Thread.sleep(200);
    }
    process.destroyForcibly();
    throw new IllegalStateException("corral was not ready after " + timeout + ":\n" + log());
  }

  private static String javaBin() {
    return Path.of(System.getProperty("java.home"), "bin", "java").toString();
  }

  public static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }
}
