package dev.corral.api;

import dev.corral.common.IdKind;
import dev.corral.harness.Dispatcher;
import dev.corral.proto.v1.MutinyHarnessServiceGrpc;
import dev.corral.proto.v1.WakeRequest;
import dev.corral.proto.v1.WakeResponse;
import io.grpc.ServerServiceDefinition;
import io.quarkus.grpc.GrpcService;
import io.smallrye.mutiny.Uni;
import java.util.Map;

/** corral.v1.HarnessService on top of the {@link Dispatcher}. */
@GrpcService
public class HarnessGrpcService extends MutinyHarnessServiceGrpc.HarnessServiceImplBase {

  private final Dispatcher dispatcher;

  HarnessGrpcService(Dispatcher dispatcher) {
    this.dispatcher = dispatcher;
  }

  @Override
  public ServerServiceDefinition bindService() {
    return ServiceDefinitions.rewrite(super.bindService(), Map.of());
  }

  @Override
  public Uni<WakeResponse> wake(WakeRequest request) {
    dev.corral.common.Tenant tenant = Caller.current().tenant();
    return Uni.createFrom()
        .item(() -> IdKind.SESSION.require("session_id", request.getSessionId()))
        .flatMap(id -> dispatcher.wake(tenant, id))
        .map(
            result ->
                WakeResponse.newBuilder()
                    .setLease(result.lease())
                    .setStarted(result.started())
                    .build());
  }
}
