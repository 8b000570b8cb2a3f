package dev.corral.api;

import dev.corral.proto.v1.ExecuteRequest;
import dev.corral.proto.v1.ExecuteResponse;
import dev.corral.proto.v1.GetSandboxRequest;
import dev.corral.proto.v1.GetSandboxResponse;
import dev.corral.proto.v1.ListSandboxesRequest;
import dev.corral.proto.v1.ListSandboxesResponse;
import dev.corral.proto.v1.MutinySandboxServiceGrpc;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ProvisionResponse;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.ReleaseSandboxResponse;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.sandbox.Sandboxes;
import dev.corral.tool.BuiltInTools;
import io.grpc.ServerServiceDefinition;
import io.quarkus.grpc.GrpcService;
import io.smallrye.mutiny.Uni;
import java.util.Map;

/** corral.v1.SandboxService on top of {@link Sandboxes} and {@link BuiltInTools}. */
@GrpcService
public class SandboxGrpcService extends MutinySandboxServiceGrpc.SandboxServiceImplBase {

  private final Sandboxes sandboxes;
  private final BuiltInTools tools;

  SandboxGrpcService(Sandboxes sandboxes, BuiltInTools tools) {
    this.sandboxes = sandboxes;
    this.tools = tools;
  }

  @Override
  public ServerServiceDefinition bindService() {
    return ServiceDefinitions.rewrite(
        super.bindService(),
        Map.of(
            SandboxServiceGrpc.getExecuteMethod().getFullMethodName(),
            CancellableUnary.handler(this::execute),
            SandboxServiceGrpc.getProvisionMethod().getFullMethodName(),
            CancellableUnary.handler(this::provision)));
  }

  @Override
  public Uni<ProvisionResponse> provision(ProvisionRequest request) {
    return sandboxes
        .provisionForClient(
            Caller.current().tenant(),
            request.getEnvironmentId(),
            request.getResources(),
            request.getSessionId())
        .map(sandbox -> ProvisionResponse.newBuilder().setSandbox(sandbox).build());
  }

  @Override
  public Uni<ExecuteResponse> execute(ExecuteRequest request) {
    return tools
        .execute(
            Caller.current().tenant(),
            request.getSandboxId(),
            request.getName(),
            request.getInputJson())
        .map(
            outcome ->
                ExecuteResponse.newBuilder()
                    .setOutput(outcome.output())
                    .setIsError(outcome.isError())
                    .build());
  }

  @Override
  public Uni<GetSandboxResponse> getSandbox(GetSandboxRequest request) {
    return sandboxes
        .get(Caller.current().tenant(), request.getSandboxId())
        .map(sandbox -> GetSandboxResponse.newBuilder().setSandbox(sandbox).build());
  }

  @Override
  public Uni<ListSandboxesResponse> listSandboxes(ListSandboxesRequest request) {
    return sandboxes
        .list(
            Caller.current().tenant(),
            request.getPageSize(),
            request.getPageToken(),
            request.getSessionId(),
            request.getIncludeEnded())
        .map(
            page ->
                ListSandboxesResponse.newBuilder()
                    .addAllSandboxes(page.items())
                    .setNextPageToken(page.nextPageToken())
                    .build());
  }

  @Override
  public Uni<ReleaseSandboxResponse> releaseSandbox(ReleaseSandboxRequest request) {
    return sandboxes
        .release(Caller.current().tenant(), request.getSandboxId())
        .map(sandbox -> ReleaseSandboxResponse.newBuilder().setSandbox(sandbox).build());
  }
}
