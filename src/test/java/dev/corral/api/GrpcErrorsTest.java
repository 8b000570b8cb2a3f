package dev.corral.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import org.junit.jupiter.api.Test;

/** A failure corral does not know is INTERNAL, with a reference to its log and nothing more. */
class GrpcErrorsTest {

  @Test
  void anyOtherBareFailureIsStillInternalWithAReference() {
    Status status =
        GrpcErrors.toStatus(io.vertx.core.Future.failedFuture("something else").cause())
            .getStatus();

    assertThat(status.getCode()).isEqualTo(Status.Code.INTERNAL);
    assertThat(status.getDescription()).startsWith("internal error; reference ");
  }
}
