package dev.corral.api;

import dev.corral.agent.Environments;
import dev.corral.proto.v1.ArchiveEnvironmentRequest;
import dev.corral.proto.v1.ArchiveEnvironmentResponse;
import dev.corral.proto.v1.CreateEnvironmentRequest;
import dev.corral.proto.v1.CreateEnvironmentResponse;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.GetEnvironmentRequest;
import dev.corral.proto.v1.GetEnvironmentResponse;
import dev.corral.proto.v1.ListEnvironmentsRequest;
import dev.corral.proto.v1.ListEnvironmentsResponse;
import dev.corral.proto.v1.MutinyEnvironmentServiceGrpc;
import dev.corral.proto.v1.UpdateEnvironmentRequest;
import dev.corral.proto.v1.UpdateEnvironmentResponse;
import io.grpc.ServerServiceDefinition;
import io.quarkus.grpc.GrpcService;
import io.smallrye.mutiny.Uni;
import java.util.Map;

/** corral.v1.EnvironmentService on top of {@link Environments}. */
@GrpcService
public class EnvironmentGrpcService
    extends MutinyEnvironmentServiceGrpc.EnvironmentServiceImplBase {

  private final Environments environments;

  EnvironmentGrpcService(Environments environments) {
    this.environments = environments;
  }

  @Override
  public ServerServiceDefinition bindService() {
    return ServiceDefinitions.rewrite(super.bindService(), Map.of());
  }

  @Override
  public Uni<CreateEnvironmentResponse> createEnvironment(CreateEnvironmentRequest request) {
    Environment definition =
        Environment.newBuilder()
            .setName(request.getName())
            .setDescription(request.getDescription())
            .setDriver(request.getDriver())
            .setImage(request.getImage())
            .setResources(request.getResources())
            .setNetworking(request.getNetworking())
            .addAllSetupCommands(request.getSetupCommandsList())
            .setWarmPoolSize(request.getWarmPoolSize())
            .setRuntimeClassName(request.getRuntimeClassName())
            .putAllMetadata(request.getMetadataMap())
            .build();
    return environments
        .create(Caller.current().tenant(), definition)
        .map(
            environment ->
                CreateEnvironmentResponse.newBuilder().setEnvironment(environment).build());
  }

  @Override
  public Uni<GetEnvironmentResponse> getEnvironment(GetEnvironmentRequest request) {
    return environments
        .get(Caller.current().tenant(), request.getEnvironmentId())
        .map(
            environment -> GetEnvironmentResponse.newBuilder().setEnvironment(environment).build());
  }

  @Override
  public Uni<UpdateEnvironmentResponse> updateEnvironment(UpdateEnvironmentRequest request) {
    return environments
        .update(
            Caller.current().tenant(),
            request.getEnvironmentId(),
            request.getExpectedVersion(),
            current -> changed(current, request))
        .onFailure(dev.corral.common.InvalidArgumentException.class)
        .transform(
            failure ->
                UpdateFields.renamed(
                    failure,
                    new UpdateFields.Wrapper(
                        request.hasSetupCommands(), "setup_commands", "setup_commands.commands"),
                    new UpdateFields.Wrapper(
                        request.hasMetadata(), "metadata", "metadata.entries")))
        .map(
            environment ->
                UpdateEnvironmentResponse.newBuilder().setEnvironment(environment).build());
  }

  @Override
  public Uni<ListEnvironmentsResponse> listEnvironments(ListEnvironmentsRequest request) {
    return environments
        .list(
            Caller.current().tenant(),
            request.getPageSize(),
            request.getPageToken(),
            request.getIncludeArchived())
        .map(
            page ->
                ListEnvironmentsResponse.newBuilder()
                    .addAllEnvironments(page.items())
                    .setNextPageToken(page.nextPageToken())
                    .build());
  }

  @Override
  public Uni<ArchiveEnvironmentResponse> archiveEnvironment(ArchiveEnvironmentRequest request) {
    return environments
        .archive(Caller.current().tenant(), request.getEnvironmentId())
        .map(
            environment ->
                ArchiveEnvironmentResponse.newBuilder().setEnvironment(environment).build());
  }

  /** The environment with the request's set fields replacing its own. */
  private static Environment changed(Environment current, UpdateEnvironmentRequest request) {
    Environment.Builder next = current.toBuilder();
    if (request.hasName()) {
      next.setName(request.getName());
    }
    if (request.hasDescription()) {
      next.setDescription(request.getDescription());
    }
    if (request.hasImage()) {
      next.setImage(request.getImage());
    }
    if (request.hasResources()) {
      next.setResources(request.getResources());
    }
    if (request.hasSetupCommands()) {
      next.clearSetupCommands().addAllSetupCommands(request.getSetupCommands().getCommandsList());
    }
    if (request.hasWarmPoolSize()) {
      next.setWarmPoolSize(request.getWarmPoolSize());
    }
    if (request.hasRuntimeClassName()) {
      next.setRuntimeClassName(request.getRuntimeClassName());
    }
    if (request.hasNetworking()) {
      next.setNetworking(request.getNetworking());
    }
    if (request.hasMetadata()) {
      next.clearMetadata().putAllMetadata(request.getMetadata().getEntriesMap());
    }
    return next.build();
  }
}
