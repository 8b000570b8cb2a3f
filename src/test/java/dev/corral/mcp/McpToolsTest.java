package dev.corral.mcp;

import static dev.corral.testing.Fixtures.userMessage;
import static dev.corral.testing.SessionLogs.awaitIdle;
import static dev.corral.testing.SessionLogs.log;
import static dev.corral.testing.SessionLogs.types;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ConfirmationResult;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateCredentialRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.EvaluatedPermission;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.McpServer;
import dev.corral.proto.v1.McpToolset;
import dev.corral.proto.v1.OAuth2Auth;
import dev.corral.proto.v1.PermissionPolicy;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StaticHeaderAuth;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.ToolConfig;
import dev.corral.proto.v1.UserToolConfirmation;
import dev.corral.proto.v1.VaultServiceGrpc;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.InjectFakeAnthropic;
import dev.corral.testing.McpTestServer;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.time.Instant;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * An agent's MCP tools, end to end: the harness offers them, corral's server calls the real MCP
 * server (the SDK's) with the vault's credential, and every way the server can fail becomes a tool
 * error and a session.error, never a stuck turn.
 */
@QuarkusTest
@TestProfile(HarnessTestProfile.class)
class McpToolsTest {

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @GrpcClient("corral")
  VaultServiceGrpc.VaultServiceBlockingStub vault;

  @InjectFakeAnthropic FakeAnthropic model;

  @jakarta.inject.Inject dev.corral.vault.Credentials credentials;

  @jakarta.inject.Inject io.vertx.mutiny.sqlclient.Pool pool;

  @jakarta.inject.Inject dev.corral.common.OutboundProxy outboundProxy;

  @jakarta.inject.Inject McpClients mcpClients;

  private McpTestServer server;
  private String marker;

  @BeforeEach
  void start() throws Exception {
    model.reset();
    server = McpTestServer.start();
    marker = "m-" + UUID.randomUUID();
  }

  @AfterEach
  void stop() throws Exception {
    server.close();
  }

  @Test
  void theModelCallsAnMcpToolThatCorralsServerRunsWithTheVaultsCredential() {
    // Given an agent whose MCP server needs a bearer token from the vault
    String token = "tok-" + UUID.randomUUID();
    server.requireAuthorization("Bearer " + token);
    String credential = staticCredential(server.url(), "Bearer " + token);
    model.enqueue(
        Reply.toolUse("toolu_1", "mcp__github__echo", "{\"text\":\"hi\"}"),
        Reply.text("The server said hi."));

    // When a turn runs
    long connectionsBefore = outboundProxy.connections();
    Session session = start(agent(credential, ToolConfig.getDefaultInstance()), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the call is in the log as MCP events, made with the token, answered, seen by the model
    // (through the outbound proxy, which connects only to the address it checked)
    assertThat(outboundProxy.connections()).isGreaterThan(connectionsBefore);
    List<Event> events = log(sessions, session.getId());
    assertThat(types(events)).contains("agent.mcp_tool_use", "agent.mcp_tool_result");
    Event use = only(events, "agent.mcp_tool_use");
    assertThat(use.getAgentMcpToolUse().getMcpServerName()).isEqualTo("github");
    assertThat(use.getAgentMcpToolUse().getName()).isEqualTo("echo");
    assertThat(use.getAgentMcpToolUse().getReadOnly()).isTrue();
    assertThat(use.getAgentMcpToolUse().getEvaluatedPermission())
        .isEqualTo(EvaluatedPermission.EVALUATED_PERMISSION_ALLOW);
    Event result = only(events, "agent.mcp_tool_result");
    assertThat(result.getAgentMcpToolResult().getMcpToolUseId()).isEqualTo(use.getId());
    assertThat(result.getAgentMcpToolResult().getIsError()).isFalse();
    assertThat(result.getAgentMcpToolResult().getContent(0).getText().getText())
        .isEqualTo("echo: hi");
    assertThat(server.calls()).extracting(McpTestServer.ToolCall::tool).containsExactly("echo");
    assertThat(server.requests())
        .filteredOn(request -> request.method().equals("POST"))
        .allSatisfy(request -> assertThat(request.authorization()).isEqualTo("Bearer " + token));
    List<FakeAnthropic.Received> requests = model.requestsMentioning(marker);
    JsonNode tools = requests.get(0).body().path("tools");
    assertThat(tools.findValuesAsText("name"))
        .contains("mcp__github__echo", "mcp__github__create_issue", "mcp__github__leak");
    JsonNode second = requests.get(1).body().path("messages");
    assertThat(second.toString()).contains("echo: hi").contains("mcp__github__echo");
    assertThat(allText(events) + model.requests()).doesNotContain(token);
  }

  @Test
  void aServerWhoseNameNoToolNameCanHoldReachesTheModelUnderANameTheApiTakes() {
    // Given an agent whose MCP server's name has spaces, punctuation and a non-ASCII letter, and is
    // longer than a tool name may be (the Managed Agents API takes 1 to 255 characters)
    String serverName = "Ünïcode docs (work) " + "x".repeat(60);
    String token = "tok-" + UUID.randomUUID();
    server.requireAuthorization("Bearer " + token);
    String credential = staticCredential(server.url(), "Bearer " + token);
    String modelName = dev.corral.agent.AgentRules.mcpModelName(serverName, "echo");
    model.enqueue(
        Reply.toolUse("toolu_1", modelName, "{\"text\":\"hi\"}"), Reply.text("It said hi."));

    // When a turn runs
    Session session = start(agent(serverName, credential, ToolConfig.getDefaultInstance()), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the model was offered the server's tools under names the Messages API takes (the fake
    // refuses others), and its call reached the server and is logged under the server's own name
    JsonNode tools = model.requestsMentioning(marker).get(0).body().path("tools");
    assertThat(tools.findValuesAsText("name"))
        .contains(modelName)
        .filteredOn(name -> name.startsWith("mcp"))
        .hasSizeGreaterThan(1)
        .allMatch(name -> name.matches("[A-Za-z0-9_-]{1,64}"));
    Event use = only(log(sessions, session.getId()), "agent.mcp_tool_use");
    assertThat(use.getAgentMcpToolUse().getMcpServerName()).isEqualTo(serverName);
    assertThat(use.getAgentMcpToolUse().getName()).isEqualTo("echo");
    assertThat(server.calls()).extracting(McpTestServer.ToolCall::tool).containsExactly("echo");
    Event result = only(log(sessions, session.getId()), "agent.mcp_tool_result");
    assertThat(result.getAgentMcpToolResult().getContent(0).getText().getText())
        .isEqualTo("echo: hi");
  }

  @Test
  void oneTenantsMcpRequestsUnderWayLeaveRoomForOtherTenants() {
    // Given one tenant with as many MCP requests under way as it may have on this replica
    McpClients.Key hog = new McpClients.Key("hog", server.url(), "");
    List<reactor.core.Disposable> held = new java.util.ArrayList<>();
    for (int i = 0; i < McpClients.MAX_IN_FLIGHT_PER_TENANT; i++) {
      held.add(mcpClients.using(hog, client -> reactor.core.publisher.Mono.never()).subscribe());
    }
    assertThat(mcpClients.inFlight()).isEqualTo(McpClients.MAX_IN_FLIGHT_PER_TENANT);

    // Then its next one is refused at once, while another tenant's goes through
    assertThatThrownBy(
            () ->
                mcpClients
                    .using(hog, client -> reactor.core.publisher.Mono.just("late"))
                    .block(java.time.Duration.ofSeconds(5)))
        .isInstanceOf(McpClients.TenantBusyException.class)
        .hasMessageContaining("under way on this replica");
    assertThat(
            mcpClients
                .using(
                    new McpClients.Key("other", server.url(), ""),
                    client -> reactor.core.publisher.Mono.just("served"))
                .block(java.time.Duration.ofSeconds(5)))
        .isEqualTo("served");

    // And once its requests end, they are no longer counted
    held.forEach(reactor.core.Disposable::dispose);
    assertThat(mcpClients.inFlight()).isZero();
  }

  @Test
  void aListingThatNeverEndsIsReadForAFewPagesOnly() {
    // Given a server whose every page of tools names a next page
    server.mode(McpTestServer.Mode.ENDLESS_PAGES);
    model.enqueue(Reply.text("Listed."));

    // When a turn lists its tools
    Session session = start(agent("", ToolConfig.getDefaultInstance()), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then corral read a bounded number of pages, and offered their tools
    assertThat(server.pagesServed()).isEqualTo(dev.corral.mcp.McpServers.MAX_PAGES);
    JsonNode tools = model.requestsMentioning(marker).get(0).body().path("tools");
    assertThat(tools.findValuesAsText("name"))
        .contains("mcp__github__page1", "mcp__github__page" + dev.corral.mcp.McpServers.MAX_PAGES)
        .doesNotContain("mcp__github__page" + (dev.corral.mcp.McpServers.MAX_PAGES + 1));
  }

  @Test
  void anAlwaysAskMcpToolWaitsForTheClientAndADenialNeverReachesTheServer() {
    // Given create_issue needs a confirmation
    String agent =
        agent(
            "",
            ToolConfig.newBuilder()
                .setName("create_issue")
                .setPermissionPolicy(PermissionPolicy.PERMISSION_POLICY_ALWAYS_ASK)
                .build());
    model.enqueue(
        Reply.toolUse("toolu_1", "mcp__github__create_issue", "{\"title\":\"one\"}"),
        Reply.text("Filed it."),
        Reply.toolUse("toolu_2", "mcp__github__create_issue", "{\"title\":\"two\"}"),
        Reply.text("Not filed."));

    // When the first call is allowed
    Session session = start(agent, marker);
    Session waiting =
        awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_REQUIRES_ACTION);
    String first = waiting.getStopReason().getEventIds(0);
    assertThat(server.calls()).isEmpty();
    sessions.emitEvent(
        confirmation(session.getId(), first, ConfirmationResult.CONFIRMATION_RESULT_ALLOW));
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // And the second is denied
    sessions.emitEvent(
        EmitEventRequest.newBuilder()
            .setSessionId(session.getId())
            .setEvent(userMessage("another " + marker))
            .build());
    Session again =
        awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_REQUIRES_ACTION);
    sessions.emitEvent(
        confirmation(
            session.getId(),
            again.getStopReason().getEventIds(0),
            ConfirmationResult.CONFIRMATION_RESULT_DENY));
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then only the allowed call reached the server
    assertThat(server.calls())
        .extracting(McpTestServer.ToolCall::arguments)
        .containsExactly(java.util.Map.of("title", "one"));
    List<Event> results =
        log(sessions, session.getId()).stream().filter(Event::hasAgentMcpToolResult).toList();
    assertThat(results).hasSize(2);
    assertThat(results.get(0).getAgentMcpToolResult().getContent(0).getText().getText())
        .startsWith("created issue #1");
    assertThat(results.get(1).getAgentMcpToolResult().getIsError()).isTrue();
  }

  @Test
  void aServerThatIsDownRefusesTheCredentialOrAnswersNonsenseIsAToolErrorAndASessionError()
      throws Exception {
    record Case(String name, Runnable breakIt, String errorType, String says) {}
    List<Case> cases =
        List.of(
            new Case(
                "401",
                () -> server.mode(McpTestServer.Mode.UNAUTHORIZED),
                McpFailure.AUTHENTICATION,
                "HTTP 401"),
            new Case(
                "403",
                () -> server.mode(McpTestServer.Mode.FORBIDDEN),
                McpFailure.AUTHENTICATION,
                "HTTP 403"),
            new Case(
                "malformed",
                () -> server.mode(McpTestServer.Mode.MALFORMED),
                McpFailure.CONNECTION,
                "MCP server github"),
            new Case("slow", () -> server.slow(5_000), McpFailure.CONNECTION, "in time"),
            new Case("down", this::down, McpFailure.CONNECTION, "MCP server github"));
    for (Case broken : cases) {
      // Given a session whose MCP server breaks after listing its tools
      server.close();
      server = McpTestServer.start();
      String agent = agent("", ToolConfig.getDefaultInstance());
      String text = marker + "-" + broken.name();
      model.enqueue(
          new Reply[] {
            (response, request) -> {
              broken.breakIt().run();
              Reply.toolUse("toolu_1", "mcp__github__echo", "{\"text\":\"hi\"}")
                  .send(response, request);
            },
            Reply.text("Handled the failure.")
          });

      // When the turn runs
      Session session = start(agent, text);
      awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

      // Then the call has an error result, the log a session.error, and the turn ended
      List<Event> events = log(sessions, session.getId());
      Event result = only(events, "agent.mcp_tool_result");
      assertThat(result.getAgentMcpToolResult().getIsError()).as(broken.name()).isTrue();
      assertThat(result.getAgentMcpToolResult().getContent(0).getText().getText())
          .as(broken.name())
          .contains(broken.says());
      Event error =
          events.stream().filter(Event::hasSessionError).reduce((a, b) -> b).orElseThrow();
      assertThat(error.getSessionError().getErrorType())
          .as(broken.name())
          .isEqualTo(broken.errorType());
      assertThat(error.getSessionError().getMcpServerName()).isEqualTo("github");
      server.slow(0);
      server.mode(McpTestServer.Mode.NORMAL);
    }
  }

  @Test
  void anOAuthTokenRefusedWithA401IsRefreshedOnceAndTheCallRetried() {
    // Given a credential whose access token the server no longer accepts
    server.requireAuthorization("Bearer fresh-token");
    server.issueOnRefresh("refresh-1", "fresh-token");
    String credential =
        vault
            .createCredential(
                CreateCredentialRequest.newBuilder()
                    .setName("oauth")
                    .setOauth2(
                        OAuth2Auth.newBuilder()
                            .setMcpServerUrl(server.url())
                            .setAccessToken("stale-token")
                            .setRefreshToken("refresh-1")
                            .setTokenUrl(server.tokenUrl())
                            .setClientId("corral"))
                    .build())
            .getCredential()
            .getId();
    model.enqueue(
        Reply.toolUse("toolu_1", "mcp__github__echo", "{\"text\":\"after refresh\"}"),
        Reply.text("Done."));

    // When a turn calls the server
    Session session = start(agent(credential, ToolConfig.getDefaultInstance()), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then the token was refreshed once and the call went through with the new one
    assertThat(server.tokenRequests()).hasSize(1);
    assertThat(server.tokenRequests().get(0)).contains("grant_type=refresh_token");
    Event result = only(log(sessions, session.getId()), "agent.mcp_tool_result");
    assertThat(result.getAgentMcpToolResult().getIsError()).isFalse();
    assertThat(server.calls()).extracting(McpTestServer.ToolCall::tool).containsExactly("echo");
    var stored =
        vault
            .getCredential(
                dev.corral.proto.v1.GetCredentialRequest.newBuilder()
                    .setCredentialId(credential)
                    .build())
            .getCredential();
    assertThat(stored.getOauth2().hasRefreshedAt()).isTrue();
    assertThat(stored.getOauth2().hasExpiresAt()).isTrue();
  }

  @Test
  void anOAuthTokenAboutToExpireIsRefreshedBeforeTheCall() {
    server.requireAuthorization("Bearer next-token");
    server.issueOnRefresh("refresh-2", "next-token");
    String credential = expiringCredential("expiring", "expiring-token", "refresh-2");
    model.enqueue(
        Reply.toolUse("toolu_1", "mcp__github__echo", "{\"text\":\"x\"}"), Reply.text("Done."));
    Session session = start(agent(credential, ToolConfig.getDefaultInstance()), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    assertThat(server.tokenRequests()).hasSize(1);
    assertThat(server.requests())
        .filteredOn(request -> request.method().equals("POST"))
        .allSatisfy(request -> assertThat(request.authorization()).isEqualTo("Bearer next-token"));
  }

  @Test
  void callsThatFindATokenAboutToExpireTogetherRefreshItOnce() throws Exception {
    // Given a credential about to expire, and a token endpoint that holds its answers
    server.issueOnRefresh("refresh-3", "renewed-token");
    server.holdTokens();
    String credential = expiringCredential("expiring together", "old-token", "refresh-3");

    // When one call is refreshing it under the credential's lock, a second one, which read it as
    // about to expire too, asks on this replica, and a refusal of the old token (as another
    // replica would see it) waits for that lock
    var one =
        credentials
            .authFor(dev.corral.common.Tenant.DEFAULT, credential, server.url())
            .subscribeAsCompletionStage();
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(10))
        .until(() -> server.tokenRequests().size() == 1);
    var two =
        credentials
            .authFor(dev.corral.common.Tenant.DEFAULT, credential, server.url())
            .subscribeAsCompletionStage();
    var three =
        credentials
            .afterUnauthorized(
                dev.corral.common.Tenant.DEFAULT,
                new dev.corral.vault.HttpAuth(
                    credential, "Authorization", "Bearer old-token", List.of("old-token")))
            .subscribeAsCompletionStage();
    org.awaitility.Awaitility.await()
        .atMost(java.time.Duration.ofSeconds(10))
        .until(() -> dev.corral.testing.SessionRows.statementsWaitingForALock(pool) > 0);
    server.releaseTokens();

    // Then one refreshed it, the second shared that refresh, and the third, finding it fresh under
    // the lock, took the new token
    for (var call : List.of(one, two, three)) {
      assertThat(call.get(20, java.util.concurrent.TimeUnit.SECONDS).headerValue())
          .isEqualTo("Bearer renewed-token");
    }
    assertThat(server.tokenRequests()).hasSize(1);
  }

  @Test
  void aTokenEndpointCannotSmuggleHeadersInATokenOrBreakTheRefreshWithItsExpiry() {
    // Given a token endpoint that answers with a token holding a line break
    server.issueOnRefresh("refresh-crlf", "evil\r\nX-Injected: 1");
    String crlf = expiringCredential("crlf", "old-token", "refresh-crlf");

    // Then the refresh is refused as unusable, and nothing is sent with it
    assertThatThrownBy(
            () ->
                credentials
                    .authFor(dev.corral.common.Tenant.DEFAULT, crlf, server.url())
                    .await()
                    .atMost(java.time.Duration.ofSeconds(20)))
        .isInstanceOf(dev.corral.vault.CredentialUnusableException.class)
        .hasMessageContaining("usable access_token");

    // And a token said to expire in 2^63 - 1 seconds is taken, its expiry kept within bounds
    server.issueOnRefresh("refresh-long", "long-token", Long.MAX_VALUE);
    String forever = expiringCredential("forever", "old-token", "refresh-long");
    assertThat(
            credentials
                .authFor(dev.corral.common.Tenant.DEFAULT, forever, server.url())
                .await()
                .atMost(java.time.Duration.ofSeconds(20))
                .headerValue())
        .isEqualTo("Bearer long-token");
  }

  @Test
  void aTokenEndpointWhoseAnswerNeverEndsCostsBoundedMemoryAndTime() throws Exception {
    for (McpTestServer.TokenBody body : McpTestServer.TokenBody.values()) {
      // Given a credential about to expire, and a token endpoint whose 200 never ends
      server.issueOnRefresh("refresh-" + body, "never-sent");
      server.answerTokensWith(body);
      try {
        String credential = expiringCredential("endless " + body, "old-token", "refresh-" + body);
        int abandoned = server.tokenAnswersAbandoned();

        // When a call needs it
        long start = System.nanoTime();
        var auth =
            credentials
                .authFor(dev.corral.common.Tenant.DEFAULT, credential, server.url())
                .subscribeAsCompletionStage();

        // Then the refresh fails within its time limit, saying why
        assertThatThrownBy(() -> auth.get(30, java.util.concurrent.TimeUnit.SECONDS))
            .as(body.toString())
            .hasMessageContaining("token endpoint")
            .hasMessageContaining(
                body == McpTestServer.TokenBody.ENDLESS
                    ? "more than 65536 bytes"
                    : "timed out after 10 s");
        assertThat(java.time.Duration.ofNanos(System.nanoTime() - start))
            .isLessThan(java.time.Duration.ofSeconds(15));
        // and the connection is closed, not left open for the endpoint to go on dripping
        org.awaitility.Awaitility.await()
            .atMost(java.time.Duration.ofSeconds(5))
            .until(() -> server.tokenAnswersAbandoned() > abandoned);
      } finally {
        server.answerTokensWith(null);
      }
    }
  }

  @Test
  void aServerThatEchoesTheCredentialGetsItsAnswerScrubbed() {
    String token = "secret-" + UUID.randomUUID();
    String credential = staticCredential(server.url(), "Bearer " + token);
    model.enqueue(Reply.toolUse("toolu_1", "mcp__github__leak", "{}"), Reply.text("Hm."));
    Session session = start(agent(credential, ToolConfig.getDefaultInstance()), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    Event result = only(log(sessions, session.getId()), "agent.mcp_tool_result");
    assertThat(result.getAgentMcpToolResult().getContent(0).getText().getText())
        .contains("[redacted]")
        .doesNotContain(token);
    assertThat(model.requests().toString()).doesNotContain(token);
  }

  @Test
  void aServerThatEchoesABearerTokenWithoutItsSchemeGetsItsAnswerScrubbed() {
    String token = "secret-" + UUID.randomUUID();
    String credential = staticCredential(server.url(), "Bearer " + token);
    model.enqueue(
        Reply.toolUse("toolu_1", "mcp__github__leak", "{\"bare\":true}"), Reply.text("Hm."));
    Session session = start(agent(credential, ToolConfig.getDefaultInstance()), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    Event result = only(log(sessions, session.getId()), "agent.mcp_tool_result");
    assertThat(result.getAgentMcpToolResult().getContent(0).getText().getText())
        .isEqualTo("you sent: [redacted]");
    assertThat(model.requests().toString()).doesNotContain(token);
  }

  @Test
  void anEchoedCredentialIsScrubbedWhereTheAnswerIsCutAndWhenItIsEscapedInJson() {
    // Given a token with characters JSON escapes, and answers that echo it across the cut at
    // 100,000 characters and inside structured content
    String token = "s3\"cr\\t-" + UUID.randomUUID();
    String credential = staticCredential(server.url(), "Bearer " + token);
    int pad = 100_000 - "you sent: Bearer ".length() - 12;
    model.enqueue(
        Reply.toolUse("toolu_1", "mcp__github__leak", "{\"pad\":" + pad + "}"),
        Reply.toolUse("toolu_2", "mcp__github__leak", "{\"structured\":true}"),
        Reply.text("Hm."));
    Session session = start(agent(credential, ToolConfig.getDefaultInstance()), marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then neither answer holds the token, escaped or not, or any part of it the cut left
    List<String> answers =
        log(sessions, session.getId()).stream()
            .filter(event -> event.getType().equals("agent.mcp_tool_result"))
            .flatMap(event -> event.getAgentMcpToolResult().getContentList().stream())
            .map(content -> content.getText().getText())
            .toList();
    StringBuilder sent = new StringBuilder();
    model.requests().forEach(request -> sent.append(request.messages().toString()));
    String jsonEscaped = token.replace("\\", "\\\\").replace("\"", "\\\"");
    assertThat(answers).hasSize(2).allSatisfy(text -> assertThat(text).contains("[redacted]"));
    for (String part : List.of(token.substring(0, 12), token.substring(12), jsonEscaped)) {
      assertThat(answers).noneSatisfy(text -> assertThat(text).contains(part));
    }
    // (what the model was sent is JSON: the token's escaped form is how it would read there)
    assertThat(sent.toString()).contains("[redacted]").doesNotContain(jsonEscaped);
  }

  @Test
  void aCredentialBoundToAnotherServerIsNeverSentAnywhereElse() {
    String token = "bound-" + UUID.randomUUID();
    String credential = staticCredential("https://elsewhere.example.com/mcp", "Bearer " + token);
    // An agent naming it is refused when made
    assertThatThrownBy(() -> agent(credential, ToolConfig.getDefaultInstance()))
        .isInstanceOfSatisfying(
            io.grpc.StatusRuntimeException.class,
            refused -> {
              assertThat(refused.getStatus().getCode())
                  .isEqualTo(io.grpc.Status.Code.INVALID_ARGUMENT);
              assertThat(refused.getStatus().getDescription())
                  .contains("mcp_servers[0].credential_id", "is bound to");
            });
    // And an agent that names it all the same (made before corral checked at create) never sends it
    String agent = agent("", ToolConfig.getDefaultInstance());
    try {
      dev.corral.testing.Fixtures.rewriteAgent(
          pool,
          agent,
          named ->
              named.setMcpServers(
                  0, named.getMcpServers(0).toBuilder().setCredentialId(credential)));
    } catch (com.google.protobuf.InvalidProtocolBufferException e) {
      throw new AssertionError(e);
    }
    model.enqueue(
        Reply.toolUse("toolu_1", "mcp__github__echo", "{\"text\":\"x\"}"), Reply.text("Hm."));
    Session session = start(agent, marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    List<Event> events = log(sessions, session.getId());
    assertThat(server.requests())
        .allSatisfy(request -> assertThat(request.authorization()).isNull());
    assertThat(server.calls()).isEmpty();
    assertThat(
            events.stream()
                .filter(Event::hasSessionError)
                .map(e -> e.getSessionError().getErrorType()))
        .contains(McpFailure.AUTHENTICATION);
    assertThat(allText(events)).contains("is bound to https://elsewhere.example.com/mcp");
  }

  @Test
  void aServerThatWasNeverUpIsReportedAndTheTurnGoesOnWithoutItsTools() throws Exception {
    int closed = dev.corral.testing.ServerProcess.freePort();
    String agent =
        agents
            .createAgent(
                CreateAgentRequest.newBuilder()
                    .setName("mcp test")
                    .setModel("claude-test")
                    .addTools(
                        Tool.newBuilder()
                            .setMcpToolset(McpToolset.newBuilder().setMcpServerName("gone")))
                    .addMcpServers(
                        McpServer.newBuilder()
                            .setName("gone")
                            .setUrl("http://127.0.0.1:" + closed + "/mcp"))
                    .build())
            .getAgent()
            .getId();
    model.enqueue(Reply.text("No tools today."));
    Session session = start(agent, marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);
    Event error = only(log(sessions, session.getId()), "session.error");
    assertThat(error.getSessionError().getErrorType()).isEqualTo(McpFailure.CONNECTION);
    assertThat(error.getSessionError().getMessage())
        .contains("could not be reached: connection refused");
    assertThat(model.requestsMentioning(marker).get(0).body().has("tools")).isFalse();
  }

  @Test
  void corralsServerCallsNoMcpServerOrTokenEndpointAtAnAddressItMayNotReach() throws Exception {
    // Given an MCP server at the cloud's metadata address, with a credential bound to it
    String metadata = "http://169.254.169.254/mcp";
    String credential = staticCredential(metadata, "Bearer metadata-" + UUID.randomUUID());
    String agent =
        agents
            .createAgent(
                CreateAgentRequest.newBuilder()
                    .setName("mcp metadata")
                    .setModel("claude-test")
                    .addTools(
                        Tool.newBuilder()
                            .setMcpToolset(McpToolset.newBuilder().setMcpServerName("meta")))
                    .addMcpServers(
                        McpServer.newBuilder()
                            .setName("meta")
                            .setUrl(metadata)
                            .setCredentialId(credential))
                    .build())
            .getAgent()
            .getId();

    // When a session lists its tools
    model.enqueue(Reply.text("No tools."));
    Session session = start(agent, marker);
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // Then it was refused before any connection, saying why
    Event error = only(log(sessions, session.getId()), "session.error");
    assertThat(error.getSessionError().getMessage())
        .contains("169.254.169.254")
        .contains("link-local")
        .contains("corral.outbound.allowed-networks");

    // And an OAuth credential whose token endpoint is on a private network is never refreshed there
    String privateEndpoint =
        expiringCredential(
            "private token endpoint", "old", "refresh-private", "http://10.255.255.1/token");
    long start = System.nanoTime();
    var auth =
        credentials
            .authFor(dev.corral.common.Tenant.DEFAULT, privateEndpoint, server.url())
            .subscribeAsCompletionStage();
    assertThatThrownBy(() -> auth.get(20, java.util.concurrent.TimeUnit.SECONDS))
        .hasMessageContaining("10.255.255.1")
        .hasMessageContaining("private");
    // refused at once, not after a connection attempt to an address that never answers
    assertThat(java.time.Duration.ofNanos(System.nanoTime() - start))
        .isLessThan(java.time.Duration.ofSeconds(3));
  }

  private void down() {
    try {
      server.down();
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  /** An OAuth credential for the test server whose token expires in 10 s. */
  private String expiringCredential(String name, String accessToken, String refreshToken) {
    return expiringCredential(name, accessToken, refreshToken, server.tokenUrl());
  }

  /** The same, refreshed at {@code tokenUrl}. */
  private String expiringCredential(
      String name, String accessToken, String refreshToken, String tokenUrl) {
    return vault
        .createCredential(
            CreateCredentialRequest.newBuilder()
                .setName(name)
                .setOauth2(
                    OAuth2Auth.newBuilder()
                        .setMcpServerUrl(server.url())
                        .setAccessToken(accessToken)
                        .setExpiresAt(
                            com.google.protobuf.Timestamp.newBuilder()
                                .setSeconds(Instant.now().getEpochSecond() + 10))
                        .setRefreshToken(refreshToken)
                        .setTokenUrl(tokenUrl)
                        .setClientId("corral"))
                .build())
        .getCredential()
        .getId();
  }

  private String staticCredential(String url, String value) {
    return vault
        .createCredential(
            CreateCredentialRequest.newBuilder()
                .setName("github")
                .setStaticHeader(StaticHeaderAuth.newBuilder().setMcpServerUrl(url).setValue(value))
                .build())
        .getCredential()
        .getId();
  }

  private String agent(String credentialId, ToolConfig config) {
    return agent("github", credentialId, config);
  }

  private String agent(String serverName, String credentialId, ToolConfig config) {
    McpToolset.Builder toolset = McpToolset.newBuilder().setMcpServerName(serverName);
    if (!config.getName().isEmpty()) {
      toolset.addConfigs(config);
    }
    return agents
        .createAgent(
            CreateAgentRequest.newBuilder()
                .setName("mcp test")
                .setModel("claude-test")
                .addTools(Tool.newBuilder().setMcpToolset(toolset))
                .addMcpServers(
                    McpServer.newBuilder()
                        .setName(serverName)
                        .setUrl(server.url())
                        .setCredentialId(credentialId))
                .build())
        .getAgent()
        .getId();
  }

  private Session start(String agentId, String text) {
    return sessions
        .createSession(
            CreateSessionRequest.newBuilder()
                .setAgentId(agentId)
                .addInitialEvents(userMessage(text))
                .build())
        .getSession();
  }

  private static EmitEventRequest confirmation(
      String sessionId, String toolUseId, ConfirmationResult result) {
    return EmitEventRequest.newBuilder()
        .setSessionId(sessionId)
        .setEvent(
            Event.newBuilder()
                .setUserToolConfirmation(
                    UserToolConfirmation.newBuilder().setToolUseId(toolUseId).setResult(result)))
        .build();
  }

  private static Event only(List<Event> events, String type) {
    List<Event> matching = events.stream().filter(e -> e.getType().equals(type)).toList();
    assertThat(matching).as(type).hasSize(1);
    return matching.get(0);
  }

  private static String allText(List<Event> events) {
    return events.toString();
  }
}
