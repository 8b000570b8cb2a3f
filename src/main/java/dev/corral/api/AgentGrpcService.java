package dev.corral.api;

import dev.corral.agent.Agents;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.ArchiveAgentRequest;
import dev.corral.proto.v1.ArchiveAgentResponse;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateAgentResponse;
import dev.corral.proto.v1.GetAgentRequest;
import dev.corral.proto.v1.GetAgentResponse;
import dev.corral.proto.v1.ListAgentVersionsRequest;
import dev.corral.proto.v1.ListAgentVersionsResponse;
import dev.corral.proto.v1.ListAgentsRequest;
import dev.corral.proto.v1.ListAgentsResponse;
import dev.corral.proto.v1.MutinyAgentServiceGrpc;
import dev.corral.proto.v1.UpdateAgentRequest;
import dev.corral.proto.v1.UpdateAgentResponse;
import io.grpc.ServerServiceDefinition;
import io.quarkus.grpc.GrpcService;
import io.smallrye.mutiny.Uni;
import java.util.Map;
import java.util.Optional;

/** corral.v1.AgentService on top of {@link Agents}. */
@GrpcService
public class AgentGrpcService extends MutinyAgentServiceGrpc.AgentServiceImplBase {

  private final Agents agents;

  AgentGrpcService(Agents agents) {
    this.agents = agents;
  }

  @Override
  public ServerServiceDefinition bindService() {
    return ServiceDefinitions.rewrite(super.bindService(), Map.of());
  }

  @Override
  public Uni<CreateAgentResponse> createAgent(CreateAgentRequest request) {
    Agent definition =
        Agent.newBuilder()
            .setName(request.getName())
            .setDescription(request.getDescription())
            .setModel(request.getModel())
            .setSystem(request.getSystem())
            .addAllTools(request.getToolsList())
            .putAllMetadata(request.getMetadataMap())
            .addAllMcpServers(request.getMcpServersList())
            .build();
    return agents
        .create(Caller.current().tenant(), definition)
        .map(agent -> CreateAgentResponse.newBuilder().setAgent(agent).build());
  }

  @Override
  public Uni<GetAgentResponse> getAgent(GetAgentRequest request) {
    return agents
        .get(Caller.current().tenant(), request.getAgentId(), request.getVersion())
        .map(agent -> GetAgentResponse.newBuilder().setAgent(agent).build());
  }

  @Override
  public Uni<UpdateAgentResponse> updateAgent(UpdateAgentRequest request) {
    Agents.AgentChanges changes =
        new Agents.AgentChanges(
            request.hasName() ? Optional.of(request.getName()) : Optional.empty(),
            request.hasDescription() ? Optional.of(request.getDescription()) : Optional.empty(),
            request.hasModel() ? Optional.of(request.getModel()) : Optional.empty(),
            request.hasSystem() ? Optional.of(request.getSystem()) : Optional.empty(),
            request.hasTools() ? Optional.of(request.getTools().getToolsList()) : Optional.empty(),
            request.hasMetadata()
                ? Optional.of(request.getMetadata().getEntriesMap())
                : Optional.empty(),
            request.hasMcpServers()
                ? Optional.of(request.getMcpServers().getMcpServersList())
                : Optional.empty());
    return agents
        .update(
            Caller.current().tenant(), request.getAgentId(), request.getExpectedVersion(), changes)
        .onFailure(InvalidArgumentException.class)
        .transform(
            failure ->
                UpdateFields.renamed(
                    failure,
                    new UpdateFields.Wrapper(request.hasTools(), "tools", "tools.tools"),
                    new UpdateFields.Wrapper(
                        request.hasMcpServers(), "mcp_servers", "mcp_servers.mcp_servers"),
                    new UpdateFields.Wrapper(
                        request.hasMetadata(), "metadata", "metadata.entries")))
        .map(agent -> UpdateAgentResponse.newBuilder().setAgent(agent).build());
  }

  @Override
  public Uni<ListAgentsResponse> listAgents(ListAgentsRequest request) {
    return agents
        .list(
            Caller.current().tenant(),
            request.getPageSize(),
            request.getPageToken(),
            request.getIncludeArchived())
        .map(
            page ->
                ListAgentsResponse.newBuilder()
                    .addAllAgents(page.items())
                    .setNextPageToken(page.nextPageToken())
                    .build());
  }

  @Override
  public Uni<ListAgentVersionsResponse> listAgentVersions(ListAgentVersionsRequest request) {
    return agents
        .versions(
            Caller.current().tenant(),
            request.getAgentId(),
            request.getPageSize(),
            request.getPageToken())
        .map(
            page ->
                ListAgentVersionsResponse.newBuilder()
                    .addAllVersions(page.items())
                    .setNextPageToken(page.nextPageToken())
                    .build());
  }

  @Override
  public Uni<ArchiveAgentResponse> archiveAgent(ArchiveAgentRequest request) {
    return agents
        .archive(Caller.current().tenant(), request.getAgentId())
        .map(agent -> ArchiveAgentResponse.newBuilder().setAgent(agent).build());
  }
}
