package dev.corral.testing;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptors;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Calls any RPC with a chosen credential and reports how it ended: OK once the first answer arrives
 * (a stream is then cancelled), or the status it was closed with.
 */
public final class Calls {

  private Calls() {}

  /** The outcome of one call. */
  public record Outcome(Status.Code code, String message) {

    @Override
    public String toString() {
      return code + (message == null ? "" : ": " + message);
    }
  }

  /**
   * Calls {@code method} with {@code request}, sending {@code authorization} as the whole
   * authorization value (null: none).
   */
  public static <Q, R> Outcome call(
      Channel channel, MethodDescriptor<Q, R> method, Q request, String authorization) {
    Channel target =
        authorization == null
            ? channel
            : ClientInterceptors.intercept(channel, rawAuthorization(authorization));
    ClientCall<Q, R> call =
        target.newCall(method, CallOptions.DEFAULT.withDeadlineAfter(20, TimeUnit.SECONDS));
    CompletableFuture<Outcome> outcome = new CompletableFuture<>();
    call.start(
        new ClientCall.Listener<>() {
          @Override
          public void onMessage(R message) {
            outcome.complete(new Outcome(Status.Code.OK, null));
          }

          @Override
          public void onClose(Status status, Metadata trailers) {
            outcome.complete(new Outcome(status.getCode(), status.getDescription()));
          }
        },
        new Metadata());
    call.request(1);
    call.sendMessage(request);
    call.halfClose();
    try {
      return outcome.get(30, TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new IllegalStateException("no answer from " + method.getFullMethodName(), e);
    } finally {
      call.cancel("done", null);
    }
  }

  private static io.grpc.ClientInterceptor rawAuthorization(String value) {
    return new io.grpc.ClientInterceptor() {
      @Override
      public <Q, R> ClientCall<Q, R> interceptCall(
          MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
        return new io.grpc.ForwardingClientCall.SimpleForwardingClientCall<>(
            next.newCall(method, options)) {
          @Override
          public void start(Listener<R> listener, Metadata headers) {
            headers.put(TestCredentials.AUTHORIZATION, value);
            super.start(listener, headers);
          }
        };
      }
    };
  }
}
