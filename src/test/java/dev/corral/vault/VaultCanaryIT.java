package dev.corral.vault;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateCredentialRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.McpServer;
import dev.corral.proto.v1.McpToolset;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.proto.v1.StaticHeaderAuth;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.VaultServiceGrpc;
import dev.corral.testing.DebianPostgres;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.McpTestServer;
import dev.corral.testing.ServerProcess;
import dev.corral.testing.SessionLogs;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A canary credential, used by two packaged servers on Debian's PostgreSQL: in successful MCP
 * calls, in a call whose server echoes it, in a failing call, and in a call whose replica is killed
 * with -9 in the middle. Then every event, every line the servers logged, every request the model
 * got, the database's files and a pg_dump, and what code in the session's sandbox can see (its
 * environment, every process's environment, its files) are searched for it. None may hold it.
 */
class VaultCanaryIT {

  @TempDir Path home;

  @Test
  void theCanaryIsNowhereButInTheRequestsToItsServer() throws Exception {
    String canary = "vaultcanary-" + UUID.randomUUID();
    try (DebianPostgres postgres = DebianPostgres.start();
        FakeAnthropic model = FakeAnthropic.start();
        McpTestServer mcp = McpTestServer.start()) {
      mcp.requireAuthorization("Bearer " + canary);
      Map<String, String> environment = environment(postgres, model);
      try (ServerProcess first = ServerProcess.start(with(environment, "a"));
          ServerProcess second = ServerProcess.start(with(environment, "b"))) {
        // Given the credential and an agent with the MCP server and the built-in tools
        String credential =
            VaultServiceGrpc.newBlockingStub(first.channel())
                .createCredential(
                    CreateCredentialRequest.newBuilder()
                        .setName("canary")
                        .setStaticHeader(
                            StaticHeaderAuth.newBuilder()
                                .setMcpServerUrl(mcp.url())
                                .setValue("Bearer " + canary))
                        .build())
                .getCredential()
                .getId();
        String agent = agent(first, mcp.url(), credential);

        // When a session calls the server (succeeding, echoed, failing, refused with the canary in
        // its JSON-RPC error) and probes its sandbox
        String used = "used-" + UUID.randomUUID();
        model.enqueue(
            Reply.toolUse("toolu_1", "mcp__svc__echo", "{\"text\":\"hello\"}"),
            Reply.toolUse("toolu_2", "mcp__svc__leak", "{}"),
            Reply.toolUse("toolu_3", "mcp__svc__fail", "{}"),
            Reply.toolUse("toolu_3r", "mcp__svc__refuse", "{}"),
            Reply.toolUse("toolu_4", "bash", bash(probes())),
            Reply.text("All done."));
        Session session = start(first, agent, used);
        awaitEndTurn(first, session.getId());

        // And another session's replica is killed while its call hangs at the server
        String crashed = "crashed-" + UUID.randomUUID();
        model.enqueue(Reply.toolUse("toolu_5", "mcp__svc__hang", "{}"));
        model.fallback(request -> Reply.text("Picked up after the crash."));
        Session hanging = start(first, agent, crashed);
        await()
            .atMost(Duration.ofSeconds(30))
            .until(() -> mcp.calls().stream().anyMatch(call -> call.tool().equals("hang")));
        String holder =
            SessionLogs.get(SessionServiceGrpc.newBlockingStub(first.channel()), hanging.getId())
                .getLease()
                .getHolder();
        ServerProcess victim = holder.endsWith("-" + first.pid()) ? first : second;
        ServerProcess survivor = victim == first ? second : first;
        String victimLog = victim.log();
        victim.kill();
        mcp.release();
        awaitEndTurn(survivor, hanging.getId());

        // Then the calls really were made with the canary
        assertThat(mcp.calls())
            .extracting(McpTestServer.ToolCall::tool)
            .contains("echo", "leak", "fail", "refuse", "hang");
        assertThat(mcp.requests())
            .anyMatch(request -> ("Bearer " + canary).equals(request.authorization()));
        List<Event> events = new ArrayList<>();
        events.addAll(
            SessionLogs.log(
                SessionServiceGrpc.newBlockingStub(survivor.channel()), session.getId()));
        events.addAll(
            SessionLogs.log(
                SessionServiceGrpc.newBlockingStub(survivor.channel()), hanging.getId()));
        Event unknown =
            events.stream().filter(Event::hasAgentMcpToolResult).reduce((a, b) -> b).orElseThrow();
        assertThat(unknown.getAgentMcpToolResult().getContent(0).getText().getText())
            .contains("unknown");
        String probed =
            events.stream()
                .filter(Event::hasAgentToolResult)
                .map(event -> event.getAgentToolResult().getContent(0).getText().getText())
                .reduce("", String::concat);
        assertThat(probed).contains("PATH=").contains("/workspace");

        // And nothing else holds it
        byte[] needle = canary.getBytes(StandardCharsets.UTF_8);
        assertThat(events.toString()).doesNotContain(canary);
        for (Event event : events) {
          assertThat(indexOf(event.toByteArray(), needle)).as(event.getType()).isNegative();
        }
        assertThat(victimLog).doesNotContain(canary);
        assertThat(survivor.log()).doesNotContain(canary);
        assertThat(model.requests().toString()).doesNotContain(canary);
        for (FakeAnthropic.Received request : model.requests()) {
          assertThat(request.body().toString()).doesNotContain(canary);
        }
        assertThat(indexOf(postgres.dump(), needle)).as("pg_dump").isNegative();
        assertThat(VaultTest.filesHolding(postgres.checkpointedDataDirectory(), needle))
            .as("files of the database")
            .isEmpty();
      }
    }
  }

  private static List<String> probes() {
    return List.of(
        "env",
        "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'",
        "ps e -A -ww",
        "pwd; ls -la /workspace /tmp",
        "grep -r vaultcanary / --exclude-dir=proc --exclude-dir=usr --exclude-dir=sys -s | head -n 5");
  }

  private static String bash(List<String> commands) {
    String command = String.join("; echo ---; ", commands);
    return "{\"command\":\"" + command.replace("\\", "\\\\").replace("\"", "\\\"") + "\"}";
  }

  private static String agent(ServerProcess server, String url, String credential) {
    return AgentServiceGrpc.newBlockingStub(server.channel())
        .createAgent(
            CreateAgentRequest.newBuilder()
                .setName("canary")
                .setModel("claude-test")
                .addTools(Tool.newBuilder().setToolset(AgentToolset.getDefaultInstance()))
                .addTools(
                    Tool.newBuilder()
                        .setMcpToolset(McpToolset.newBuilder().setMcpServerName("svc")))
                .addMcpServers(
                    McpServer.newBuilder().setName("svc").setUrl(url).setCredentialId(credential))
                .build())
        .getAgent()
        .getId();
  }

  private static Session start(ServerProcess server, String agent, String text) {
    return SessionServiceGrpc.newBlockingStub(server.channel())
        .createSession(
            CreateSessionRequest.newBuilder()
                .setAgentId(agent)
                .addInitialEvents(Fixtures.userMessage(text))
                .build())
        .getSession();
  }

  private static void awaitEndTurn(ServerProcess server, String sessionId) {
    SessionServiceGrpc.SessionServiceBlockingStub sessions =
        SessionServiceGrpc.newBlockingStub(server.channel());
    await()
        .atMost(Duration.ofSeconds(60))
        .until(
            () -> {
              Session now = SessionLogs.get(sessions, sessionId);
              return now.getStatus() == SessionStatus.SESSION_STATUS_IDLE
                  && now.getStopReason().getType() == StopReasonType.STOP_REASON_TYPE_END_TURN;
            });
  }

  private Map<String, String> environment(DebianPostgres postgres, FakeAnthropic model) {
    byte[] key = new byte[32];
    new SecureRandom().nextBytes(key);
    Map<String, String> environment = new HashMap<>(postgres.environment());
    environment.put("ANTHROPIC_BASE_URL", model.baseUrl());
    environment.put("ANTHROPIC_API_KEY", FakeAnthropic.API_KEY);
    environment.put("CORRAL_VAULT_KEYS", "canary=" + Base64.getEncoder().encodeToString(key));
    environment.put("CORRAL_MCP_CALL_TIMEOUT", "120s");
    // the MCP server and its token endpoint listen on loopback
    environment.put("CORRAL_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8");
    return environment;
  }

  private Map<String, String> with(Map<String, String> environment, String name) throws Exception {
    Map<String, String> own = new HashMap<>(environment);
    own.put("CORRAL_HOME", Files.createDirectories(home.resolve(name)).toString());
    return own;
  }

  private static int indexOf(byte[] haystack, byte[] needle) {
    outer:
    for (int i = 0; i + needle.length <= haystack.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (haystack[i + j] != needle[j]) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }
}
