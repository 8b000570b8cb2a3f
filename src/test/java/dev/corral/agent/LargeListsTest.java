package dev.corral.agent;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.common.Page;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.CustomTool;
import dev.corral.proto.v1.ListAgentVersionsRequest;
import dev.corral.proto.v1.ListAgentVersionsResponse;
import dev.corral.proto.v1.ListAgentsRequest;
import dev.corral.proto.v1.ListAgentsResponse;
import dev.corral.proto.v1.ListSessionsRequest;
import dev.corral.proto.v1.ListSessionsResponse;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.UpdateAgentRequest;
import dev.corral.testing.TestCredentials;
import io.grpc.Channel;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Lists of large items: the database drops the rows a page cannot hold, so a page of a hundred
 * one-megabyte agents never passes through the server's memory at once, and paging still lists
 * every item once.
 */
@QuarkusTest
class LargeListsTest {

  /** Seven custom tools of 60,000 characters each: about 420 KB per agent. */
  private static final int AGENT_BYTES = 400_000;

  @GrpcClient("corral")
  Channel channel;

  @Inject AgentRepository repository;

  @Test
  void aPageOfLargeAgentsIsCutInTheDatabaseAndPagingStillListsEachOnce() {
    // Given seven agents of 420 KB each in a tenant of their own
    String tenant = "large-" + System.nanoTime();
    var agents =
        AgentServiceGrpc.newBlockingStub(TestCredentials.memberOfNewTenantNamed(channel, tenant));
    List<String> created = new ArrayList<>();
    for (int i = 0; i < 7; i++) {
      created.add(agents.createAgent(agent("big-" + i)).getAgent().getId());
    }

    // When the repository is asked for 101 rows (a page of 100 and one that says there is more)
    List<Agent> rows =
        repository
            .list(new Tenant(tenant), null, false, 101)
            .await()
            .atMost(Duration.ofSeconds(10));

    // Then the database sent only what a page holds plus the row that passes the budget
    assertThat(rows).hasSizeLessThanOrEqualTo(Page.PAGE_BYTES / AGENT_BYTES + 1);
    assertThat(rows).hasSizeGreaterThanOrEqualTo(2);

    // and pages of 100 list every agent once
    List<ListAgentsResponse> pages =
        pages(
            token ->
                agents.listAgents(
                    ListAgentsRequest.newBuilder().setPageSize(100).setPageToken(token).build()),
            ListAgentsResponse::getNextPageToken);
    for (ListAgentsResponse page : pages) {
      assertThat(page.getSerializedSize()).isLessThan(Page.PAGE_BYTES + AGENT_BYTES + 4096);
    }
    assertThat(pages.stream().flatMap(page -> page.getAgentsList().stream()).map(Agent::getId))
        .containsExactlyInAnyOrderElementsOf(created);
    assertThat(pages).hasSizeGreaterThan(2);
  }

  @Test
  void theVersionsOfALargeAgentArePagedTheSameWay() {
    // Given an agent of 420 KB with five versions
    var agents =
        AgentServiceGrpc.newBlockingStub(TestCredentials.memberOfNewTenant(channel, "versions"));
    String id = agents.createAgent(agent("v")).getAgent().getId();
    for (int version = 2; version <= 5; version++) {
      agents.updateAgent(
          UpdateAgentRequest.newBuilder()
              .setAgentId(id)
              .setExpectedVersion(version - 1)
              .setDescription("version " + version)
              .build());
    }

    // When they are listed in pages of 100
    List<ListAgentVersionsResponse> pages =
        pages(
            token ->
                agents.listAgentVersions(
                    ListAgentVersionsRequest.newBuilder()
                        .setAgentId(id)
                        .setPageSize(100)
                        .setPageToken(token)
                        .build()),
            ListAgentVersionsResponse::getNextPageToken);
    List<Integer> versions =
        pages.stream()
            .flatMap(page -> page.getVersionsList().stream())
            .map(Agent::getVersion)
            .toList();

    // Then each version is listed once, newest first
    assertThat(versions).containsExactly(5, 4, 3, 2, 1);
  }

  @Test
  void sessionsOfALargeAgentArePagedTheSameWay() {
    // Given seven sessions, each with its own copy of a 420 KB agent
    Channel member = TestCredentials.memberOfNewTenant(channel, "sessions");
    String agentId =
        AgentServiceGrpc.newBlockingStub(member).createAgent(agent("s")).getAgent().getId();
    var sessions = SessionServiceGrpc.newBlockingStub(member);
    List<String> created = new ArrayList<>();
    for (int i = 0; i < 7; i++) {
      created.add(
          sessions
              .createSession(CreateSessionRequest.newBuilder().setAgentId(agentId).build())
              .getSession()
              .getId());
    }

    // When they are listed in pages of 100 (of this agent only, to exercise every parameter)
    List<ListSessionsResponse> pages =
        pages(
            token ->
                sessions.listSessions(
                    ListSessionsRequest.newBuilder()
                        .setPageSize(100)
                        .setAgentId(agentId)
                        .setPageToken(token)
                        .build()),
            ListSessionsResponse::getNextPageToken);
    List<String> listed =
        pages.stream()
            .flatMap(page -> page.getSessionsList().stream())
            .map(dev.corral.proto.v1.Session::getId)
            .toList();

    // Then each is listed once, a few to a page
    assertThat(listed).containsExactlyInAnyOrderElementsOf(created);
    assertThat(pages).hasSizeGreaterThan(2);
  }

  /** Every page of a list, from the first until one has no next page token. */
  private static <P> List<P> pages(
      java.util.function.Function<String, P> fetch,
      java.util.function.Function<P, String> nextToken) {
    List<P> pages = new ArrayList<>();
    String token = "";
    do {
      P page = fetch.apply(token);
      pages.add(page);
      token = nextToken.apply(page);
    } while (!token.isEmpty());
    return pages;
  }

  private static CreateAgentRequest agent(String name) {
    CreateAgentRequest.Builder agent =
        CreateAgentRequest.newBuilder().setName(name).setModel("claude-sonnet-4-5");
    for (int i = 0; i < 7; i++) {
      agent.addTools(
          Tool.newBuilder()
              .setCustom(
                  CustomTool.newBuilder()
                      .setName("t" + i)
                      .setInputSchemaJson(
                          "{\"type\":\"object\",\"description\":\"" + "d".repeat(60_000) + "\"}")));
    }
    return agent.build();
  }
}
