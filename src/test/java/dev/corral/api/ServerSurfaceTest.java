package dev.corral.api;

import static io.restassured.RestAssured.given;
import static org.assertj.core.api.Assertions.assertThat;
import static org.hamcrest.Matchers.equalTo;

import grpc.health.v1.HealthGrpc;
import grpc.health.v1.HealthOuterClass.HealthCheckRequest;
import grpc.health.v1.HealthOuterClass.HealthCheckResponse;
import io.grpc.Channel;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.stub.StreamObserver;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** What operators and grpcurl-style clients rely on: health endpoints and reflection. */
@QuarkusTest
class ServerSurfaceTest {

  @GrpcClient("corral")
  Channel channel;

  @Test
  void httpHealthIsUpOnceTheSchemaIsMigrated() {
    given().when().get("/q/health/live").then().statusCode(200).body("status", equalTo("UP"));
    given()
        .when()
        .get("/q/health/ready")
        .then()
        .statusCode(200)
        .body("status", equalTo("UP"))
        .body("checks.find { it.name == 'corral schema' }.status", equalTo("UP"));
  }

  @Test
  void grpcHealthServiceAnswersServing() {
    HealthCheckResponse response =
        HealthGrpc.newBlockingStub(channel).check(HealthCheckRequest.getDefaultInstance());
    assertThat(response.getStatus()).isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
  }

  @Test
  void healthNeedsNoCredentialButReflectionDoes() throws Exception {
    io.grpc.ManagedChannel plain =
        io.grpc.ManagedChannelBuilder.forAddress("localhost", 18081).usePlaintext().build();
    try {
      assertThat(
              HealthGrpc.newBlockingStub(plain)
                  .check(HealthCheckRequest.getDefaultInstance())
                  .getStatus())
          .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
      // a health watch, a stream that never ends, is a caller's
      java.util.Iterator<HealthCheckResponse> watched =
          HealthGrpc.newBlockingStub(plain)
              .withDeadlineAfter(10, TimeUnit.SECONDS)
              .watch(HealthCheckRequest.getDefaultInstance());
      assertThat(
              org.assertj.core.api.Assertions.catchThrowableOfType(
                      io.grpc.StatusRuntimeException.class, watched::next)
                  .getStatus()
                  .getCode())
          .isEqualTo(io.grpc.Status.Code.UNAUTHENTICATED);
      CompletableFuture<ServerReflectionResponse> answer = reflect(plain);
      assertThat(answer)
          .failsWithin(10, TimeUnit.SECONDS)
          .withThrowableOfType(java.util.concurrent.ExecutionException.class)
          .satisfies(
              failure ->
                  assertThat(io.grpc.Status.fromThrowable(failure.getCause()).getCode())
                      .isEqualTo(io.grpc.Status.Code.UNAUTHENTICATED));
    } finally {
      plain.shutdownNow();
    }
  }

  private static CompletableFuture<ServerReflectionResponse> reflect(Channel channel) {
    CompletableFuture<ServerReflectionResponse> answer = new CompletableFuture<>();
    StreamObserver<ServerReflectionRequest> requests =
        ServerReflectionGrpc.newStub(channel)
            .serverReflectionInfo(
                new StreamObserver<>() {
                  @Override
                  public void onNext(ServerReflectionResponse response) {
                    answer.complete(response);
                  }

                  @Override
                  public void onError(Throwable failure) {
                    answer.completeExceptionally(failure);
                  }

                  @Override
                  public void onCompleted() {}
                });
    requests.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
    return answer;
  }

  @Test
  void reflectionListsTheCorralServices() throws Exception {
    CompletableFuture<ServerReflectionResponse> answer = new CompletableFuture<>();
    StreamObserver<ServerReflectionRequest> requests =
        ServerReflectionGrpc.newStub(channel)
            .serverReflectionInfo(
                new StreamObserver<>() {
                  @Override
                  public void onNext(ServerReflectionResponse response) {
                    answer.complete(response);
                  }

                  @Override
                  public void onError(Throwable failure) {
                    answer.completeExceptionally(failure);
                  }

                  @Override
                  public void onCompleted() {}
                });
    requests.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
    List<String> services =
        answer.get(10, TimeUnit.SECONDS).getListServicesResponse().getServiceList().stream()
            .map(service -> service.getName())
            .toList();
    requests.onCompleted();
    assertThat(services)
        .contains(
            "corral.v1.SessionService",
            "corral.v1.AgentService",
            "corral.v1.HarnessService",
            "corral.v1.EnvironmentService",
            "corral.v1.SandboxService",
            "corral.v1.ApiKeyService",
            "corral.v1.TenantService",
            "grpc.health.v1.Health");
  }
}
