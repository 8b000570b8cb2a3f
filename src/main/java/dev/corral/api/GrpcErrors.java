package dev.corral.api;

import com.google.protobuf.Any;
import com.google.rpc.BadRequest;
import com.google.rpc.Code;
import dev.corral.common.AlreadyExistsException;
import dev.corral.common.ConflictException;
import dev.corral.common.CorralException;
import dev.corral.common.FailedPreconditionException;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.NotFoundException;
import dev.corral.common.PermissionDeniedException;
import dev.corral.common.ResourceExhaustedException;
import dev.corral.common.UnauthenticatedException;
import dev.corral.common.UnavailableException;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.quarkus.grpc.ExceptionHandler;
import io.quarkus.grpc.ExceptionHandlerProvider;
import io.vertx.pgclient.PgException;
import io.vertx.sqlclient.ClosedConnectionException;
import jakarta.enterprise.context.ApplicationScoped;
import java.net.ConnectException;
import java.util.UUID;
import org.jboss.logging.Logger;

/**
 * The one place where failures become gRPC statuses. Domain exceptions map to their status with
 * their (client-safe) message; database outages become UNAVAILABLE; anything else is INTERNAL with
 * a reference that points to the server log. No class name or stack trace reaches the wire.
 */
@ApplicationScoped
public class GrpcErrors implements ExceptionHandlerProvider {

  private static final Logger LOGGER = Logger.getLogger(GrpcErrors.class);
  private static final int MAX_MESSAGE = 1024;

  @Override
  public <ReqT, RespT> ExceptionHandler<ReqT, RespT> createHandler(
      ServerCall.Listener<ReqT> listener, ServerCall<ReqT, RespT> call, Metadata metadata) {
    return new ExceptionHandler<>(listener, call, metadata) {
      @Override
      protected void handleException(
          Throwable failure, ServerCall<ReqT, RespT> call, Metadata metadata) {
        StatusRuntimeException status = toStatus(failure);
        Metadata trailers = status.getTrailers() == null ? new Metadata() : status.getTrailers();
        call.close(status.getStatus(), trailers);
      }
    };
  }

  @Override
  public Throwable transform(Throwable failure) {
    return toStatus(failure);
  }

  /** The status a client sees for {@code failure}. */
  public static StatusRuntimeException toStatus(Throwable failure) {
    Throwable cause = unwrap(failure);
    if (cause instanceof StatusRuntimeException status) {
      return status;
    }
    if (cause instanceof StatusException status) {
      return new StatusRuntimeException(status.getStatus(), status.getTrailers());
    }
    if (cause instanceof InvalidArgumentException invalid) {
      return badRequest(invalid);
    }
    if (cause instanceof CorralException known) {
      return domain(known);
    }
    if (isDatabaseOutage(cause)) {
      LOGGER.warnf("Database unavailable: %s", cause.getMessage());
      return Status.UNAVAILABLE
          .withDescription("the database is unavailable; retry later")
          .asRuntimeException();
    }
    if (isPoolWait(cause)) {
      // every connection of the pool stayed busy for as long as a caller may wait for one
      LOGGER.warnf("No database connection came free in time");
      return Status.UNAVAILABLE
          .withDescription("the database is busy: no connection came free in time; retry later")
          .asRuntimeException();
    }
    if (cause instanceof PgException pg && QUERY_CANCELED.equals(pg.getSqlState())) {
      // corral.database.statement-timeout ran out (or an operator cancelled the statement); the
      // statement's transaction was rolled back
      LOGGER.warnf("Statement cancelled: %s", pg.getMessage());
      return Status.UNAVAILABLE
          .withDescription(
              "the database did not finish in time; the statement was rolled back, retry later")
          .asRuntimeException();
    }
    if (cause instanceof PgException pg
        && pg.getSqlState() != null
        && pg.getSqlState().startsWith("40")) {
      return Status.ABORTED
          .withDescription("the transaction lost a race; retry")
          .asRuntimeException();
    }
    String reference = UUID.randomUUID().toString();
    LOGGER.errorf(cause, "Unexpected failure, reference %s", reference);
    return Status.INTERNAL
        .withDescription("internal error; reference " + reference)
        .asRuntimeException();
  }

  private static StatusRuntimeException domain(CorralException known) {
    Status status;
    if (known instanceof NotFoundException) {
      status = Status.NOT_FOUND;
    } else if (known instanceof ConflictException) {
      status = Status.ABORTED;
    } else if (known instanceof AlreadyExistsException) {
      status = Status.ALREADY_EXISTS;
    } else if (known instanceof FailedPreconditionException) {
      status = Status.FAILED_PRECONDITION;
    } else if (known instanceof ResourceExhaustedException) {
      status = Status.RESOURCE_EXHAUSTED;
    } else if (known instanceof UnavailableException) {
      status = Status.UNAVAILABLE;
    } else if (known instanceof UnauthenticatedException) {
      status = Status.UNAUTHENTICATED;
    } else if (known instanceof PermissionDeniedException) {
      status = Status.PERMISSION_DENIED;
    } else {
      status = Status.INTERNAL;
    }
    return status.withDescription(bounded(known.getMessage())).asRuntimeException();
  }

  /** INVALID_ARGUMENT with a google.rpc.BadRequest detail naming the field. */
  private static StatusRuntimeException badRequest(InvalidArgumentException invalid) {
    BadRequest detail =
        BadRequest.newBuilder()
            .addFieldViolations(
                BadRequest.FieldViolation.newBuilder()
                    .setField(bounded(invalid.field()))
                    .setDescription(bounded(invalid.getMessage())))
            .build();
    return StatusProto.toStatusRuntimeException(
        com.google.rpc.Status.newBuilder()
            .setCode(Code.INVALID_ARGUMENT_VALUE)
            .setMessage(bounded(invalid.getMessage()))
            .addDetails(Any.pack(detail))
            .build());
  }

  /**
   * A message that fits in the trailers: a client refuses headers over 8 KiB (a stream error the
   * caller reads as INTERNAL), and a message may quote the caller's input. It is weighed as it
   * travels: {@code grpc-message} is percent-encoded, so a character outside printable ASCII costs
   * three bytes per byte of its UTF-8 (a CJK character 9), and a bad request's details carry it
   * twice more.
   */
  public static String bounded(String message) {
    if (message == null) {
      return null;
    }
    int cost = 0;
    int end = 0;
    while (end < message.length()) {
      int codePoint = message.codePointAt(end);
      int bytes =
          codePoint >= 0x20 && codePoint < 0x7f && codePoint != '%' ? 1 : 3 * utf8Length(codePoint);
      if (cost + bytes > MAX_MESSAGE) {
        break;
      }
      cost += bytes;
      end += Character.charCount(codePoint);
    }
    if (end == message.length()) {
      return message;
    }
    return message.substring(0, end)
        + "… ("
        + message.codePointCount(end, message.length())
        + " more characters)";
  }

  private static int utf8Length(int codePoint) {
    return codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
  }

  private static Throwable unwrap(Throwable failure) {
    Throwable current = failure;
    while ((current instanceof java.util.concurrent.CompletionException
            || current instanceof io.smallrye.mutiny.CompositeException)
        && current.getCause() != null) {
      current = current.getCause();
    }
    return current;
  }

  private static final String QUERY_CANCELED = "57014";

  /**
   * The pool's wait for a connection ran out. The Vert.x SQL client says so in two ways, of no type
   * of their own: a statement run on the pool fails with "Timeout waiting for connection", a
   * connection asked of it (a transaction) with a bare "Timeout".
   */
  private static boolean isPoolWait(Throwable cause) {
    return (cause instanceof io.vertx.core.impl.NoStackTraceThrowable
            && "Timeout".equals(cause.getMessage()))
        || (cause instanceof io.vertx.core.VertxException
            && "Timeout waiting for connection".equals(cause.getMessage()));
  }

  private static boolean isDatabaseOutage(Throwable cause) {
    if (cause instanceof PgException pg) {
      String state = pg.getSqlState();
      return state != null
          && (state.startsWith("08") || state.startsWith("57P") || state.equals("53300"));
    }
    for (Throwable current = cause; current != null; current = current.getCause()) {
      if (current instanceof ConnectException || current instanceof ClosedConnectionException) {
        return true;
      }
    }
    return false;
  }
}
