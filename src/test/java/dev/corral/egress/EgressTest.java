package dev.corral.egress;

import static dev.corral.testing.SessionLogs.log;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.CreateEnvironmentRequest;
import dev.corral.proto.v1.EnvironmentServiceGrpc;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.ExecuteRequest;
import dev.corral.proto.v1.NetworkMode;
import dev.corral.proto.v1.Networking;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.testing.EgressTestProfile;
import dev.corral.testing.Fixtures;
import dev.corral.testing.TestNetwork;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import jakarta.inject.Inject;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The egress proxy from inside real bubblewrap sandboxes, with curl: what an allow-list lets
 * through, what no configuration ever lets through (loopback, cloud metadata, private ranges, names
 * that resolve to them, corral's own server), that networking none means no network at all, and
 * that a stopped proxy leaves no way out.
 */
@QuarkusTest
@TestProfile(EgressTestProfile.class)
class EgressTest {

  private static final ObjectMapper JSON = new ObjectMapper();

  @GrpcClient("corral")
  SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  @GrpcClient("corral")
  EnvironmentServiceGrpc.EnvironmentServiceBlockingStub environments;

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @Inject EgressProxy proxy;

  private final List<String> provisioned = new ArrayList<>();
  private HttpServer web;
  private int port;
  private String marker;

  @BeforeEach
  void startWebServer() throws IOException {
    marker = "hello-" + UUID.randomUUID();
    web = HttpServer.create(new InetSocketAddress(TestNetwork.outwardAddress(), 0), 16);
    web.setExecutor(Executors.newCachedThreadPool());
    web.createContext(
        "/hello",
        exchange -> {
          byte[] body =
              (marker + " " + exchange.getRequestHeaders().getFirst("Host"))
                  .getBytes(StandardCharsets.UTF_8);
          exchange.sendResponseHeaders(200, body.length);
          try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
          }
        });
    web.createContext("/slow", dev.corral.testing.SlowAnswer.handler());
    web.start();
    port = web.getAddress().getPort();
  }

  @AfterEach
  void stop() {
    web.stop(0);
    provisioned.forEach(
        id ->
            sandboxes.releaseSandbox(ReleaseSandboxRequest.newBuilder().setSandboxId(id).build()));
  }

  @Test
  void anAllowedHostIsReachedAndAnotherHostOrPortIsRefusedWithAReasonAndRecorded() {
    // Given a limited environment allowing allowed.test on the test server's port
    String environment = environment(limited(List.of(EgressTestProfile.ALLOWED), List.of(port)));
    Session session = Fixtures.createSession(agents, sessions, environment);
    String sandbox = provision(environment, session.getId());
    String allowed = "http://" + EgressTestProfile.ALLOWED + ":" + port + "/hello";

    // When
    String plain = bash("curl -sS " + allowed);
    String tunnelled = bash("curl -sS --proxytunnel " + allowed);
    String other =
        bash(
            "curl -sS -w ' [%{http_code}]' http://"
                + EgressTestProfile.OTHER
                + ":"
                + port
                + "/hello");
    String otherPort =
        bash("curl -sS -w ' [%{http_code}]' http://" + EgressTestProfile.ALLOWED + ":81/hello");
    String tunnelRefused =
        bash(
            "curl -sS --proxytunnel http://"
                + EgressTestProfile.OTHER
                + ":"
                + port
                + "/ 2>&1; echo \" [exit $?]\"");

    // Then
    assertThat(plain).isEqualTo(marker + " allowed.test:" + port);
    assertThat(tunnelled).isEqualTo(marker + " allowed.test:" + port);
    assertThat(other)
        .contains("corral egress: other.test is not in the environment's allowed_hosts")
        .endsWith("[403]");
    assertThat(otherPort)
        .contains("port 81 is not in the environment's allowed_ports")
        .endsWith("[403]");
    assertThat(tunnelRefused).contains("403").doesNotContain("[exit 0]");
    await()
        .atMost(Duration.ofSeconds(10))
        .untilAsserted(
            () ->
                assertThat(denials(session.getId()))
                    .anySatisfy(
                        denied -> {
                          assertThat(denied.getSandboxId()).isEqualTo(sandbox);
                          assertThat(denied.getHost()).isEqualTo(EgressTestProfile.OTHER);
                          assertThat(denied.getPort()).isEqualTo(port);
                          assertThat(denied.getReason()).contains("allowed_hosts");
                        }));
  }

  @Test
  void theSocketsDirectoryHasANameNobodyCouldHaveTakenFirstAndOnlyCorralMayWriteIt()
      throws Exception {
    // Given a running sandbox
    provision(limited(List.of(EgressTestProfile.ALLOWED), List.of(port)));

    // Then the replica's directory of sockets is not named by its process id alone (which another
    // user of the host could read ahead and make first, keeping it), is corral's, and no one else
    // may list it or make anything in it
    java.nio.file.Path directory = socketDirectory();
    assertThat(directory.getFileName().toString())
        .startsWith("corral-egress-" + ProcessHandle.current().pid() + "-");
    assertThat(
            java.nio.file.Files.getAttribute(
                directory, "unix:uid", java.nio.file.LinkOption.NOFOLLOW_LINKS))
        .isEqualTo(
            java.nio.file.Files.getAttribute(java.nio.file.Path.of("/proc/self"), "unix:uid"));
    assertThat(
            java.nio.file.attribute.PosixFilePermissions.toString(
                java.nio.file.Files.getPosixFilePermissions(
                    directory, java.nio.file.LinkOption.NOFOLLOW_LINKS)))
        .isEqualTo("rwx--x--x");
  }

  @Test
  void aPlainRequestIsForwardedAloneNotWithARequestPipelinedAfterIt() throws Exception {
    // Given an allowed host whose server reads every request on a connection, whatever its
    // Connection header says (as some do), and a sandbox that may reach it
    // When the sandbox sends a checked request with a body, and, on the same connection, a
    // second one for another site
    String seen =
        whatTheHostReceives(
            authority ->
                "POST http://"
                    + authority
                    + "/first HTTP/1.1\r\nHost: "
                    + authority
                    + "\r\nContent-Length: 4\r\n\r\nbody"
                    + "GET /second HTTP/1.1\r\nHost: not-allowed.example\r\n\r\n");

    // Then the host gets the first request and its body, and nothing of the second
    assertThat(seen).contains("POST /first HTTP/1.1").endsWith("body");
    assertThat(seen).doesNotContain("second").doesNotContain("not-allowed.example");
  }

  @Test
  void aPlainHttpTunnelCarriesItsCheckedRequestAloneNotOneKeptAliveAfterIt() throws Exception {
    // Given the same host and sandbox
    // When the sandbox opens a tunnel to the host, sends a request the check lets through (that
    // asks to keep the connection alive, and to upgrade it), and then, on the same tunnel, a
    // request for another site of the same server
    String seen =
        whatTheHostReceives(
            authority ->
                "CONNECT "
                    + authority
                    + " HTTP/1.1\r\nHost: "
                    + authority
                    + "\r\n\r\n"
                    + "POST /first HTTP/1.1\r\nHost: "
                    + authority
                    + "\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n"
                    + "Content-Length: 4\r\n\r\nbody"
                    + "GET /second HTTP/1.1\r\nHost: not-allowed.example\r\n\r\n");

    // Then the host gets the first request, closing and not upgrading, and nothing of the second
    assertThat(seen).startsWith("POST /first HTTP/1.1\r\n").endsWith("body");
    assertThat(seen).contains("\r\nConnection: close\r\n").doesNotContainIgnoringCase("upgrade");
    assertThat(seen).doesNotContain("second").doesNotContain("not-allowed.example");
  }

  /**
   * What an allowed host's server, which reads every request on a connection whatever its
   * Connection header says (as some do), receives when a sandbox that may reach it writes {@code
   * requests} (given the host's authority) to its way out, on one connection.
   */
  private String whatTheHostReceives(java.util.function.Function<String, String> requests)
      throws Exception {
    try (java.net.ServerSocket server =
        new java.net.ServerSocket(0, 4, TestNetwork.outwardAddress())) {
      java.util.concurrent.CompletableFuture<String> received =
          java.util.concurrent.CompletableFuture.supplyAsync(
              () -> {
                try (java.net.Socket accepted = server.accept()) {
                  accepted.setSoTimeout(1_500);
                  java.io.ByteArrayOutputStream seen = new java.io.ByteArrayOutputStream();
                  byte[] chunk = new byte[4096];
                  try {
                    for (int n; (n = accepted.getInputStream().read(chunk)) > 0; ) {
                      seen.write(chunk, 0, n);
                    }
                  } catch (java.net.SocketTimeoutException quiet) {
                    // all that came
                  }
                  accepted
                      .getOutputStream()
                      .write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".getBytes());
                  return seen.toString(StandardCharsets.ISO_8859_1);
                } catch (IOException failed) {
                  return "failed: " + failed;
                }
              });
      provision(limited(List.of(EgressTestProfile.ALLOWED), List.of(server.getLocalPort())));
      java.nio.file.Path socket;
      try (var found = java.nio.file.Files.list(socketDirectory())) {
        socket =
            found
                .map(own -> own.resolve("egress.sock"))
                .filter(java.nio.file.Files::exists)
                .findFirst()
                .orElseThrow();
      }
      String authority = EgressTestProfile.ALLOWED + ":" + server.getLocalPort();
      try (java.nio.channels.SocketChannel channel =
          java.nio.channels.SocketChannel.open(java.net.UnixDomainSocketAddress.of(socket))) {
        channel.write(
            java.nio.ByteBuffer.wrap(
                requests.apply(authority).getBytes(StandardCharsets.ISO_8859_1)));
        return received.get(10, java.util.concurrent.TimeUnit.SECONDS);
      }
    }
  }

  /** This replica's directory of sandboxes' sockets. */
  private java.nio.file.Path socketDirectory() throws java.io.IOException {
    return proxy.directory();
  }

  @Test
  void anotherUserOfTheHostCannotUseASandboxsWayOutThoughItsPathIsOnTheCommandLine()
      throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(
        "root".equals(System.getProperty("user.name")),
        "sandboxes run as users of their own only when corral runs as root");
    // Given a running sandbox, whose socket's path any user of the host reads with ps
    provision(limited(List.of(EgressTestProfile.ALLOWED), List.of(port)));
    java.nio.file.Path directory = socketDirectory();
    List<java.nio.file.Path> sockets;
    try (var found = java.nio.file.Files.list(directory)) {
      sockets =
          found.map(own -> own.resolve("egress.sock")).filter(java.nio.file.Files::exists).toList();
    }
    assertThat(sockets).isNotEmpty();

    // When another user of the host (nobody) connects to it, and corral's own user does
    for (java.nio.file.Path socket : sockets) {
      String hello = "http://" + EgressTestProfile.ALLOWED + ":" + port + "/hello";
      String asNobody =
          curlThrough(socket, hello, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups");
      String asCorral = curlThrough(socket, hello);

      // Then the other user cannot reach the socket (the file system refuses it before the proxy
      // sees it), though the socket itself works
      assertThat(asNobody)
          .as(socket.toString())
          .contains("Couldn't connect")
          .doesNotContain(marker);
      assertThat(asCorral).as(socket.toString()).contains(marker);
    }
  }

  /** {@code url} fetched through a sandbox's proxy socket, by {@code as} (a command prefix). */
  private static String curlThrough(java.nio.file.Path socket, String url, String... as)
      throws Exception {
    List<String> command = new java.util.ArrayList<>(List.of(as));
    command.addAll(
        List.of(
            "curl",
            "-sS",
            "--max-time",
            "5",
            "--unix-socket",
            socket.toString(),
            "--request-target",
            url,
            url));
    Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
    String output = new String(process.getInputStream().readAllBytes());
    process.waitFor();
    return output;
  }

  @Test
  void aRunningSandboxFollowsItsEnvironmentWhenItsNetworkingIsNarrowedOrCut() {
    // Given a sandbox of an environment that allows allowed.test, with a download under way
    String sandbox = provision(limited(List.of(EgressTestProfile.ALLOWED), List.of(port)));
    String environment =
        sandboxes
            .getSandbox(
                dev.corral.proto.v1.GetSandboxRequest.newBuilder().setSandboxId(sandbox).build())
            .getSandbox()
            .getEnvironmentId();
    String allowed = "http://" + EgressTestProfile.ALLOWED + ":" + port + "/hello";
    assertThat(bash("curl -sS " + allowed)).startsWith(marker);
    bash(
        "(curl -sSN --proxytunnel http://"
            + EgressTestProfile.ALLOWED
            + ":"
            + port
            + "/slow > /tmp/slow.out 2>&1; echo \"exit $?\" >> /tmp/slow.out) &");
    await()
        .atMost(Duration.ofSeconds(10))
        .untilAsserted(() -> assertThat(bash("cat /tmp/slow.out")).contains("tick 2"));

    // When the environment allows another host instead
    environments.updateEnvironment(
        dev.corral.proto.v1.UpdateEnvironmentRequest.newBuilder()
            .setEnvironmentId(environment)
            .setNetworking(limited(List.of(EgressTestProfile.OTHER), List.of(port)))
            .build());

    // Then within seconds the running sandbox is refused the host it may no longer reach, and the
    // download it had open under the old grant breaks off
    await()
        .atMost(Duration.ofSeconds(15))
        .untilAsserted(
            () ->
                assertThat(bash("curl -sS -w ' [%{http_code}]' " + allowed))
                    .contains("not in the environment's allowed_hosts")
                    .endsWith("[403]"));
    await()
        .atMost(Duration.ofSeconds(5))
        .until(() -> bash("tail -n 1 /tmp/slow.out").startsWith("exit "));

    // And when its networking is cut, nothing gets out at all
    environments.updateEnvironment(
        dev.corral.proto.v1.UpdateEnvironmentRequest.newBuilder()
            .setEnvironmentId(environment)
            .setNetworking(networking(NetworkMode.NETWORK_MODE_NONE))
            .build());
    await()
        .atMost(Duration.ofSeconds(15))
        .untilAsserted(
            () ->
                assertThat(
                        bash(
                            "curl -sS -w ' [%{http_code}]' http://"
                                + EgressTestProfile.OTHER
                                + ":"
                                + port
                                + "/hello"))
                    .contains("this sandbox has no network")
                    .endsWith("[403]"));
    assertThat(proxy.grantOf(sandbox)).isEmpty();
  }

  @Test
  void anAllowedHostCannotBeUsedToReachAnotherSiteOfTheSameServer() {
    // Given a limited environment allowing allowed.test, served by a server of many sites
    String environment = environment(limited(List.of(EgressTestProfile.ALLOWED), List.of(port)));
    Session session = Fixtures.createSession(agents, sessions, environment);
    provision(environment, session.getId());
    String allowed = EgressTestProfile.ALLOWED + ":" + port;
    String other = EgressTestProfile.OTHER + ":" + port;

    // When a request names another site in its Host header, plainly and through a tunnel
    String plain = bash("curl -sS -H 'Host: " + other + "' http://" + allowed + "/hello");
    String tunnelled =
        bash(
            "curl -sS --proxytunnel -H 'Host: "
                + other
                + "' http://"
                + allowed
                + "/hello 2>&1; echo \" [exit $?]\"");

    // or in a field line whose name is not right before its colon (which a lenient server
    // reads as a Host field all the same)
    String spaced =
        bash(
            "exec 3<>/dev/tcp/127.0.0.1/3128; printf 'GET http://"
                + allowed
                + "/hello HTTP/1.1\\r\\nHost : "
                + other
                + "\\r\\nConnection: close\\r\\n\\r\\n' >&3; timeout 10 cat <&3");

    // And more tunnels one after another than a sandbox may hold open at once all get through
    String many =
        bash(
            "for i in $(seq 70); do curl -sS --proxytunnel -o /dev/null -w '%{http_code}\\n' http://"
                + allowed
                + "/hello; done | sort | uniq -c");

    // Then the plain request went to the allowed site, and the tunnel was closed and recorded
    assertThat(many.strip()).isEqualTo("70 200");
    assertThat(plain).isEqualTo(marker + " " + allowed);
    assertThat(spaced).startsWith("HTTP/1.1 400").contains("field line").doesNotContain(marker);
    assertThat(tunnelled).doesNotContain(marker).doesNotContain("[exit 0]");
    await()
        .atMost(Duration.ofSeconds(10))
        .untilAsserted(
            () ->
                assertThat(denials(session.getId()))
                    .extracting(dev.corral.proto.v1.SandboxEgressDenied::getReason)
                    .anySatisfy(
                        reason ->
                            assertThat(reason)
                                .contains("HTTP request names the host '" + other + "'")));

    // And when a TLS tunnel to the allowed host names the other site as its server name
    Session second = Fixtures.createSession(agents, sessions, environment);
    provision(environment, second.getId());
    String tls =
        bash(
            "curl -sS --proxytunnel --connect-to "
                + other
                + ":"
                + allowed
                + " https://"
                + other
                + "/hello 2>&1; echo \" [exit $?]\"");

    // Then that tunnel was closed too
    assertThat(tls).doesNotContain("[exit 0]");
    await()
        .atMost(Duration.ofSeconds(10))
        .untilAsserted(
            () ->
                assertThat(denials(second.getId()))
                    .extracting(dev.corral.proto.v1.SandboxEgressDenied::getReason)
                    .anySatisfy(
                        reason ->
                            assertThat(reason)
                                .contains("TLS server name is " + EgressTestProfile.OTHER)));
  }

  @Test
  void loopbackMetadataPrivateRebindingAndCorralItselfAreRefusedEvenWhenUnrestricted() {
    // Given the most open networking there is
    String sandbox = provision(networking(NetworkMode.NETWORK_MODE_UNRESTRICTED));
    String outward = TestNetwork.outwardAddress().getHostAddress();
    List<String> targets =
        List.of(
            "http://127.0.0.1:18081/",
            "http://localhost:18081/",
            "http://2130706433:18081/",
            "http://[::1]:18081/",
            "http://169.254.169.254/latest/meta-data/",
            "http://metadata.test/computeMetadata/v1/",
            "http://10.20.30.40/",
            "http://private.test/",
            "http://rebind.test:18081/",
            "http://mapped.test:18081/",
            "http://0.0.0.0:18081/",
            "http://" + outward + ":18081/",
            "http://" + EgressTestProfile.ALLOWED + ":18081/");

    for (String target : targets) {
      // When it is asked through the proxy, plainly and as a tunnel
      String plain =
          bash("curl -sS --noproxy '' -w ' [%{http_code}]' -x http://127.0.0.1:3128 " + target);
      String tunnel =
          bash(
              "curl -sS --noproxy '' --proxytunnel -x http://127.0.0.1:3128 "
                  + target
                  + " 2>&1; echo \" [exit $?]\"");

      // Then it is refused, with the reason
      assertThat(plain).as(target).contains("corral egress: ").endsWith("[403]");
      assertThat(tunnel).as(target).contains("403").doesNotContain("[exit 0]");
    }
    // And corral's own port is not reachable past the proxy either: there is no route out
    assertThat(
            bash("curl -sS --noproxy '*' http://" + outward + ":18081/ 2>&1; echo \" [exit $?]\""))
        .doesNotContain("[exit 0]");
    assertThat(bash("curl -sS --noproxy '*' http://127.0.0.1:18081/ 2>&1; echo \" [exit $?]\""))
        .contains("Failed to connect")
        .doesNotContain("[exit 0]");
    assertThat(bash("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '")).isEqualTo("lo");
  }

  @Test
  void networkingNoneHasNoNetworkAtAll() {
    // Given the default environment, networking none
    String sandbox = provision(networking(NetworkMode.NETWORK_MODE_NONE));
    String outward = TestNetwork.outwardAddress().getHostAddress();

    // When
    String viaProxy =
        bash(
            "curl -sS -w ' [%{http_code}]' http://"
                + EgressTestProfile.ALLOWED
                + ":"
                + port
                + "/hello");
    String direct =
        bash(
            "curl -sS --noproxy '*' --connect-timeout 2 http://"
                + outward
                + ":"
                + port
                + "/hello 2>&1; echo \" [exit $?]\"");
    String socket = bash("ls -A /run/corral");
    String names = bash("getent hosts " + EgressTestProfile.ALLOWED + "; echo \"[exit $?]\"");

    // Then
    assertThat(viaProxy).contains("this sandbox has no network").endsWith("[403]");
    assertThat(direct).doesNotContain(marker).doesNotContain("[exit 0]");
    assertThat(socket).isEmpty();
    assertThat(names).isEqualTo("[exit 2]");
  }

  @Test
  void aStoppedProxyClosesOpenTunnelsAndLeavesNoWayOut() {
    // Given a download under way through the proxy
    String sandbox = provision(limited(List.of(EgressTestProfile.ALLOWED), List.of(port)));
    String slow = "http://" + EgressTestProfile.ALLOWED + ":" + port + "/slow";
    bash(
        "(curl -sSN --proxytunnel "
            + slow
            + " > /tmp/slow.out 2>&1; echo \"exit $?\" >> /tmp/slow.out) &");
    await()
        .atMost(Duration.ofSeconds(10))
        .untilAsserted(() -> assertThat(bash("cat /tmp/slow.out")).contains("tick 3"));

    // When the proxy stops (as when its replica goes)
    proxy.stopAll();

    // Then the download breaks off, and nothing gets out any more
    await()
        .atMost(Duration.ofSeconds(10))
        .until(() -> bash("tail -n 1 /tmp/slow.out").startsWith("exit "));
    assertThat(bash("tail -n 1 /tmp/slow.out")).isNotEqualTo("exit 0");
    assertThat(bash("ls -A /run/corral")).isEmpty();
    assertThat(bash("curl -sS -w ' [%{http_code}]' http://allowed.test:" + port + "/hello"))
        .contains("this sandbox has no network")
        .endsWith("[403]");
    assertThat(proxy.grantOf(sandbox)).isEmpty();
  }

  private List<dev.corral.proto.v1.SandboxEgressDenied> denials(String sessionId) {
    return log(sessions, sessionId).stream()
        .filter(Event::hasSandboxEgressDenied)
        .map(Event::getSandboxEgressDenied)
        .toList();
  }

  private static Networking limited(List<String> hosts, List<Integer> ports) {
    return Networking.newBuilder()
        .setMode(NetworkMode.NETWORK_MODE_LIMITED)
        .addAllAllowedHosts(hosts)
        .addAllAllowedPorts(ports)
        .build();
  }

  private static Networking networking(NetworkMode mode) {
    return Networking.newBuilder().setMode(mode).build();
  }

  /** A sandbox of a new environment with {@code networking}, serving no session. */
  private String provision(Networking networking) {
    return provision(environment(networking), "");
  }

  private String environment(Networking networking) {
    return environments
        .createEnvironment(
            CreateEnvironmentRequest.newBuilder()
                .setName("egress " + UUID.randomUUID())
                .setNetworking(networking)
                .build())
        .getEnvironment()
        .getId();
  }

  private String provision(String environment, String sessionId) {
    String id =
        sandboxes
            .provision(
                ProvisionRequest.newBuilder()
                    .setEnvironmentId(environment)
                    .setSessionId(sessionId)
                    .setResources(SandboxResources.newBuilder().setCallTimeoutMs(20_000))
                    .build())
            .getSandbox()
            .getId();
    provisioned.add(id);
    sandbox = id;
    return id;
  }

  private String sandbox;

  /** Runs {@code command} with bash in the current sandbox; its output without the exit code. */
  private String bash(String command) {
    try {
      String input = JSON.writeValueAsString(java.util.Map.of("command", command));
      String output =
          sandboxes
              .execute(
                  ExecuteRequest.newBuilder()
                      .setSandboxId(sandbox)
                      .setName("bash")
                      .setInputJson(input)
                      .build())
              .getOutput();
      String bare = output.replaceAll("\\n?\\[exit code \\d+\\]$", "").strip();
      return bare.equals("(no output)") ? "" : bare;
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }
}
