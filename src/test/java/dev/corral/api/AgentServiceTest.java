package dev.corral.api;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.ArchiveAgentRequest;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.CustomTool;
import dev.corral.proto.v1.GetAgentRequest;
import dev.corral.proto.v1.ListAgentVersionsRequest;
import dev.corral.proto.v1.ListAgentVersionsResponse;
import dev.corral.proto.v1.ListAgentsRequest;
import dev.corral.proto.v1.PermissionPolicy;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.ToolConfig;
import dev.corral.proto.v1.ToolList;
import dev.corral.proto.v1.UpdateAgentRequest;
import io.grpc.Status;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import java.util.List;
import org.junit.jupiter.api.Test;

@QuarkusTest
class AgentServiceTest {

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  private static final Tool TOOLS =
      Tool.newBuilder()
          .setToolset(
              AgentToolset.newBuilder()
                  .addConfigs(
                      ToolConfig.newBuilder()
                          .setName("bash")
                          .setPermissionPolicy(PermissionPolicy.PERMISSION_POLICY_ALWAYS_ASK)))
          .build();

  private static final Tool WEATHER =
      Tool.newBuilder()
          .setCustom(
              CustomTool.newBuilder()
                  .setName("get_weather")
                  .setDescription("Weather for a city")
                  .setInputSchemaJson(
                      "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}"))
          .build();

  @Test
  void createdAgentStartsAtVersionOne() {
    // When
    Agent agent = create("researcher");

    // Then
    assertThat(agent.getId()).startsWith("agent_");
    assertThat(agent.getVersion()).isEqualTo(1);
    assertThat(agent.getToolsList()).containsExactly(TOOLS, WEATHER);
    assertThat(agent.getMetadataMap()).containsEntry("team", "research");
    assertThat(
            agents
                .getAgent(GetAgentRequest.newBuilder().setAgentId(agent.getId()).build())
                .getAgent())
        .isEqualTo(agent);
  }

  @Test
  void updateMakesANewImmutableVersionAndKeepsTheOldOne() {
    // Given
    Agent v1 = create("writer");

    // When
    Agent v2 =
        agents
            .updateAgent(
                UpdateAgentRequest.newBuilder()
                    .setAgentId(v1.getId())
                    .setExpectedVersion(1)
                    .setSystem("Be brief.")
                    .setTools(ToolList.getDefaultInstance())
                    .build())
            .getAgent();

    // Then
    assertThat(v2.getVersion()).isEqualTo(2);
    assertThat(v2.getSystem()).isEqualTo("Be brief.");
    assertThat(v2.getToolsList()).isEmpty();
    assertThat(v2.getName()).isEqualTo("writer");
    Agent stillV1 =
        agents
            .getAgent(GetAgentRequest.newBuilder().setAgentId(v1.getId()).setVersion(1).build())
            .getAgent();
    assertThat(stillV1).isEqualTo(v1);
    ListAgentVersionsResponse versions =
        agents.listAgentVersions(
            ListAgentVersionsRequest.newBuilder().setAgentId(v1.getId()).setPageSize(1).build());
    assertThat(versions.getVersionsList()).extracting(Agent::getVersion).containsExactly(2);
    assertThat(
            agents
                .listAgentVersions(
                    ListAgentVersionsRequest.newBuilder()
                        .setAgentId(v1.getId())
                        .setPageToken(versions.getNextPageToken())
                        .build())
                .getVersionsList())
        .extracting(Agent::getVersion)
        .containsExactly(1);
  }

  @Test
  void concurrentUpdatesWithoutAnExpectedVersionEachMakeTheirOwnVersion() throws Exception {
    // Given
    Agent v1 = create("racer");

    // When 16 callers update it at once, each to a name of its own
    List<Agent> updated =
        concurrently(
            16,
            i ->
                agents
                    .updateAgent(
                        UpdateAgentRequest.newBuilder()
                            .setAgentId(v1.getId())
                            .setName("racer " + i)
                            .build())
                    .getAgent());

    // Then every call succeeded, with consecutive versions 2..17, one each
    assertThat(updated)
        .extracting(Agent::getVersion)
        .containsExactlyInAnyOrderElementsOf(
            java.util.stream.IntStream.rangeClosed(2, 17).boxed().toList());
    assertThat(latest(v1.getId()).getVersion()).isEqualTo(17);
  }

  @Test
  void concurrentUpdatesOfOneExpectedVersionHaveExactlyOneWinner() throws Exception {
    // Given
    Agent v1 = create("racer");

    // When 16 callers all expect version 1
    List<Object> outcomes =
        concurrently(
            16,
            i -> {
              try {
                return agents
                    .updateAgent(
                        UpdateAgentRequest.newBuilder()
                            .setAgentId(v1.getId())
                            .setExpectedVersion(1)
                            .setName("racer " + i)
                            .build())
                    .getAgent();
              } catch (io.grpc.StatusRuntimeException refused) {
                return refused.getStatus().getCode();
              }
            });

    // Then one made version 2 and the others were told ABORTED
    assertThat(outcomes.stream().filter(o -> o instanceof Agent)).hasSize(1);
    assertThat(outcomes.stream().filter(o -> !(o instanceof Agent)))
        .hasSize(15)
        .allMatch(code -> code == io.grpc.Status.Code.ABORTED);
    assertThat(latest(v1.getId()).getVersion()).isEqualTo(2);
  }

  private Agent latest(String agentId) {
    return agents.getAgent(GetAgentRequest.newBuilder().setAgentId(agentId).build()).getAgent();
  }

  /** Runs {@code call} for 0..n-1 on n threads released at the same moment. */
  static <T> List<T> concurrently(int n, java.util.function.IntFunction<T> call) throws Exception {
    java.util.concurrent.ExecutorService threads =
        java.util.concurrent.Executors.newFixedThreadPool(n);
    try {
      java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(n);
      List<java.util.concurrent.Future<T>> futures = new java.util.ArrayList<>();
      for (int i = 0; i < n; i++) {
        int index = i;
        futures.add(
            threads.submit(
                () -> {
                  start.await();
                  return call.apply(index);
                }));
      }
      List<T> results = new java.util.ArrayList<>();
      for (java.util.concurrent.Future<T> future : futures) {
        results.add(future.get(30, java.util.concurrent.TimeUnit.SECONDS));
      }
      return results;
    } finally {
      threads.shutdownNow();
    }
  }

  @Test
  void updateThatChangesNothingMakesNoVersion() {
    // Given
    Agent v1 = create("same");

    // When
    Agent after =
        agents
            .updateAgent(
                UpdateAgentRequest.newBuilder().setAgentId(v1.getId()).setName("same").build())
            .getAgent();

    // Then
    assertThat(after.getVersion()).isEqualTo(1);
  }

  @Test
  void sessionsPinAVersionAndKeepTheirSnapshot() {
    // Given an agent at version 2
    Agent v1 = create("pinned");
    agents.updateAgent(
        UpdateAgentRequest.newBuilder().setAgentId(v1.getId()).setModel("claude-next").build());

    // When
    Session latest =
        sessions
            .createSession(CreateSessionRequest.newBuilder().setAgentId(v1.getId()).build())
            .getSession();
    Session pinned =
        sessions
            .createSession(
                CreateSessionRequest.newBuilder().setAgentId(v1.getId()).setAgentVersion(1).build())
            .getSession();
    agents.updateAgent(
        UpdateAgentRequest.newBuilder().setAgentId(v1.getId()).setModel("claude-later").build());

    // Then
    assertThat(latest.getAgent().getVersion()).isEqualTo(2);
    assertThat(latest.getAgent().getModel()).isEqualTo("claude-next");
    assertThat(pinned.getAgent()).isEqualTo(v1);
    assertThat(
            sessions
                .getSession(
                    dev.corral.proto.v1.GetSessionRequest.newBuilder()
                        .setSessionId(latest.getId())
                        .build())
                .getSession()
                .getAgent()
                .getModel())
        .isEqualTo("claude-next");
  }

  @Test
  void archivedAgentIsListedOnlyOnRequestAndTakesNoNewSessions() {
    // Given
    Agent agent = create("retired");

    // When
    Agent archived =
        agents
            .archiveAgent(ArchiveAgentRequest.newBuilder().setAgentId(agent.getId()).build())
            .getAgent();

    // Then
    assertThat(archived.hasArchivedAt()).isTrue();
    assertThat(allAgentIds(false)).doesNotContain(agent.getId());
    assertThat(allAgentIds(true)).contains(agent.getId());
    assertThat(
            SessionServiceTest.catchStatus(
                    () ->
                        sessions.createSession(
                            CreateSessionRequest.newBuilder().setAgentId(agent.getId()).build()))
                .getStatus()
                .getCode())
        .isEqualTo(Status.Code.FAILED_PRECONDITION);
  }

  private java.util.List<String> allAgentIds(boolean includeArchived) {
    java.util.List<String> ids = new java.util.ArrayList<>();
    String token = "";
    do {
      var page =
          agents.listAgents(
              ListAgentsRequest.newBuilder()
                  .setPageSize(100)
                  .setPageToken(token)
                  .setIncludeArchived(includeArchived)
                  .build());
      page.getAgentsList().forEach(a -> ids.add(a.getId()));
      token = page.getNextPageToken();
    } while (!token.isEmpty());
    return ids;
  }

  private Agent create(String name) {
    return agents
        .createAgent(
            CreateAgentRequest.newBuilder()
                .setName(name)
                .setModel("claude-test")
                .addTools(TOOLS)
                .addTools(WEATHER)
                .putMetadata("team", "research")
                .build())
        .getAgent();
  }
}
