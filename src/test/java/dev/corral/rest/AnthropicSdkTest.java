package dev.corral.rest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import com.anthropic.client.AnthropicClient;
import com.anthropic.client.okhttp.AnthropicOkHttpClient;
import com.anthropic.core.JsonValue;
import com.anthropic.core.http.StreamResponse;
import com.anthropic.errors.AnthropicServiceException;
import com.anthropic.errors.BadRequestException;
import com.anthropic.errors.NotFoundException;
import com.anthropic.errors.UnauthorizedException;
import com.anthropic.models.beta.agents.AgentCreateParams;
import com.anthropic.models.beta.agents.AgentUpdateParams;
import com.anthropic.models.beta.agents.BetaManagedAgentsAgent;
import com.anthropic.models.beta.agents.BetaManagedAgentsAgentToolset20260401Params;
import com.anthropic.models.beta.agents.BetaManagedAgentsAlwaysAskPolicy;
import com.anthropic.models.beta.agents.BetaManagedAgentsBashToolConfigParams;
import com.anthropic.models.beta.agents.BetaManagedAgentsCustomToolInputSchema;
import com.anthropic.models.beta.agents.BetaManagedAgentsCustomToolParams;
import com.anthropic.models.beta.agents.BetaManagedAgentsModel;
import com.anthropic.models.beta.environments.BetaEnvironment;
import com.anthropic.models.beta.environments.EnvironmentCreateParams;
import com.anthropic.models.beta.sessions.BetaManagedAgentsSession;
import com.anthropic.models.beta.sessions.SessionCreateParams;
import com.anthropic.models.beta.sessions.events.BetaManagedAgentsSessionEvent;
import com.anthropic.models.beta.sessions.events.BetaManagedAgentsStreamSessionEvents;
import com.anthropic.models.beta.sessions.events.BetaManagedAgentsUserCustomToolResultEventParams;
import com.anthropic.models.beta.sessions.events.BetaManagedAgentsUserInterruptEventParams;
import com.anthropic.models.beta.sessions.events.BetaManagedAgentsUserMessageEventParams;
import com.anthropic.models.beta.sessions.events.BetaManagedAgentsUserToolConfirmationEventParams;
import com.anthropic.models.beta.sessions.events.EventListParams;
import com.anthropic.models.beta.sessions.events.EventSendParams;
import dev.corral.proto.v1.GetEventsRequest;
import dev.corral.proto.v1.GetSessionRequest;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.InjectFakeAnthropic;
import dev.corral.testing.TestCredentials;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.function.Predicate;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The official Anthropic Java SDK (com.anthropic:anthropic-java, its managed-agents beta) pointed
 * at corral's base URL, unchanged: whole sessions against the fake model, streamed to the end of
 * the turn, with a custom tool, a confirmation and an interrupt; the log paged; and the same
 * session seen over gRPC.
 */
@QuarkusTest
@TestProfile(HarnessTestProfile.class)
class AnthropicSdkTest {

  @InjectFakeAnthropic FakeAnthropic model;

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub grpc;

  @GrpcClient("corral")
  dev.corral.proto.v1.ApiKeyServiceGrpc.ApiKeyServiceBlockingStub keys;

  private AnthropicClient client;
  private String marker;

  @BeforeEach
  void connect() {
    model.reset();
    marker = "m-" + UUID.randomUUID();
    client = sdk(TestCredentials.ADMIN_KEY);
  }

  @AfterEach
  void close() {
    client.close();
  }

  static AnthropicClient sdk(String key) {
    return AnthropicOkHttpClient.builder()
        .baseUrl("http://localhost:18081")
        .apiKey(key)
        .maxRetries(0)
        .build();
  }

  @Test
  void aTurnStreamsToItsEndAndTheSessionIsTheSameOverGrpc() throws Exception {
    // Given an environment, an agent and a session made with the SDK
    model.enqueue(Reply.text("Hello from corral " + marker));
    BetaEnvironment environment =
        client
            .beta()
            .environments()
            .create(EnvironmentCreateParams.builder().name("sdk " + marker).build());
    BetaManagedAgentsAgent agent = agent(List.of());
    BetaManagedAgentsSession session = session(agent, environment.id());
    assertThat(session.status()).isEqualTo(BetaManagedAgentsSession.Status.IDLE);

    // When the stream is opened, then a message sent
    Stream stream = Stream.open(client, session.id());
    client.beta().sessions().events().send(session.id(), message("Hi " + marker));
    List<BetaManagedAgentsStreamSessionEvents> events = stream.until(AnthropicSdkTest::endOfTurn);

    // Then the stream carried the turn, in order, to its end
    assertThat(types(events))
        .startsWith("user.message", "session.status_running")
        .contains("span.model_request_start", "agent.message", "span.model_request_end")
        .endsWith("session.status_idle");
    String text =
        events.stream()
            .filter(BetaManagedAgentsStreamSessionEvents::isAgentMessage)
            .findFirst()
            .orElseThrow()
            .asAgentMessage()
            .content()
            .get(0)
            .asText()
            .text();
    assertThat(text).isEqualTo("Hello from corral " + marker);
    // And the session is the one gRPC sees, with the same log
    var overGrpc =
        grpc.getSession(GetSessionRequest.newBuilder().setSessionId(session.id()).build())
            .getSession();
    BetaManagedAgentsSession overRest = client.beta().sessions().retrieve(session.id());
    // every field the SDK requires is there (a missing one fails a user's validate())
    environment.validate();
    agent.validate();
    session.validate();
    overRest.validate();
    client.beta().agents().retrieve(agent.id()).validate();
    assertThat(overRest.status()).isEqualTo(BetaManagedAgentsSession.Status.IDLE);
    assertThat(overRest._additionalProperties().get("last_seq").convert(Long.class))
        .isEqualTo(overGrpc.getLastSeq());
    assertThat(overRest.usage().inputTokens()).contains(overGrpc.getUsage().getInputTokens());
    assertThat(overRest.usage().cacheCreation().orElseThrow().ephemeral5mInputTokens())
        .contains(overGrpc.getUsage().getCacheCreationInputTokens());
    var grpcIds =
        grpc
            .getEvents(GetEventsRequest.newBuilder().setSessionId(session.id()).build())
            .getEventsList()
            .stream()
            .map(dev.corral.proto.v1.Event::getId)
            .toList();
    List<String> restIds = new ArrayList<>();
    for (BetaManagedAgentsSessionEvent event :
        client.beta().sessions().events().list(session.id()).autoPager()) {
      restIds.add(id(event));
    }
    assertThat(restIds).isEqualTo(grpcIds);
    assertThat(String.valueOf(agent.model().id())).isEqualTo("claude-test");
    stream.close();
  }

  @Test
  void aCustomToolRoundTripAndAConfirmedBashCall() throws Exception {
    // Given an agent with a custom tool and bash that always asks
    model.enqueue(
        Reply.toolUse("toolu_1", "get_weather", "{\"city\":\"Oslo\"}"),
        Reply.toolUse("toolu_2", "bash", "{\"command\":\"echo confirmed-" + marker + "\"}"),
        Reply.text("Done " + marker));
    BetaManagedAgentsAgent agent =
        agent(
            List.of(
                AgentCreateParams.Tool.ofCustom(
                    BetaManagedAgentsCustomToolParams.builder()
                        .name("get_weather")
                        .description("The weather in a city")
                        .inputSchema(
                            BetaManagedAgentsCustomToolInputSchema.builder()
                                .properties(
                                    BetaManagedAgentsCustomToolInputSchema.Properties.builder()
                                        .putAdditionalProperty(
                                            "city", JsonValue.from(Map.of("type", "string")))
                                        .build())
                                .addRequired("city")
                                .build())
                        .build()),
                AgentCreateParams.Tool.ofAgentToolset20260401(
                    BetaManagedAgentsAgentToolset20260401Params.builder()
                        .addConfig(
                            BetaManagedAgentsBashToolConfigParams.builder()
                                .type(BetaManagedAgentsBashToolConfigParams.Type.BASH)
                                .enabled(true)
                                .permissionPolicy(
                                    BetaManagedAgentsAlwaysAskPolicy.builder().build())
                                .build())
                        .build())));
    BetaManagedAgentsSession session = session(agent, null);
    Stream stream = Stream.open(client, session.id());

    // When the model calls the custom tool, the client answers it
    client.beta().sessions().events().send(session.id(), message("Weather? " + marker));
    var customUse =
        last(stream.until(event -> event.isAgentCustomToolUse())).asAgentCustomToolUse();
    assertThat(customUse.name()).isEqualTo("get_weather");
    var waiting = last(stream.until(event -> event.isSessionStatusIdle())).asSessionStatusIdle();
    assertThat(waiting.stopReason().asRequiresAction().eventIds()).containsExactly(customUse.id());
    client
        .beta()
        .sessions()
        .events()
        .send(
            session.id(),
            EventSendParams.builder()
                .addEvent(
                    BetaManagedAgentsUserCustomToolResultEventParams.builder()
                        .customToolUseId(customUse.id())
                        .addTextContent("{\"temperature_c\":14}")
                        .build())
                .build());

    // Then the model asks for bash, which waits for a confirmation
    var idle = last(stream.until(event -> event.isSessionStatusIdle())).asSessionStatusIdle();
    assertThat(idle.stopReason().isRequiresAction()).isTrue();
    String pending = idle.stopReason().asRequiresAction().eventIds().get(0);
    client
        .beta()
        .sessions()
        .events()
        .send(
            session.id(),
            EventSendParams.builder()
                .addEvent(
                    BetaManagedAgentsUserToolConfirmationEventParams.builder()
                        .toolUseId(pending)
                        .result(BetaManagedAgentsUserToolConfirmationEventParams.Result.ALLOW)
                        .build())
                .build());
    List<BetaManagedAgentsStreamSessionEvents> rest = stream.until(AnthropicSdkTest::endOfTurn);

    // And the command ran, and the turn ended with the model's answer
    var result =
        rest.stream()
            .filter(BetaManagedAgentsStreamSessionEvents::isAgentToolResult)
            .findFirst()
            .orElseThrow()
            .asAgentToolResult();
    assertThat(result.toolUseId()).isEqualTo(pending);
    assertThat(result.content().orElseThrow().get(0).asText().text())
        .contains("confirmed-" + marker);
    assertThat(model.requestsMentioning(marker).get(1).body().toString()).contains("temperature_c");
    stream.close();
  }

  @Test
  void anInterruptEndsAHangingTurn() throws Exception {
    // Given a model call that never ends
    model.enqueue(Reply.hang());
    BetaManagedAgentsSession session = session(agent(List.of()), null);
    Stream stream = Stream.open(client, session.id());
    client.beta().sessions().events().send(session.id(), message("Wait " + marker));
    stream.until(event -> event.isSpanModelRequestStart());

    // When the client interrupts
    client
        .beta()
        .sessions()
        .events()
        .send(
            session.id(),
            EventSendParams.builder()
                .addEvent(BetaManagedAgentsUserInterruptEventParams.builder().build())
                .build());

    // Then the session idles, as at the end of a turn
    var events = stream.until(AnthropicSdkTest::endOfTurn);
    assertThat(types(events)).contains("user.interrupt").endsWith("session.status_idle");
    assertThat(client.beta().sessions().retrieve(session.id()).status())
        .isEqualTo(BetaManagedAgentsSession.Status.IDLE);
    stream.close();
  }

  @Test
  void aRefusedReplyEndsTheTurnWithTheRefusalStopReasonTheSdkKnows() throws Exception {
    // Given a model whose safety classifier stops its reply
    model.enqueue(Reply.stream().text("I can").stop("refusal"));
    BetaManagedAgentsSession session = session(agent(List.of()), null);
    Stream stream = Stream.open(client, session.id());

    // When
    client.beta().sessions().events().send(session.id(), message("Refuse this " + marker));

    // Then the turn ends idle, and the SDK reads its stop reason as a refusal
    var events = stream.until(AnthropicSdkTest::endOfTurn);
    var idle = events.get(events.size() - 1).asSessionStatusIdle();
    assertThat(idle.stopReason().isRefusal()).isTrue();
    var overRest = client.beta().sessions().retrieve(session.id());
    assertThat(overRest.status()).isEqualTo(BetaManagedAgentsSession.Status.IDLE);
    stream.close();
  }

  @Test
  void eventsAreListedInPagesBothWays() {
    // Given a session with 5 user messages
    BetaManagedAgentsSession session = session(agent(List.of()), null);
    for (int i = 1; i <= 5; i++) {
      model.enqueue(Reply.text("ok " + i));
    }
    var send = EventSendParams.builder();
    for (int i = 1; i <= 5; i++) {
      send.addEvent(messageEvent("n" + i));
    }
    var sent = client.beta().sessions().events().send(session.id(), send.build());
    assertThat(sent.data().orElseThrow()).hasSize(5);

    // When the user messages are paged two at a time, forwards and backwards
    List<String> forwards = new ArrayList<>();
    var page =
        client
            .beta()
            .sessions()
            .events()
            .list(
                session.id(),
                EventListParams.builder()
                    .limit(2)
                    .addType(
                        com.anthropic.models.beta.sessions.events.BetaManagedAgentsSessionEventType
                            .USER_MESSAGE)
                    .build());
    int pages = 0;
    while (true) {
      pages++;
      page.data().forEach(event -> forwards.add(text(event)));
      if (!page.hasNextPage()) {
        break;
      }
      page = page.nextPage();
    }
    List<String> backwards = new ArrayList<>();
    for (BetaManagedAgentsSessionEvent event :
        client
            .beta()
            .sessions()
            .events()
            .list(
                session.id(),
                EventListParams.builder()
                    .limit(2)
                    .order(EventListParams.Order.DESC)
                    .addType(
                        com.anthropic.models.beta.sessions.events.BetaManagedAgentsSessionEventType
                            .USER_MESSAGE)
                    .build())
            .autoPager()) {
      backwards.add(text(event));
    }

    // Then each order holds every message once
    assertThat(forwards).containsExactly("n1", "n2", "n3", "n4", "n5");
    assertThat(pages).isEqualTo(3);
    List<String> reversed = new ArrayList<>(forwards);
    Collections.reverse(reversed);
    assertThat(backwards).isEqualTo(reversed);
  }

  @Test
  void badInputUnknownIdsAndAnotherTenantsIdsGetTheApisErrors() {
    // Given an agent of this tenant, and a client of another tenant
    BetaManagedAgentsAgent agent = agent(List.of());
    String otherKey =
        keys.createApiKey(
                dev.corral.proto.v1.CreateApiKeyRequest.newBuilder()
                    .setName("rest test")
                    .setRole(dev.corral.proto.v1.Role.ROLE_ADMIN)
                    .setTenantId("rest-other-" + marker.substring(2, 10))
                    .build())
            .getKey();

    // Then each mistake gets its status, its error type and a message naming it
    AnthropicServiceException noModel =
        catching(
            () ->
                client
                    .beta()
                    .agents()
                    .create(
                        AgentCreateParams.builder()
                            .name("x")
                            .model(BetaManagedAgentsModel.of(""))
                            .build()));
    assertThat(noModel).isInstanceOf(BadRequestException.class);
    assertThat(noModel.body().toString()).contains("model").contains("invalid_request_error");
    AnthropicServiceException unknown =
        catching(() -> client.beta().agents().retrieve("agent_00000000000000000000000000"));
    assertThat(unknown).isInstanceOf(NotFoundException.class);
    assertThat(unknown.body().toString()).contains("not_found_error");
    AnthropicClient other = sdk(otherKey);
    AnthropicServiceException foreign = catching(() -> other.beta().agents().retrieve(agent.id()));
    other.close();
    assertThat(foreign).isInstanceOf(NotFoundException.class);
    assertThat(withoutRequestId(foreign.body().toString()))
        .isEqualTo(
            withoutRequestId(
                unknown.body().toString().replace("agent_00000000000000000000000000", agent.id())));
    AnthropicClient nobody = sdk("crl_" + "a".repeat(52));
    assertThatThrownBy(() -> nobody.beta().agents().list())
        .isInstanceOf(UnauthorizedException.class);
    nobody.close();
    AnthropicServiceException badUpdate =
        catching(
            () ->
                client
                    .beta()
                    .agents()
                    .update(agent.id(), AgentUpdateParams.builder().version(99).build()));
    assertThat(badUpdate.statusCode()).isEqualTo(409);
    assertThat(badUpdate.headers().values("x-should-retry")).containsExactly("false");
  }

  @Test
  void aVaultsCredentialReachesTheAgentsMcpServerThroughTheSessionsVaults() throws Exception {
    dev.corral.testing.McpTestServer server = dev.corral.testing.McpTestServer.start();
    try {
      // Given a vault with a bearer token for the MCP server, and an agent that names no credential
      String token = "tok-" + UUID.randomUUID();
      server.requireAuthorization("Bearer " + token);
      var vault =
          client
              .beta()
              .vaults()
              .create(
                  com.anthropic.models.beta.vaults.VaultCreateParams.builder()
                      .displayName("sdk vault " + marker)
                      .build());
      var credential =
          client
              .beta()
              .vaults()
              .credentials()
              .create(
                  vault.id(),
                  com.anthropic.models.beta.vaults.credentials.CredentialCreateParams.builder()
                      .displayName("mcp token")
                      .auth(
                          com.anthropic.models.beta.vaults.credentials
                              .BetaManagedAgentsStaticBearerCreateParams.builder()
                              .mcpServerUrl(server.url())
                              .token(token)
                              .build())
                      .build());
      var listed = client.beta().vaults().credentials().list(vault.id()).data();
      BetaManagedAgentsAgent agent =
          client
              .beta()
              .agents()
              .create(
                  AgentCreateParams.builder()
                      .name("mcp agent " + marker)
                      .model(BetaManagedAgentsModel.of("claude-test"))
                      .addMcpServer(
                          com.anthropic.models.beta.agents.BetaManagedAgentsUrlMcpServerParams
                              .builder()
                              .name("github")
                              .url(server.url())
                              .build())
                      .addTool(
                          com.anthropic.models.beta.agents.BetaManagedAgentsMcpToolsetParams
                              .builder()
                              .mcpServerName("github")
                              .defaultConfig(
                                  com.anthropic.models.beta.agents
                                      .BetaManagedAgentsMcpToolsetDefaultConfigParams.builder()
                                      .permissionPolicy(
                                          com.anthropic.models.beta.agents
                                              .BetaManagedAgentsAlwaysAllowPolicy.builder()
                                              .build())
                                      .build())
                              .build())
                      .build());
      model.enqueue(
          Reply.toolUse("toolu_1", "mcp__github__echo", "{\"text\":\"hi\"}"),
          Reply.text("The server said hi."));

      // When a session that names the vault runs a turn
      BetaManagedAgentsSession session =
          client
              .beta()
              .sessions()
              .create(
                  SessionCreateParams.builder()
                      .agent(agent.id())
                      .environmentId(
                          client
                              .beta()
                              .environments()
                              .create(EnvironmentCreateParams.builder().name("mcp env").build())
                              .id())
                      .addVaultId(vault.id())
                      .build());
      Stream stream = Stream.open(client, session.id());
      client.beta().sessions().events().send(session.id(), message("Echo " + marker));
      var events = stream.until(AnthropicSdkTest::endOfTurn);
      stream.close();

      // Then the MCP server got the vault's token, and nothing the client reads holds it
      var result =
          events.stream()
              .filter(BetaManagedAgentsStreamSessionEvents::isAgentMcpToolResult)
              .findFirst()
              .orElseThrow()
              .asAgentMcpToolResult();
      assertThat(result.content().orElseThrow().get(0).asText().text()).isEqualTo("echo: hi");
      assertThat(server.requests())
          .filteredOn(request -> request.method().equals("POST"))
          .isNotEmpty()
          .allSatisfy(request -> assertThat(request.authorization()).isEqualTo("Bearer " + token));
      assertThat(listed).extracting(c -> c.id()).containsExactly(credential.id());
      assertThat(credential.vaultId()).isEqualTo(vault.id());
      assertThat(
              credential.toString()
                  + listed
                  + client.beta().sessions().retrieve(session.id())
                  + events)
          .doesNotContain(token);
      assertThat(client.beta().sessions().retrieve(session.id()).vaultIds())
          .containsExactly(vault.id());
    } finally {
      server.close();
    }
  }

  @Test
  void deltasPreviewTheMessageWhenAskedFor() throws Exception {
    // Given a stream that asks for agent.message deltas
    // (the model pauses midway, so that a preview goes out before the message is whole)
    String answer = "A long answer that arrives in pieces, " + marker;
    model.enqueue(
        Reply.stream().text(answer).stop("end_turn").pauseAfter(6, Duration.ofSeconds(1)));
    BetaManagedAgentsSession session = session(agent(List.of()), null);
    Stream stream =
        new Stream(
            client
                .beta()
                .sessions()
                .events()
                .streamStreaming(
                    session.id(),
                    com.anthropic.models.beta.sessions.events.EventStreamParams.builder()
                        .addEventDelta(
                            com.anthropic.models.beta.sessions.BetaManagedAgentsDeltaType
                                .AGENT_MESSAGE)
                        .build()));

    // When a turn runs
    client.beta().sessions().events().send(session.id(), message("Talk " + marker));
    var events = stream.until(AnthropicSdkTest::endOfTurn);
    stream.close();

    // Then the message was announced, previewed in pieces, then stored whole, under one id
    var message =
        events.stream()
            .filter(BetaManagedAgentsStreamSessionEvents::isAgentMessage)
            .findFirst()
            .orElseThrow()
            .asAgentMessage();
    var start =
        events.stream()
            .filter(BetaManagedAgentsStreamSessionEvents::isEventStart)
            .findFirst()
            .orElseThrow()
            .asEventStart();
    StringBuilder previewed = new StringBuilder();
    events.stream()
        .filter(BetaManagedAgentsStreamSessionEvents::isEventDelta)
        .map(BetaManagedAgentsStreamSessionEvents::asEventDelta)
        .forEach(
            delta -> {
              assertThat(delta.eventId()).isEqualTo(message.id());
              previewed.append(delta.delta().content().text());
            });
    assertThat(start.event().id()).isEqualTo(message.id());
    assertThat(answer).startsWith(previewed.toString());
    assertThat(previewed.length()).isPositive();
    assertThat(events.indexOf(events.stream().filter(e -> e.isEventStart()).findFirst().get()))
        .isLessThan(
            events.indexOf(events.stream().filter(e -> e.isAgentMessage()).findFirst().get()));
  }

  // --- helpers
  // ------------------------------------------------------------------------------------

  private BetaManagedAgentsAgent agent(List<AgentCreateParams.Tool> tools) {
    return client
        .beta()
        .agents()
        .create(
            AgentCreateParams.builder()
                .name("sdk agent " + marker)
                .model(BetaManagedAgentsModel.of("claude-test"))
                .tools(tools)
                .build());
  }

  private BetaManagedAgentsSession session(BetaManagedAgentsAgent agent, String environment) {
    var params = SessionCreateParams.builder().agent(agent.id()).title("sdk " + marker);
    if (environment != null) {
      params.environmentId(environment);
    } else {
      params.environmentId(
          client
              .beta()
              .environments()
              .create(EnvironmentCreateParams.builder().name("sdk env " + marker).build())
              .id());
    }
    return client.beta().sessions().create(params.build());
  }

  private static EventSendParams message(String text) {
    return EventSendParams.builder().addEvent(messageEvent(text)).build();
  }

  private static BetaManagedAgentsUserMessageEventParams messageEvent(String text) {
    return BetaManagedAgentsUserMessageEventParams.builder()
        .addContent(BetaManagedAgentsUserMessageEventParams.Content.ofText(text))
        .build();
  }

  private static boolean endOfTurn(BetaManagedAgentsStreamSessionEvents event) {
    return event.isSessionStatusIdle()
        && !event.asSessionStatusIdle().stopReason().isRequiresAction();
  }

  private static List<String> types(List<BetaManagedAgentsStreamSessionEvents> events) {
    return events.stream()
        .map(event -> (String) field(event._json().orElseThrow(), "type"))
        .toList();
  }

  private static String id(BetaManagedAgentsSessionEvent event) {
    return (String) field(event._json().orElseThrow(), "id");
  }

  private static String text(BetaManagedAgentsSessionEvent event) {
    return event.asUserMessage().content().get(0).asText().text();
  }

  private static Object field(JsonValue json, String name) {
    return ((Map<?, ?>) json.convert(Map.class)).get(name);
  }

  private static String withoutRequestId(String body) {
    return body.replaceAll("req_[0-9a-f]+", "REQ");
  }

  private static BetaManagedAgentsStreamSessionEvents last(
      List<BetaManagedAgentsStreamSessionEvents> events) {
    return events.get(events.size() - 1);
  }

  private static AnthropicServiceException catching(Runnable call) {
    try {
      call.run();
    } catch (AnthropicServiceException e) {
      return e;
    }
    throw new AssertionError("the call succeeded");
  }

  /** A session's stream read on a thread of its own, events collected as they come. */
  static final class Stream implements AutoCloseable {
    private final StreamResponse<BetaManagedAgentsStreamSessionEvents> response;
    private final List<BetaManagedAgentsStreamSessionEvents> events =
        Collections.synchronizedList(new ArrayList<>());
    private final CompletableFuture<Void> reader;
    private int taken;

    Stream(StreamResponse<BetaManagedAgentsStreamSessionEvents> response) {
      this.response = response;
      this.reader = CompletableFuture.runAsync(() -> response.stream().forEach(events::add));
    }

    static Stream open(AnthropicClient client, String sessionId) {
      return new Stream(client.beta().sessions().events().streamStreaming(sessionId));
    }

    /** The events after the last call's, up to the first that {@code end} accepts. */
    List<BetaManagedAgentsStreamSessionEvents> until(
        Predicate<BetaManagedAgentsStreamSessionEvents> end) {
      await()
          .atMost(Duration.ofSeconds(20))
          .until(
              () -> {
                synchronized (events) {
                  if (events.subList(taken, events.size()).stream().anyMatch(end)) {
                    return true;
                  }
                }
                if (reader.isCompletedExceptionally()) {
                  reader.join(); // the stream failed (an event the SDK could not read): say why
                }
                return false;
              });
      synchronized (events) {
        int stop = taken;
        while (!end.test(events.get(stop))) {
          stop++;
        }
        List<BetaManagedAgentsStreamSessionEvents> slice =
            new ArrayList<>(events.subList(taken, stop + 1));
        taken = stop + 1;
        return slice;
      }
    }

    /** How many events were taken by {@link #until}, across calls. */
    int seen() {
      return taken;
    }

    @Override
    public void close() {
      response.close();
      reader.cancel(true);
    }
  }
}
