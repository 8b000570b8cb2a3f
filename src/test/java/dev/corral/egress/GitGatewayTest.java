package dev.corral.egress;

import static dev.corral.testing.Fixtures.userMessage;
import static dev.corral.testing.SessionLogs.awaitIdle;
import static dev.corral.testing.SessionLogs.log;
import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.BasicAuth;
import dev.corral.proto.v1.ClonedRepository;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateCredentialRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.GitRepository;
import dev.corral.proto.v1.ListSandboxesRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SandboxState;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionResource;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.VaultServiceGrpc;
import dev.corral.testing.EgressTestProfile;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.GitTestServer;
import dev.corral.testing.InjectFakeAnthropic;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A session's git repository, end to end against a real git smart-HTTP server that demands a token:
 * cloned into the sandbox at provisioning, committed to and pushed from inside it by the model's
 * bash calls, cloned again after the sandbox is lost, and never reachable from another session's
 * sandbox. The token is then searched for everywhere a sandbox could see it, from outside the
 * sandbox.
 */
@QuarkusTest
@TestProfile(EgressTestProfile.class)
class GitGatewayTest {

  private static final ObjectMapper JSON = new ObjectMapper();

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @GrpcClient("corral")
  VaultServiceGrpc.VaultServiceBlockingStub vault;

  @GrpcClient("corral")
  SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  @InjectFakeAnthropic FakeAnthropic model;

  @jakarta.inject.Inject GitGateway gateway;

  private GitTestServer server;
  private String token;

  @BeforeEach
  void start() throws IOException {
    model.reset();
    token = "ghp_" + UUID.randomUUID().toString().replace("-", "");
    server = GitTestServer.start(token);
  }

  @AfterEach
  void stop() throws IOException {
    server.close();
  }

  @Test
  void theSandboxClonesCommitsAndPushesWithoutTheTokenAndAReplacementClonesAgain()
      throws IOException {
    // Given a session with the repository, its token in the vault
    String credential = credential(token);
    String first = server.commitOf("app.git", "main");
    // (the model's answers are queued first: the session's initial message starts the turn)
    model.enqueue(
        bash(
            "toolu_1",
            "cd /workspace/app && cat README.md && git remote get-url origin"
                + " && echo 'a line' >> README.md"
                + " && git -c user.name=Agent -c user.email=agent@example.com"
                + " commit -qam 'agent change' && git push -q origin HEAD:main 2>&1"
                + " && git pull -q 2>&1 && git log --format=%s -1"),
        Reply.text("Pushed."));
    Session session = session(repository(server.url("app.git"), "main", "app", credential), "Go.");

    // When the turn runs
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the clone was recorded, the push arrived, and the token travelled only to the server
    List<Event> events = log(sessions, session.getId());
    assertThat(provisioned(events)).as("provisioned sandboxes in %s", events).hasSize(1);
    assertThat(provisioned(events).get(0).getRepositoriesList()).as("%s", events).hasSize(1);
    ClonedRepository cloned = provisioned(events).get(0).getRepositories(0);
    assertThat(cloned.getError()).isEmpty();
    assertThat(cloned.getMountPath()).isEqualTo("app");
    assertThat(cloned.getCommit()).isEqualTo(first);
    String result = results(events).get(0);
    assertThat(result)
        .contains("# app")
        .contains("http://corral-git/" + cloned.getResourceId())
        .endsWith("agent change");
    assertThat(server.log("app.git", "main")).containsExactly("agent change", "first commit");
    assertThat(server.requests())
        .extracting(GitTestServer.Request::path)
        .anyMatch(path -> path.endsWith("/git-receive-pack"));
    assertThat(server.requests())
        .allSatisfy(request -> assertThat(request.status()).isLessThan(400));
    Sandbox sandbox = currentSandbox(session.getId());
    assertThat(searchSandboxFromOutside(sandbox)).doesNotContain(token);
    assertThat(events.toString() + model.requests()).doesNotContain(token);

    // When the sandbox is lost and the model works on
    sandboxes.releaseSandbox(
        ReleaseSandboxRequest.newBuilder().setSandboxId(sandbox.getId()).build());
    model.enqueue(
        bash("toolu_2", "git -C /workspace/app log --format=%s -1"), Reply.text("Still there."));
    sessions.emitEvent(
        dev.corral.proto.v1.EmitEventRequest.newBuilder()
            .setSessionId(session.getId())
            .setEvent(userMessage("Again."))
            .build());
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(30))
        .until(() -> results(log(sessions, session.getId())).size() == 2);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then a new sandbox cloned the repository again (with the pushed commit), and the log says so
    List<Event> after = log(sessions, session.getId());
    assertThat(provisioned(after)).hasSize(2);
    assertThat(provisioned(after).get(1).getRepositories(0).getCommit())
        .isEqualTo(server.commitOf("app.git", "main"));
    assertThat(results(after).get(1))
        .contains("the session's repositories were cloned again")
        .endsWith("agent change");
  }

  @Test
  void anErrorPageQuotingTheCredentialReachesTheSandboxScrubbedEvenWhereItIsCut() {
    // Given a session with the repository, and a host whose error page quotes the credential so
    // that the gateway's 16 KiB cut falls inside it
    String credential = credential(token);
    String encoded =
        java.util.Base64.getEncoder()
            .encodeToString(
                (GitTestServer.USER + ":" + token)
                    .getBytes(java.nio.charset.StandardCharsets.UTF_8));
    // (quoted twice: once in full near the start, which shortens the page once scrubbed, and
    // once where the cut falls ten characters into it, or ten characters after it)
    int pad =
        16 * 1024
            - ("you sent: Basic " + encoded + " ").length()
            - "you sent: Basic ".length()
            - 10;
    String url =
        "\"$(git -C /workspace/app remote get-url origin)/info/refs?service=git-upload-pack\"";
    model.enqueue(
        bash(
            "toolu_1",
            "curl -sS -A leak/"
                + pad
                + " "
                + url
                + " | cut -c 1-300; echo; curl -sS -A leak/"
                + pad
                + " "
                + url
                + " | tail -c 300; echo; curl -sS -A leak/"
                + (pad + 20)
                + " "
                + url
                + " | tail -c 300"),
        Reply.text("Done."));

    // When the sandbox asks through the gateway
    Session session = session(repository(server.url("app.git"), "", "app", credential), "Go.");
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the page arrives without the credential or any part of it
    String result = results(log(sessions, session.getId())).get(0);
    assertThat(result)
        .startsWith("you sent: Basic [redacted] xxx")
        .doesNotContain(encoded.substring(0, 10))
        .doesNotContain(token);
  }

  @Test
  void anErrorPageTheHostWouldCompressIsCleanedOrNotShown() {
    // Given a host whose error page quotes the credential, compressed when the request allows
    // it (git allows it), or always
    String credential = credential(token);
    String encoded =
        java.util.Base64.getEncoder()
            .encodeToString(
                (GitTestServer.USER + ":" + token)
                    .getBytes(java.nio.charset.StandardCharsets.UTF_8));
    String url =
        "\"$(git -C /workspace/app remote get-url origin)/info/refs?service=git-upload-pack\"";
    model.enqueue(
        bash(
            "toolu_1",
            "curl -sS --compressed -A leak/10 "
                + url
                + "; echo; curl -sS -o /tmp/page -A leakgz/10 "
                + url
                + "; gunzip -c /tmp/page 2>/dev/null || cat /tmp/page"),
        Reply.text("Done."));

    // When the sandbox asks for a compressed answer through the gateway
    Session session = session(repository(server.url("app.git"), "", "app", credential), "Go.");
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the host was asked for no encoding, so its page was cleaned; and a page compressed
    // anyway is not shown
    String result = results(log(sessions, session.getId())).get(0);
    assertThat(result)
        .startsWith("you sent: Basic [redacted] xxxxxxxxxx")
        .contains("could not be cleaned")
        .doesNotContain(encoded.substring(0, 10))
        .doesNotContain(token);
  }

  @Test
  void anotherSessionsSandboxCannotUseTheRepositoryAndAFailedCloneIsReported() {
    // Given session A with the repository and its token, B with the same URL and no credential
    String credential = credential(token);
    model.enqueue(bash("toolu_a", "git -C /workspace/app log --format=%s -1"), Reply.text("A."));
    Session a = session(repository(server.url("app.git"), "", "app", credential), "A.");
    awaitIdle(sessions, a.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    String theirs = provisioned(log(sessions, a.getId())).get(0).getRepositories(0).getResourceId();
    model.reset();

    // When B's sandbox tries A's repository through the gateway, and B's own without a credential
    model.enqueue(
        bash(
            "toolu_b",
            "git ls-remote http://corral-git/"
                + theirs
                + " 2>&1; echo \"[exit $?]\";"
                + " curl -sS -w ' [%{http_code}]' http://corral-git/"
                + theirs
                + "/info/refs?service=git-receive-pack"),
        Reply.text("B."));
    Session b = session(repository(server.url("app.git"), "", "app", ""), "B.");
    awaitIdle(sessions, b.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the gateway knows no such repository for B, and B's own clone failed with the reason
    List<Event> events = log(sessions, b.getId());
    String result = results(events).get(0);
    assertThat(result)
        .contains("this sandbox's session has no repository " + theirs)
        .contains("[404]")
        .doesNotContain("[exit 0]");
    ClonedRepository failed = provisioned(events).get(0).getRepositories(0);
    assertThat(failed.getCommit()).isEmpty();
    assertThat(failed.getError()).contains("the git host refused the request");
    assertThat(result).contains("could not be cloned into /workspace/app");
    assertThat(server.requests())
        .filteredOn(request -> request.authorization() == null)
        .isNotEmpty()
        .allSatisfy(request -> assertThat(request.status()).isEqualTo(401));
  }

  @Test
  void aHostThatDripsItsErrorPageLosesItsConnectionWhenTheSandboxGivesUp() throws Exception {
    // Given a host that refuses the clone at once, then answers the next request with the head of
    // a long error page and one byte of it, and nothing more
    java.util.concurrent.CompletableFuture<Long> hostSawTheEnd =
        new java.util.concurrent.CompletableFuture<>();
    try (java.net.ServerSocket host =
        new java.net.ServerSocket(0, 8, dev.corral.testing.TestNetwork.outwardAddress())) {
      Thread serving =
          new Thread(
              () -> {
                try {
                  for (int request = 0; ; request++) {
                    java.net.Socket socket = host.accept();
                    var in = socket.getInputStream();
                    String head = dev.corral.testing.TestNetwork.readHead(in);
                    if (!head.contains("/drip.git/info/refs")
                        || head.contains("User-Agent: git/")) {
                      socket
                          .getOutputStream()
                          .write(
                              "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                                  .getBytes(StandardCharsets.ISO_8859_1));
                      socket.close();
                      continue;
                    }
                    socket
                        .getOutputStream()
                        .write(
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 100000\r\n\r\nx"
                                .getBytes(StandardCharsets.ISO_8859_1));
                    while (in.read() >= 0) {
                      // the gateway sends nothing more; the read ends when it closes
                    }
                    hostSawTheEnd.complete(System.nanoTime());
                    socket.close();
                  }
                } catch (IOException closed) {
                  // the test is over
                }
              });
      serving.setDaemon(true);
      serving.start();
      String url = "http://" + EgressTestProfile.GIT + ":" + host.getLocalPort() + "/drip.git";
      Session session = sessionWith(repository(url, "", "drip", ""));
      String resource = session.getResources(0).getId();

      // When the sandbox asks for it and gives up after two seconds
      model.enqueue(
          bash(
              "toolu_drip",
              "curl -sS --max-time 2 -A drip http://corral-git/"
                  + resource
                  + "/info/refs?service=git-upload-pack; echo \" [exit $?]\""),
          Reply.text("Gave up."));
      sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), "Go."));
      awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

      // Then the gateway's connection to the host ends with the sandbox's (within seconds, not
      // at the gateway's idle timeout of minutes)
      hostSawTheEnd.get(10, java.util.concurrent.TimeUnit.SECONDS);
      assertThat(results(log(sessions, session.getId())).get(0)).contains("[exit 28]");
    }
  }

  @Test
  void oneTenantsRequestsToAHostThatHoldsThemLeaveRoomForOthers() throws Exception {
    // Given a host that never answers a fetch (it refuses the set-up clone at once)
    List<java.net.Socket> held = new java.util.concurrent.CopyOnWriteArrayList<>();
    try (java.net.ServerSocket host =
        new java.net.ServerSocket(0, 64, dev.corral.testing.TestNetwork.outwardAddress())) {
      Thread serving =
          new Thread(
              () -> {
                try {
                  while (true) {
                    java.net.Socket socket = host.accept();
                    Thread reader =
                        new Thread(
                            () -> {
                              try {
                                String head =
                                    dev.corral.testing.TestNetwork.readHead(
                                        socket.getInputStream());
                                if (!head.endsWith("\r\n\r\n")) {
                                  return;
                                }
                                if (head.contains("User-Agent: git/")) {
                                  socket
                                      .getOutputStream()
                                      .write(
                                          "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                                              .getBytes(StandardCharsets.ISO_8859_1));
                                  socket.close();
                                } else {
                                  held.add(socket); // and never answered
                                }
                              } catch (IOException gone) {
                                // the gateway closed it
                              }
                            });
                    reader.setDaemon(true);
                    reader.start();
                  }
                } catch (IOException closed) {
                  // the test is over
                }
              });
      serving.setDaemon(true);
      serving.start();
      String url = "http://" + EgressTestProfile.GIT + ":" + host.getLocalPort() + "/hold.git";
      Session session = sessionWith(repository(url, "", "hold", ""));
      String resource = session.getResources(0).getId();

      // When the sandbox sends more fetches at once than a tenant may have under way to one host
      int sent = GitGateway.MAX_PER_TENANT_AND_HOST + 4;
      model.enqueue(
          bash(
              "toolu_hold",
              "for i in $(seq "
                  + sent
                  + "); do curl -s -o /dev/null -w '%{http_code}\\n' --max-time 6 -A hold"
                  + " http://corral-git/"
                  + resource
                  + "/info/refs?service=git-upload-pack & done; wait"),
          Reply.text("Done."));
      sessions.emitEvent(dev.corral.testing.Fixtures.emit(session.getId(), "Go."));
      awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

      // Then those past the tenant's share were answered 503 at once, the others held by the
      // host until the sandbox gave up, and nothing stays counted after
      // (the output starts with the note of the failed set-up clone)
      List<String> codes =
          java.util.Arrays.stream(results(log(sessions, session.getId())).get(0).split("\n"))
              .filter(line -> line.matches("\\d{3}"))
              .toList();
      assertThat(codes).hasSize(sent);
      assertThat(codes.stream().filter("503"::equals)).hasSize(4);
      assertThat(held).hasSizeGreaterThanOrEqualTo(GitGateway.MAX_PER_TENANT_AND_HOST);
      org.awaitility.Awaitility.await()
          .atMost(java.time.Duration.ofSeconds(10))
          .until(() -> gateway.underWay() == 0);
    }
  }

  // --- helpers
  // ------------------------------------------------------------------------------------

  private String credential(String secret) {
    return vault
        .createCredential(
            CreateCredentialRequest.newBuilder()
                .setName("git " + UUID.randomUUID())
                .setBasic(
                    BasicAuth.newBuilder()
                        .addHosts("http://" + EgressTestProfile.GIT + ":" + server.port())
                        .setUsername(GitTestServer.USER)
                        .setPassword(secret))
                .build())
        .getCredential()
        .getId();
  }

  private static SessionResource repository(
      String url, String ref, String mount, String credential) {
    return SessionResource.newBuilder()
        .setGitRepository(
            GitRepository.newBuilder()
                .setUrl(url)
                .setRef(ref)
                .setMountPath(mount)
                .setCredentialId(credential))
        .build();
  }

  /** A session of an agent with the default toolset, with {@code resource} and no message yet. */
  private Session sessionWith(SessionResource resource) {
    return sessions
        .createSession(
            CreateSessionRequest.newBuilder()
                .setAgentId(
                    agents
                        .createAgent(
                            CreateAgentRequest.newBuilder()
                                .setName("git test")
                                .setModel("claude-test")
                                .addTools(
                                    Tool.newBuilder().setToolset(AgentToolset.getDefaultInstance()))
                                .build())
                        .getAgent()
                        .getId())
                .addResources(resource)
                .build())
        .getSession();
  }

  private Session session(SessionResource resource, String text) {
    String agent =
        agents
            .createAgent(
                CreateAgentRequest.newBuilder()
                    .setName("git test")
                    .setModel("claude-test")
                    .addTools(Tool.newBuilder().setToolset(AgentToolset.getDefaultInstance()))
                    .build())
            .getAgent()
            .getId();
    return sessions
        .createSession(
            CreateSessionRequest.newBuilder()
                .setAgentId(agent)
                .addResources(resource)
                .addInitialEvents(userMessage(text))
                .build())
        .getSession();
  }

  private static Reply bash(String id, String command) {
    try {
      return Reply.toolUse(id, "bash", JSON.writeValueAsString(Map.of("command", command)));
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  private static List<dev.corral.proto.v1.SandboxProvisioned> provisioned(List<Event> events) {
    return events.stream()
        .filter(Event::hasSandboxProvisioned)
        .map(Event::getSandboxProvisioned)
        .toList();
  }

  private static List<String> results(List<Event> events) {
    return events.stream()
        .filter(Event::hasAgentToolResult)
        .map(event -> event.getAgentToolResult().getContent(0).getText().getText())
        .toList();
  }

  private Sandbox currentSandbox(String sessionId) {
    return sandboxes
        .listSandboxes(ListSandboxesRequest.newBuilder().setSessionId(sessionId).build())
        .getSandboxesList()
        .stream()
        .filter(sandbox -> sandbox.getState() == SandboxState.SANDBOX_STATE_READY)
        .findFirst()
        .orElseThrow();
  }

  /**
   * Everything of the sandbox's that the host can read, as root: every file under its /workspace,
   * /tmp and /run, and the environment and command line of each of its processes (those in a mount
   * namespace other than the test's, so the host's own /tmp is not read). Fails unless it read the
   * clone's files, so that an empty search cannot pass.
   */
  private static String searchSandboxFromOutside(Sandbox sandbox) throws IOException {
    StringBuilder seen = new StringBuilder();
    List<ProcessHandle> processes =
        ProcessHandle.current().descendants().filter(ProcessHandle::isAlive).toList();
    List<Path> roots = new ArrayList<>();
    Path ownMounts = Files.readSymbolicLink(Path.of("/proc/self/ns/mnt"));
    for (ProcessHandle process : processes) {
      Path proc = Path.of("/proc", Long.toString(process.pid()));
      try {
        if (Files.readSymbolicLink(proc.resolve("ns/mnt")).equals(ownMounts)) {
          continue; // not a sandbox's process (PostgreSQL, a test server): the host's own files
        }
      } catch (IOException gone) {
        continue;
      }
      for (String part : List.of("environ", "cmdline")) {
        try {
          seen.append(
              new String(Files.readAllBytes(proc.resolve(part)), StandardCharsets.ISO_8859_1));
        } catch (IOException gone) {
          // the process ended meanwhile
        }
      }
      roots.add(proc.resolve("root"));
    }
    int files = 0;
    for (Path root : roots) {
      for (String top : List.of("workspace", "tmp", "run")) {
        Path directory = root.resolve(top);
        if (!Files.isDirectory(directory)) {
          continue;
        }
        try (Stream<Path> walk = Files.walk(directory)) {
          for (Path file : walk.filter(Files::isRegularFile).toList()) {
            seen.append(new String(Files.readAllBytes(file), StandardCharsets.ISO_8859_1));
            files++;
          }
        } catch (IOException | java.io.UncheckedIOException unreadable) {
          // another sandbox's process that ended
        }
      }
    }
    assertThat(seen.toString()).as("the search read the clone").contains("# app");
    assertThat(files).isGreaterThan(5);
    return seen.toString();
  }
}
