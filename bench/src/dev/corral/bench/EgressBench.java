package dev.corral.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import dev.corral.proto.v1.CreateEnvironmentRequest;
import dev.corral.proto.v1.EnvironmentServiceGrpc;
import dev.corral.proto.v1.ExecuteRequest;
import dev.corral.proto.v1.NetworkMode;
import dev.corral.proto.v1.Networking;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.ServerProcess;
import dev.corral.testing.TestNetwork;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.stream.Stream;

/**
 * What the egress proxy costs: small requests and a large download from a web server on this
 * machine's outward address, directly and through a local sandbox's proxy, in the same run.
 *
 * <ul>
 *   <li>proxy alone: this JVM sends each request over a new connection, directly (TCP) or to the
 *       sandbox's proxy socket (what the sandbox's forwarder connects to);
 *   <li>the whole path: curl inside the sandbox (forwarder on 127.0.0.1:3128, then the proxy)
 *       against curl on the host, directly.
 * </ul>
 */
public final class EgressBench {

  private static final int DOWNLOAD_MIB = 256;
  private static final byte[] MIB = new byte[1 << 20];
  private static final ObjectMapper JSON = new ObjectMapper();

  private EgressBench() {}

  public static void main(String[] args) throws Exception {
    int requests = Integer.parseInt(args[0]);
    String ip = TestNetwork.outwardAddress().getHostAddress();
    System.out.printf(
        "corral egress benchmark: %d requests per mode, a %d MiB download, web server on %s, %d"
            + " cores, %s%n",
        requests, DOWNLOAD_MIB, ip, Runtime.getRuntime().availableProcessors(), Instant.now());
    HttpServer web = webServer(ip);
    String base = "http://" + ip + ":" + web.getAddress().getPort();
    try (FakeAnthropic model = FakeAnthropic.start();
        EmbeddedPostgres postgres = BenchServers.postgres()) {
      Map<String, String> environment =
          new java.util.HashMap<>(BenchServers.environment(postgres, model));
      environment.put("CORRAL_EGRESS_ALLOWED_PRIVATE_NETWORKS", ip + "/32");
      environment.put("CORRAL_HARNESS_ENABLED", "false");
      try (ServerProcess server = ServerProcess.start(environment)) {
        String sandbox = provision(server, ip, web.getAddress().getPort());
        Path socket = socketOf(server);
        proxyAlone(requests, ip, web.getAddress().getPort(), base, socket);
        wholePath(server, sandbox, requests, base);
      }
    } finally {
      web.stop(0);
    }
  }

  // --- the proxy alone
  // ----------------------------------------------------------------------------

  private static void proxyAlone(int requests, String ip, int port, String base, Path socket)
      throws IOException {
    String small =
        "GET /small HTTP/1.1\r\nHost: " + ip + ":" + port + "\r\nConnection: close\r\n\r\n";
    String proxied = "GET " + base + "/small HTTP/1.1\r\nHost: " + ip + ":" + port + "\r\n\r\n";
    for (int i = 0; i < requests / 4; i++) { // warm-up
      direct(ip, port, small);
      proxied(socket, proxied);
    }
    Latencies direct = new Latencies();
    Latencies throughProxy = new Latencies();
    for (int i = 0; i < requests; i++) {
      long begin = System.nanoTime();
      direct(ip, port, small);
      direct.record(System.nanoTime() - begin);
      begin = System.nanoTime();
      proxied(socket, proxied);
      throughProxy.record(System.nanoTime() - begin);
    }
    String download = "GET /bytes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    double directMbs = throughput(() -> direct(ip, port, download));
    double proxyMbs =
        throughput(() -> proxied(socket, "GET " + base + "/bytes HTTP/1.1\r\nHost: x\r\n\r\n"));
    System.out.println("proxy alone (a new connection per request, from this JVM):");
    report(direct, throughProxy, directMbs, proxyMbs);
  }

  private static long direct(String ip, int port, String request) throws IOException {
    try (Socket socket = new Socket(ip, port)) {
      socket.setTcpNoDelay(true);
      socket.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
      return drain(socket.getInputStream());
    }
  }

  private static long proxied(Path socket, String request) throws IOException {
    try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX)) {
      channel.connect(UnixDomainSocketAddress.of(socket));
      channel.write(ByteBuffer.wrap(request.getBytes(StandardCharsets.ISO_8859_1)));
      ByteBuffer buffer = ByteBuffer.allocateDirect(1 << 16);
      long total = 0;
      for (int read = channel.read(buffer); read >= 0; read = channel.read(buffer)) {
        total += read;
        buffer.clear();
      }
      return total;
    }
  }

  private static long drain(InputStream in) throws IOException {
    byte[] buffer = new byte[1 << 16];
    long total = 0;
    for (int read = in.read(buffer); read >= 0; read = in.read(buffer)) {
      total += read;
    }
    return total;
  }

  private interface Download {
    long run() throws IOException;
  }

  /** The best of three downloads, in MB/s. */
  private static double throughput(Download download) throws IOException {
    double best = 0;
    for (int i = 0; i < 3; i++) {
      long begin = System.nanoTime();
      long bytes = download.run();
      if (bytes < (long) DOWNLOAD_MIB << 20) {
        throw new IllegalStateException("the download ended after " + bytes + " bytes");
      }
      best = Math.max(best, bytes / 1e6 / ((System.nanoTime() - begin) / 1e9));
    }
    return best;
  }

  // --- the whole path from inside a sandbox -----------------------------------------------------

  private static void wholePath(ServerProcess server, String sandbox, int requests, String base)
      throws Exception {
    String loop =
        "for i in $(seq %d); do curl -s %s -o /dev/null -w '%%{http_code} %%{time_total}\\n'"
            + " %s/small; done";
    String inside = bash(server, sandbox, String.format(loop, requests, "", base));
    String outside = host(String.format(loop, requests, "--noproxy '*'", base));
    String speed = "curl -s %s -o /dev/null -w '%%{speed_download}' %s/bytes";
    double insideMbs = 0;
    double outsideMbs = 0;
    for (int i = 0; i < 3; i++) {
      insideMbs =
          Math.max(
              insideMbs,
              Double.parseDouble(bash(server, sandbox, String.format(speed, "", base))) / 1e6);
      outsideMbs =
          Math.max(
              outsideMbs,
              Double.parseDouble(host(String.format(speed, "--noproxy '*'", base))) / 1e6);
    }
    System.out.println(
        "whole path (curl per request: inside the sandbox through its forwarder and the proxy,"
            + " vs on the host directly):");
    report(seconds(outside), seconds(inside), outsideMbs, insideMbs);
  }

  /** curl's "<status> <seconds>" lines; every one must be a 200. */
  private static Latencies seconds(String lines) {
    Latencies latencies = new Latencies();
    lines
        .lines()
        .filter(line -> !line.isBlank())
        .forEach(
            line -> {
              String[] parts = line.strip().split(" ");
              if (!parts[0].equals("200")) {
                throw new IllegalStateException("a request through the proxy failed: " + line);
              }
              latencies.record((long) (Double.parseDouble(parts[1]) * 1e9));
            });
    return latencies;
  }

  private static void report(
      Latencies direct, Latencies proxied, double directMbs, double proxiedMbs) {
    System.out.printf("  %-22s %s%n", "direct", direct.summary());
    System.out.printf("  %-22s %s%n", "through the proxy", proxied.summary());
    double added = proxied.percentileMillis(50) - direct.percentileMillis(50);
    System.out.printf(
        "  the proxy adds %+.3f ms at p50 (%.2fx)   target <= 1 ms   %s%n",
        added,
        proxied.percentileMillis(50) / direct.percentileMillis(50),
        added <= 1.0 ? "met" : "NOT met");
    System.out.printf(
        "  %d MiB download: direct %.0f MB/s, through the proxy %.0f MB/s (%.2fx)   target >= 100"
            + " MB/s   %s%n",
        DOWNLOAD_MIB,
        directMbs,
        proxiedMbs,
        proxiedMbs / directMbs,
        proxiedMbs >= 100 ? "met" : "NOT met");
  }

  // --- setup
  // ----------------------------------------------------------------------------------------

  private static HttpServer webServer(String ip) throws IOException {
    HttpServer server = HttpServer.create(new InetSocketAddress(ip, 0), 128);
    server.setExecutor(
        Executors.newFixedThreadPool(
            4,
            task -> {
              Thread thread = new Thread(task, "bench-web");
              thread.setDaemon(true); // the benchmark ends when main does
              return thread;
            }));
    server.createContext(
        "/small",
        exchange -> {
          exchange.sendResponseHeaders(200, 2);
          try (OutputStream out = exchange.getResponseBody()) {
            out.write("ok".getBytes(StandardCharsets.US_ASCII));
          }
        });
    server.createContext(
        "/bytes",
        exchange -> {
          exchange.sendResponseHeaders(200, (long) DOWNLOAD_MIB << 20);
          try (OutputStream out = exchange.getResponseBody()) {
            for (int i = 0; i < DOWNLOAD_MIB; i++) {
              out.write(MIB);
            }
          }
        });
    server.start();
    return server;
  }

  private static String provision(ServerProcess server, String ip, int port) {
    String environment =
        EnvironmentServiceGrpc.newBlockingStub(server.channel())
            .createEnvironment(
                CreateEnvironmentRequest.newBuilder()
                    .setName("bench")
                    .setNetworking(
                        Networking.newBuilder()
                            .setMode(NetworkMode.NETWORK_MODE_LIMITED)
                            .addAllowedHosts(ip)
                            .addAllowedPorts(port))
                    .build())
            .getEnvironment()
            .getId();
    return SandboxServiceGrpc.newBlockingStub(server.channel())
        .provision(
            ProvisionRequest.newBuilder()
                .setEnvironmentId(environment)
                .setResources(SandboxResources.newBuilder().setCallTimeoutMs(600_000))
                .build())
        .getSandbox()
        .getId();
  }

  /** The proxy socket of the one sandbox the server serves. */
  private static Path socketOf(ServerProcess server) throws IOException {
    Path directory = Path.of("/tmp/corral-egress-" + server.pid());
    try (Stream<Path> sockets = Files.walk(directory, 2)) {
      List<Path> found =
          sockets.filter(path -> path.getFileName().toString().equals("egress.sock")).toList();
      if (found.size() != 1) {
        throw new IllegalStateException(
            "expected one proxy socket under " + directory + ": " + found);
      }
      return found.get(0);
    }
  }

  private static String bash(ServerProcess server, String sandbox, String command)
      throws IOException {
    String output =
        SandboxServiceGrpc.newBlockingStub(server.channel())
            .execute(
                ExecuteRequest.newBuilder()
                    .setSandboxId(sandbox)
                    .setName("bash")
                    .setInputJson(JSON.writeValueAsString(Map.of("command", command)))
                    .build())
            .getOutput();
    return output.replaceAll("\\n?\\[exit code \\d+\\]$", "").strip();
  }

  private static String host(String command) throws IOException, InterruptedException {
    Process process = new ProcessBuilder("bash", "-c", command).redirectErrorStream(true).start();
    String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    process.waitFor();
    return output.strip();
  }
}
