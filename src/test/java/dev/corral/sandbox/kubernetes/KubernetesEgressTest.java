package dev.corral.sandbox.kubernetes;

import static dev.corral.testing.TestNetwork.readHead;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import dev.corral.proto.v1.CreateEnvironmentRequest;
import dev.corral.proto.v1.EnvironmentServiceGrpc;
import dev.corral.proto.v1.ExecuteRequest;
import dev.corral.proto.v1.NetworkMode;
import dev.corral.proto.v1.Networking;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxDriver;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.UpdateEnvironmentRequest;
import dev.corral.testing.EgressTestProfile;
import dev.corral.testing.FakeKubelet;
import dev.corral.testing.FakeKubernetes;
import dev.corral.testing.InjectFakeKubernetes;
import dev.corral.testing.TestNetwork;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Egress of Kubernetes sandboxes (fabric8 mock API server, fake kubelet): a pod that may reach
 * something gets the proxy's address and its own egress token, which every exec reads; the proxy
 * (on corral's listen port) admits a request only with a valid token of a ready sandbox, applies
 * that sandbox's allow-list, and closes a released sandbox's open tunnels. The test plays the pod's
 * network side (the fake pods have no network of their own).
 */
@QuarkusTest
@WithTestResource(FakeKubernetes.class)
@TestProfile(KubernetesEgressTest.Profile.class)
class KubernetesEgressTest {

  /** Fixed: the profile and the test may be loaded by different class loaders. */
  private static final int PROXY_PORT = 18093;

  private static final ObjectMapper JSON = new ObjectMapper();

  public static class Profile extends EgressTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      Map<String, String> config = new HashMap<>(super.getConfigOverrides());
      config.put("corral.egress.listen-port", Integer.toString(PROXY_PORT));
      config.put("corral.egress.listen-host", "127.0.0.1");
      config.put("corral.sandbox.kubernetes.egress-proxy", "localhost:" + PROXY_PORT);
      // The operator's image and RuntimeClass policy, for KubernetesPolicyTest (which shares this
      // profile, so that both run in one application); environments without an image pass it.
      config.put("corral.sandbox.kubernetes.allowed-image-prefixes", "registry.corp/sandboxes/");
      config.put("corral.sandbox.kubernetes.runtime-class-name", "gvisor");
      config.put("corral.sandbox.kubernetes.allowed-runtime-class-names", "gvisor,kata");
      return config;
    }
  }

  @InjectFakeKubernetes FakeKubelet kubelet;

  @GrpcClient("corral")
  io.grpc.Channel channel;

  @jakarta.inject.Inject io.vertx.mutiny.sqlclient.Pool pool;

  @GrpcClient("corral")
  SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  @GrpcClient("corral")
  EnvironmentServiceGrpc.EnvironmentServiceBlockingStub environments;

  @org.eclipse.microprofile.config.inject.ConfigProperty(
      name = "corral.egress.max-connections-per-sandbox")
  int maxConnectionsPerSandbox;

  private HttpServer web;
  private String marker;

  @BeforeEach
  void start() throws IOException {
    kubelet.podStartDelayMs = 100;
    kubelet.exitCodeOnPodDelete = 137;
    kubelet.execHandler = kubelet::runInPodSandbox;
    marker = "pod-" + UUID.randomUUID();
    web = HttpServer.create(new InetSocketAddress(TestNetwork.outwardAddress(), 0), 16);
    web.setExecutor(Executors.newCachedThreadPool());
    web.createContext(
        "/hello",
        exchange -> {
          byte[] body = marker.getBytes(StandardCharsets.UTF_8);
          exchange.sendResponseHeaders(200, body.length);
          try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
          }
        });
    web.createContext("/slow", dev.corral.testing.SlowAnswer.handler());
    web.start();
  }

  @AfterEach
  void stop() {
    web.stop(0);
  }

  @Test
  void aPodWithNetworkGetsItsTokenAndTheProxyChecksItAndTheAllowListAndTheSandboxsState()
      throws Exception {
    // Given two limited pods, allowed.test on the test server's port
    int port = web.getAddress().getPort();
    String environment = environment(limited(EgressTestProfile.ALLOWED, port));
    Sandbox first = provision(environment);
    Sandbox second = provision(environment);

    // When the pods' proxy settings are read, as every exec reads them
    URI proxy = URI.create(bash(first, "echo \"$HTTP_PROXY\""));
    URI other = URI.create(bash(second, "echo \"$https_proxy\""));
    String token = proxy.getUserInfo().substring(proxy.getUserInfo().indexOf(':') + 1);
    String otherToken = other.getUserInfo().substring(other.getUserInfo().indexOf(':') + 1);
    String allowed = "http://" + EgressTestProfile.ALLOWED + ":" + port + "/hello";

    // Then each names its own sandbox, with its own token, at the proxy's address (resolved)
    assertThat(proxy.getUserInfo()).startsWith(first.getId() + ":");
    assertThat(other.getUserInfo()).startsWith(second.getId() + ":");
    assertThat(token).isNotEqualTo(otherToken);
    assertThat(proxy.getHost()).isEqualTo("127.0.0.1");
    assertThat(proxy.getPort()).isEqualTo(PROXY_PORT);

    // And the proxy lets the right token through, to the allowed host only
    assertThat(request(allowed, first.getId(), token)).startsWith("HTTP/1.1 200").endsWith(marker);
    assertThat(
            request("http://" + EgressTestProfile.OTHER + ":" + port + "/", first.getId(), token))
        .startsWith("HTTP/1.1 403")
        .contains("not in the environment's allowed_hosts");
    assertThat(request("http://127.0.0.1:" + PROXY_PORT + "/", first.getId(), token))
        .startsWith("HTTP/1.1 403");
    // but not a head with a bare CR, a bare LF or a folded line, which a server further on might
    // read as more headers than the proxy saw
    for (String smuggled :
        List.of("X-A: 1\rHost: other.test", "X-A: 1\nHost: other.test", "X-A: 1\r\n Host: x")) {
      try (Socket socket = new Socket("127.0.0.1", PROXY_PORT)) {
        socket.setSoTimeout(10_000);
        send(
            socket,
            "GET "
                + allowed
                + " HTTP/1.1\r\n"
                + smuggled
                + "\r\nProxy-Authorization: "
                + basic(first.getId(), token)
                + "\r\n\r\n");
        assertThat(new String(socket.getInputStream().readAllBytes(), StandardCharsets.ISO_8859_1))
            .as(smuggled)
            .startsWith("HTTP/1.1 400")
            .doesNotContain(marker);
      }
    }
    // nor another sandbox's token, a forged one, or none
    assertThat(request(allowed, first.getId(), otherToken)).startsWith("HTTP/1.1 407");
    assertThat(request(allowed, second.getId(), token)).startsWith("HTTP/1.1 407");
    assertThat(request(allowed, first.getId(), token.substring(0, token.length() - 2) + "xx"))
        .startsWith("HTTP/1.1 407");
    assertThat(request(allowed, null, null)).startsWith("HTTP/1.1 407");

    // When a tunnel is open and its sandbox is released
    try (Socket tunnel = new Socket("127.0.0.1", PROXY_PORT)) {
      tunnel.setSoTimeout(15_000);
      assertThat(connect(tunnel, first.getId(), token, port)).startsWith("HTTP/1.1 200");
      sandboxes.releaseSandbox(
          ReleaseSandboxRequest.newBuilder().setSandboxId(first.getId()).build());

      // Then the tunnel, kept busy, closes within the proxy's recheck, and the token opens
      // nothing more
      assertThat(closesWithin(tunnel, Duration.ofSeconds(12))).as("the tunnel closed").isTrue();
    }
    await()
        .atMost(Duration.ofSeconds(10))
        .untilAsserted(
            () ->
                assertThat(request(allowed, first.getId(), token))
                    .startsWith("HTTP/1.1 403")
                    .contains("is not running"));
    assertThat(request(allowed, second.getId(), otherToken)).endsWith(marker);
  }

  @Test
  void clientsThatLeaveWhileTheirGrantIsLookedUpGiveTheirPlacesBack() throws Exception {
    // Given a limited pod and its token, whose grant no request has looked up yet
    int port = web.getAddress().getPort();
    Sandbox pod = provision(environment(limited(EgressTestProfile.ALLOWED, port)));
    URI proxy = URI.create(bash(pod, "echo \"$HTTP_PROXY\""));
    String token = proxy.getUserInfo().substring(proxy.getUserInfo().indexOf(':') + 1);
    String allowed = "http://" + EgressTestProfile.ALLOWED + ":" + port + "/hello";

    // When as many clients as the sandbox may have connections send a request and leave while
    // the grant is looked up (held up by a lock on the environments it reads)
    io.vertx.mutiny.sqlclient.SqlConnection lock =
        dev.corral.testing.SessionRows.lockTable(pool, "environments");
    try {
      for (int i = 0; i < maxConnectionsPerSandbox; i++) {
        try (Socket socket = new Socket("127.0.0.1", PROXY_PORT)) {
          send(
              socket,
              "GET "
                  + allowed
                  + " HTTP/1.1\r\nHost: "
                  + EgressTestProfile.ALLOWED
                  + "\r\nProxy-Authorization: "
                  + basic(pod.getId(), token)
                  + "\r\n\r\n");
        }
      }
      // (asked on the lock's own connection: the lookups may hold all of the pool's others)
      await()
          .atMost(Duration.ofSeconds(10))
          .until(
              () ->
                  lock.query(
                              "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type ="
                                  + " 'Lock'")
                          .executeAndAwait()
                          .iterator()
                          .next()
                          .getLong(0)
                      > 0);
    } finally {
      dev.corral.testing.SessionRows.rollback(lock);
    }

    // Then the sandbox has all its places again: a request of its own is served
    await()
        .atMost(Duration.ofSeconds(10))
        .untilAsserted(() -> assertThat(request(allowed, pod.getId(), token)).endsWith(marker));
  }

  @Test
  void narrowingAnEnvironmentsNetworkingClosesTheTunnelsItsPodsOpenedUnderTheOldOne()
      throws Exception {
    // Given a limited pod with a tunnel open to its allowed host
    int port = web.getAddress().getPort();
    String environment = environment(limited(EgressTestProfile.ALLOWED, port));
    Sandbox sandbox = provision(environment);
    URI proxy = URI.create(bash(sandbox, "echo \"$HTTP_PROXY\""));
    String token = proxy.getUserInfo().substring(proxy.getUserInfo().indexOf(':') + 1);
    try (Socket tunnel = new Socket("127.0.0.1", PROXY_PORT)) {
      tunnel.setSoTimeout(15_000);
      assertThat(connect(tunnel, sandbox.getId(), token, port)).startsWith("HTTP/1.1 200");

      // When its environment stops allowing that host
      environments.updateEnvironment(
          UpdateEnvironmentRequest.newBuilder()
              .setEnvironmentId(environment)
              .setNetworking(limited(EgressTestProfile.OTHER, port))
              .build());

      // Then the tunnel, kept busy, closes within the proxy's recheck, and the host is refused
      // from then on
      assertThat(closesWithin(tunnel, Duration.ofSeconds(12))).as("the tunnel closed").isTrue();
    }
    assertThat(
            request(
                "http://" + EgressTestProfile.ALLOWED + ":" + port + "/hello",
                sandbox.getId(),
                token))
        .startsWith("HTTP/1.1 403");
  }

  @Test
  void connectionsThatNeverAuthenticateAreCappedPerAddressAndOthersAreStillServed()
      throws Exception {
    // Given a pod that may reach the test server
    int port = web.getAddress().getPort();
    Sandbox sandbox = provision(environment(limited(EgressTestProfile.ALLOWED, port)));
    URI proxy = URI.create(bash(sandbox, "echo \"$HTTP_PROXY\""));
    String token = proxy.getUserInfo().substring(proxy.getUserInfo().indexOf(':') + 1);
    String allowed = "http://" + EgressTestProfile.ALLOWED + ":" + port + "/hello";

    // When one address opens as many connections as it may that send no head, and one more
    List<Socket> silent = new java.util.ArrayList<>();
    try {
      for (int i = 0; i < dev.corral.egress.PodEgress.MAX_UNREAD_PER_ADDRESS; i++) {
        silent.add(new Socket("127.0.0.1", PROXY_PORT));
      }
      // Then the one more is refused at once, without being read
      try (Socket more = new Socket("127.0.0.1", PROXY_PORT)) {
        more.setSoTimeout(5_000);
        assertThat(readHead(more.getInputStream()))
            .startsWith("HTTP/1.1 503")
            .contains("Connection: close");
      }
      // And another address is still served
      java.net.InetAddress other = java.net.InetAddress.getByAddress(new byte[] {127, 0, 0, 2});
      assertThat(requestFrom(other, allowed, sandbox.getId(), token)).endsWith(marker);
    } finally {
      for (Socket socket : silent) {
        socket.close();
      }
    }
    // And once the silent ones close, the address is served again
    await()
        .atMost(Duration.ofSeconds(5))
        .untilAsserted(() -> assertThat(request(allowed, sandbox.getId(), token)).endsWith(marker));
  }

  @Test
  void aTenantDisabledOnAnotherReplicaLosesItsPodsEgressAtTheNextRecheck() throws Exception {
    // Given a pod of another tenant with a tunnel open, on this replica
    String tenant = "egress-off-" + System.nanoTime();
    io.grpc.Channel member =
        dev.corral.testing.TestCredentials.memberOfNewTenantNamed(channel, tenant);
    int port = web.getAddress().getPort();
    String environment =
        EnvironmentServiceGrpc.newBlockingStub(member)
            .createEnvironment(
                CreateEnvironmentRequest.newBuilder()
                    .setName("k8s egress off")
                    .setDriver(SandboxDriver.SANDBOX_DRIVER_KUBERNETES)
                    .setNetworking(limited(EgressTestProfile.ALLOWED, port))
                    .build())
            .getEnvironment()
            .getId();
    SandboxServiceGrpc.SandboxServiceBlockingStub theirs =
        SandboxServiceGrpc.newBlockingStub(member);
    Sandbox sandbox =
        theirs
            .provision(ProvisionRequest.newBuilder().setEnvironmentId(environment).build())
            .getSandbox();
    URI proxy =
        URI.create(
            theirs
                .execute(
                    ExecuteRequest.newBuilder()
                        .setSandboxId(sandbox.getId())
                        .setName("bash")
                        .setInputJson("{\"command\":\"echo \\\"$HTTP_PROXY\\\"\"}")
                        .build())
                .getOutput()
                .strip());
    String token = proxy.getUserInfo().substring(proxy.getUserInfo().indexOf(':') + 1);
    String allowed = "http://" + EgressTestProfile.ALLOWED + ":" + port + "/hello";
    assertThat(request(allowed, sandbox.getId(), token)).endsWith(marker);
    try (Socket tunnel = new Socket("127.0.0.1", PROXY_PORT)) {
      tunnel.setSoTimeout(15_000);
      assertThat(connect(tunnel, sandbox.getId(), token, port)).startsWith("HTTP/1.1 200");

      // When another replica disables the tenant (this one hears of it only from the database,
      // and its reconciler runs once an hour here)
      pool.preparedQuery("UPDATE tenants SET disabled_at = clock_timestamp() WHERE id = $1")
          .execute(io.vertx.mutiny.sqlclient.Tuple.of(tenant))
          .await()
          .indefinitely();

      // Then the tunnel closes within the proxy's recheck, and nothing new gets through
      assertThat(closesWithin(tunnel, Duration.ofSeconds(12))).as("the tunnel closed").isTrue();
    }
    await()
        .atMost(Duration.ofSeconds(10))
        .untilAsserted(
            () -> assertThat(request(allowed, sandbox.getId(), token)).startsWith("HTTP/1.1 403"));
  }

  @Test
  void theProxySettingsAreReadAsDataSoTheModelsCodeCannotPlantCodeInEveryExec() {
    // Given a limited pod whose code rewrites the proxy settings file (it may: same user) with a
    // realpath that would turn every file tool's path into another file's
    Sandbox sandbox = provision(environment(limited(EgressTestProfile.ALLOWED, 80)));
    bash(sandbox, "echo mine > /workspace/mine.txt; echo other > /workspace/other.txt");
    String planted = "echo planted; realpath() { printf /workspace/other.txt; }";
    bash(sandbox, "printf '%s\\n' '" + planted + "' > /tmp/.corral-egress");

    // When a file tool runs next, and a fresh shell
    String read = call(sandbox, "read", Map.of("file_path", "mine.txt"));
    String fresh =
        call(sandbox, "bash", Map.of("restart", true, "command", "echo \"[$HTTP_PROXY]\""));

    // Then nothing planted ran: the file read is the one named, the "URL" is only text
    assertThat(read).contains("mine").doesNotContain("other").doesNotContain("planted");
    assertThat(fresh).endsWith("\n[" + planted + "]").doesNotContain("planted\n");
  }

  @Test
  void aPodWithoutNetworkHasNoProxySettings() {
    // Given networking none and no repository
    Sandbox sandbox =
        provision(environment(Networking.newBuilder().setMode(NetworkMode.NETWORK_MODE_NONE)));

    // Then its execs have no proxy, and there is no settings file
    assertThat(bash(sandbox, "echo \"[$HTTP_PROXY$http_proxy]\"; ls -A /tmp")).isEqualTo("[]");
  }

  // --- helpers
  // ------------------------------------------------------------------------------------

  private static Networking.Builder limited(String host, int port) {
    return Networking.newBuilder()
        .setMode(NetworkMode.NETWORK_MODE_LIMITED)
        .addAllowedHosts(host)
        .addAllowedPorts(port);
  }

  private String environment(Networking.Builder networking) {
    return environments
        .createEnvironment(
            CreateEnvironmentRequest.newBuilder()
                .setName("k8s egress " + UUID.randomUUID())
                .setDriver(SandboxDriver.SANDBOX_DRIVER_KUBERNETES)
                .setNetworking(networking)
                .build())
        .getEnvironment()
        .getId();
  }

  private Sandbox provision(String environment) {
    return sandboxes
        .provision(ProvisionRequest.newBuilder().setEnvironmentId(environment).build())
        .getSandbox();
  }

  private String bash(Sandbox sandbox, String command) {
    return call(sandbox, "bash", Map.of("command", command));
  }

  private String call(Sandbox sandbox, String tool, Map<String, Object> input) {
    try {
      return sandboxes
          .execute(
              ExecuteRequest.newBuilder()
                  .setSandboxId(sandbox.getId())
                  .setName(tool)
                  .setInputJson(JSON.writeValueAsString(input))
                  .build())
          .getOutput()
          .strip();
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  /** Asks the proxy for a tunnel to the test server's allowed host; the answer's head. */
  private static String connect(Socket tunnel, String sandboxId, String token, int port)
      throws IOException {
    send(
        tunnel,
        "CONNECT "
            + EgressTestProfile.ALLOWED
            + ":"
            + port
            + " HTTP/1.1\r\nProxy-Authorization: "
            + basic(sandboxId, token)
            + "\r\n\r\n");
    return readHead(tunnel.getInputStream());
  }

  /**
   * Whether a tunnel to the test server closes within {@code time}, kept busy meanwhile by one
   * answer that lasts 30 s (a plain-HTTP tunnel carries one request; no idle timeout closes a busy
   * one).
   */
  private boolean closesWithin(Socket tunnel, Duration time) {
    long deadline = System.nanoTime() + time.toNanos();
    try {
      send(tunnel, "GET /slow HTTP/1.1\r\nHost: " + EgressTestProfile.ALLOWED + "\r\n\r\n");
      InputStream in = tunnel.getInputStream();
      byte[] chunk = new byte[4096];
      while (System.nanoTime() < deadline) {
        if (in.read(chunk) < 0) {
          return true;
        }
      }
      return false;
    } catch (IOException closed) {
      return true;
    }
  }

  /** One plain request through the proxy, as a pod sends it; the whole answer. */
  private static String request(String url, String sandboxId, String token) throws IOException {
    return requestFrom(java.net.InetAddress.getLoopbackAddress(), url, sandboxId, token);
  }

  /** One plain request through the proxy, sent from {@code from}; the whole answer. */
  private static String requestFrom(
      java.net.InetAddress from, String url, String sandboxId, String token) throws IOException {
    try (Socket socket =
        new Socket(java.net.InetAddress.getLoopbackAddress(), PROXY_PORT, from, 0)) {
      socket.setSoTimeout(10_000);
      URI target = URI.create(url);
      send(
          socket,
          "GET "
              + url
              + " HTTP/1.1\r\nHost: "
              + target.getAuthority()
              + "\r\n"
              + (sandboxId == null
                  ? ""
                  : "Proxy-Authorization: " + basic(sandboxId, token) + "\r\n")
              + "\r\n");
      return new String(socket.getInputStream().readAllBytes(), StandardCharsets.ISO_8859_1);
    }
  }

  private static String basic(String user, String password) {
    return "Basic "
        + Base64.getEncoder()
            .encodeToString((user + ":" + password).getBytes(StandardCharsets.UTF_8));
  }

  private static void send(Socket socket, String text) throws IOException {
    socket.getOutputStream().write(text.getBytes(StandardCharsets.ISO_8859_1));
    socket.getOutputStream().flush();
  }

  @SuppressWarnings("unused")
  private static List<String> lines(String text) {
    return text.lines().toList();
  }
}
