package dev.corral.api;

import com.google.protobuf.Message;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.StreamEventsResponse;
import io.grpc.ForwardingServerCallListener;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCallHandler;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.ServiceDescriptor;
import io.grpc.StatusRuntimeException;
import java.util.Map;

/**
 * Rewrites a bound service: every request decoder reports bad bytes as INVALID_ARGUMENT ({@link
 * Utf8CheckedMarshaller}), a stream's events are written once per event loop ({@link
 * SharedEventMarshaller}), and chosen methods get their own handlers (flow-controlled streams, a
 * cancellable Execute). Schema descriptors are kept, so reflection still describes the service.
 */
final class ServiceDefinitions {

  private ServiceDefinitions() {}

  static ServerServiceDefinition rewrite(
      ServerServiceDefinition bound, Map<String, ServerCallHandler<?, ?>> replacedHandlers) {
    ServiceDescriptor original = bound.getServiceDescriptor();
    ServiceDescriptor.Builder descriptor =
        ServiceDescriptor.newBuilder(original.getName())
            .setSchemaDescriptor(original.getSchemaDescriptor());
    java.util.List<ServerMethodDefinition<?, ?>> methods = new java.util.ArrayList<>();
    for (ServerMethodDefinition<?, ?> method : bound.getMethods()) {
      ServerMethodDefinition<?, ?> checked = checked(method, replacedHandlers);
      descriptor.addMethod(checked.getMethodDescriptor());
      methods.add(checked);
    }
    ServerServiceDefinition.Builder rewritten = ServerServiceDefinition.builder(descriptor.build());
    methods.forEach(rewritten::addMethod);
    return rewritten.build();
  }

  @SuppressWarnings("unchecked")
  private static <Req, Resp> ServerMethodDefinition<Req, Resp> checked(
      ServerMethodDefinition<Req, Resp> method,
      Map<String, ServerCallHandler<?, ?>> replacedHandlers) {
    MethodDescriptor<Req, Resp> descriptor = method.getMethodDescriptor();
    MethodDescriptor.Marshaller<Req> requests = descriptor.getRequestMarshaller();
    if (requests instanceof MethodDescriptor.PrototypeMarshaller<?> prototype
        && prototype.getMessagePrototype() instanceof Message) {
      requests =
          (MethodDescriptor.Marshaller<Req>)
              new Utf8CheckedMarshaller<>(
                  (MethodDescriptor.PrototypeMarshaller<Message>) prototype);
    }
    MethodDescriptor.Marshaller<Resp> responses = descriptor.getResponseMarshaller();
    if (responses instanceof MethodDescriptor.PrototypeMarshaller<?> prototype
        && prototype.getMessagePrototype() instanceof StreamEventsResponse) {
      responses =
          (MethodDescriptor.Marshaller<Resp>)
              new SharedEventMarshaller(
                  (MethodDescriptor.PrototypeMarshaller<StreamEventsResponse>) prototype);
    }
    MethodDescriptor<Req, Resp> rewritten = descriptor.toBuilder(requests, responses).build();
    ServerCallHandler<Req, Resp> handler =
        (ServerCallHandler<Req, Resp>)
            replacedHandlers.getOrDefault(
                descriptor.getFullMethodName(), method.getServerCallHandler());
    return ServerMethodDefinition.create(rewritten, rejectingUndecodable(handler));
  }

  /**
   * Closes a call whose request could not be decoded with INVALID_ARGUMENT; the service never sees
   * it. The call is closed once the client has sent all of its request: closing earlier makes the
   * transport reset the stream (PROTOCOL_ERROR, which the client reads as INTERNAL) while a large
   * request is still arriving.
   */
  private static <Req, Resp> ServerCallHandler<Req, Resp> rejectingUndecodable(
      ServerCallHandler<Req, Resp> handler) {
    return (call, headers) ->
        new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(
            handler.startCall(call, headers)) {
          private StatusRuntimeException rejected;

          @Override
          public void onMessage(Req message) {
            InvalidArgumentException problem = Utf8CheckedMarshaller.problemOf(message);
            if (problem == null) {
              super.onMessage(message);
            } else if (rejected == null) {
              rejected = GrpcErrors.toStatus(problem);
            }
          }

          @Override
          public void onHalfClose() {
            if (rejected == null) {
              super.onHalfClose();
            } else {
              call.close(rejected.getStatus(), rejected.getTrailers());
            }
          }
        };
  }
}
