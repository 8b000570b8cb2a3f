package dev.corral.sandbox.local;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.corral.proto.v1.ListSandboxesRequest;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.SandboxServiceGrpc;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Without bubblewrap, provisioning a local sandbox fails with how to install it. */
@QuarkusTest
@TestProfile(MissingBubblewrapTest.NoBubblewrap.class)
class MissingBubblewrapTest {

  public static class NoBubblewrap implements QuarkusTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return Map.of("corral.sandbox.local.bwrap", "/nonexistent/bwrap");
    }
  }

  @GrpcClient("corral")
  SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  @Test
  void provisioningSaysHowToInstallBubblewrapAndRecordsNothing() {
    // When
    StatusRuntimeException failure =
        catchThrowableOfType(
            StatusRuntimeException.class,
            () -> sandboxes.provision(ProvisionRequest.getDefaultInstance()));

    // Then
    assertThat(failure.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(failure.getStatus().getDescription())
        .contains("bubblewrap is not installed")
        .contains("apt-get install -y bubblewrap");
    assertThat(
            sandboxes
                .listSandboxes(ListSandboxesRequest.newBuilder().setIncludeEnded(true).build())
                .getSandboxesCount())
        .isZero();
  }
}
