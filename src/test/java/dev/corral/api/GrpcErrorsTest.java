package dev.corral.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import org.junit.jupiter.api.Test;

/** Failures that are nobody's mistake say so, and what to do. */
class GrpcErrorsTest {

  @Test
  void aPoolWithNoConnectionFreeInTimeIsUnavailableNotInternal() {
    // The Vert.x SQL pool fails a wait for a connection that ran out so (SqlConnectionPool's
    // request: Future.failedFuture("Timeout")): one tenant's reads could hold every connection
    Throwable waitedTooLong = io.vertx.core.Future.failedFuture("Timeout").cause();

    Status status = GrpcErrors.toStatus(waitedTooLong).getStatus();

    assertThat(status.getCode()).isEqualTo(Status.Code.UNAVAILABLE);
    assertThat(status.getDescription()).contains("no connection came free").contains("retry");
  }

  @Test
  void anyOtherBareFailureIsStillInternalWithAReference() {
    Status status =
        GrpcErrors.toStatus(io.vertx.core.Future.failedFuture("something else").cause())
            .getStatus();

    assertThat(status.getCode()).isEqualTo(Status.Code.INTERNAL);
    assertThat(status.getDescription()).startsWith("internal error; reference ");
  }
}
