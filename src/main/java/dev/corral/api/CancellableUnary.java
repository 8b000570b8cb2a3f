package dev.corral.api;

import dev.corral.common.VertxContexts;
import io.grpc.ServerCallHandler;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.ServerCalls;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.Cancellable;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;

/**
 * Bridges a {@link Uni} to a unary call that stops when its client gives up: a cancel cancels the
 * Uni, whether the client reset its stream (as gRPC clients do when their deadline passes; the
 * server side sees no deadline of its own) or its connection closed ({@link ConnectionCloses}).
 * Quarkus' unary bridge subscribes without a cancel handler, so an {@code Execute} whose client had
 * gone ran on to its time limit, against the proto's promise. The answer is written on the call's
 * context.
 */
final class CancellableUnary {

  private CancellableUnary() {}

  /** A handler that answers each request with what {@code service} returns. */
  static <Req, Resp> ServerCallHandler<Req, Resp> handler(Function<Req, Uni<Resp>> service) {
    return ServerCalls.asyncUnaryCall(
        (request, responses) -> {
          ServerCallStreamObserver<Resp> observer = (ServerCallStreamObserver<Resp>) responses;
          Context context = Vertx.currentContext();
          AtomicReference<Cancellable> running = new AtomicReference<>();
          Runnable cancel =
              () -> {
                Cancellable call = running.getAndSet(() -> {});
                if (call != null) {
                  call.cancel();
                }
              };
          observer.setOnCancelHandler(cancel);
          Uni<Resp> answer;
          try {
            answer = service.apply(request);
          } catch (RuntimeException failure) {
            observer.onError(GrpcErrors.toStatus(failure));
            return;
          }
          Cancellable subscription =
              answer
                  .subscribe()
                  .with(
                      item ->
                          VertxContexts.runOn(
                              context,
                              () -> {
                                observer.onNext(item);
                                observer.onCompleted();
                              }),
                      failure ->
                          VertxContexts.runOn(
                              context, () -> observer.onError(GrpcErrors.toStatus(failure))));
          if (!running.compareAndSet(null, subscription)) {
            subscription.cancel(); // cancelled while it was being subscribed
          }
        });
  }
}
