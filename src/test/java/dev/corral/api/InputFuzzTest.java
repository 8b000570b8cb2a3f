package dev.corral.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.EnumValueDescriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Descriptors.MethodDescriptor;
import com.google.protobuf.Descriptors.ServiceDescriptor;
import com.google.protobuf.DynamicMessage;
import dev.corral.proto.v1.AgentProto;
import dev.corral.proto.v1.EnvironmentProto;
import dev.corral.proto.v1.HarnessProto;
import dev.corral.proto.v1.SandboxProto;
import dev.corral.proto.v1.SessionProto;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.Metadata;
import io.grpc.Status;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Generated requests for every RPC of every service, built from the .proto descriptors alone, the
 * way an adversarial client would send them: every string field drawn from NUL, invalid-looking
 * ids, malformed and oversized JSON, control characters, huge and tiny values; numbers at their
 * extremes, enum values that do not exist, nested messages and repeated fields filled at random. No
 * answer may be INTERNAL or UNKNOWN, nor name a Java class. Seeded, so a failure replays.
 */
@QuarkusTest
class InputFuzzTest {

  private static final long SEED = Long.getLong("corral.fuzz.seed", 20261202L);
  private static final int REQUESTS_PER_METHOD = 40;

  private static final List<String> STRINGS =
      List.of(
          "",
          "\u0000",
          "title\u0000with nul",
          "a",
          " ",
          "\t\n\r",
          "\u0007bell\u001b[31m",
          "é日本語🙂",
          "\u202eevil",
          "x".repeat(70_000),
          "agent_",
          "agent_0000000000000000000000",
          "sesn_01jzzzzzzzzzzzzzzzzzzzzzzz",
          "sevt_01jzzzzzzzzzzzzzzzzzzzzzzz",
          "sbx_01jzzzzzzzzzzzzzzzzzzzzzzz",
          "env_01jzzzzzzzzzzzzzzzzzzzzzzz",
          "../../etc/passwd",
          "'; DROP TABLE events; --",
          "%s%n%x",
          "${jndi:ldap://x}",
          "{}",
          "[]",
          "null",
          "{\"type\":\"object\"}",
          "{\"type\":\"object\"} trailing",
          "{\"type\":\"object\"}{}",
          "{\"a\":1,\"a\":2}",
          "{\"a\":\"\\u0000\"}",
          "{\"command\":\"echo hi\"}",
          "{\"n\":" + "9".repeat(3_000) + "}",
          "{\"n\":1e999999}",
          "[".repeat(3_000) + "]".repeat(3_000),
          "{\"a\":".repeat(1_500) + "1" + "}".repeat(1_500),
          "{\"a\":",
          "\"just a string\"",
          "claude-test",
          "bash",
          "text/plain",
          "-1",
          "99999999999999999999");

  @GrpcClient("corral")
  Channel channel;

  @GrpcClient("corral")
  dev.corral.proto.v1.AgentServiceGrpc.AgentServiceBlockingStub agents;

  @GrpcClient("corral")
  dev.corral.proto.v1.SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  dev.corral.proto.v1.EnvironmentServiceGrpc.EnvironmentServiceBlockingStub environments;

  /** Real ids, so that requests also get past "not found" to the checks behind it. */
  private final java.util.Map<String, String> realIds = new java.util.HashMap<>();

  @Test
  void noGeneratedRequestToAnyRpcGetsInternalOrUnknown() throws Exception {
    Random random = new Random(SEED);
    dev.corral.proto.v1.Session session =
        dev.corral.testing.Fixtures.createSession(agents, sessions);
    realIds.put("agent_id", session.getAgent().getId());
    realIds.put("session_id", session.getId());
    realIds.put(
        "environment_id",
        environments
            .createEnvironment(
                dev.corral.proto.v1.CreateEnvironmentRequest.newBuilder()
                    .setName("fuzzed")
                    .setDriver(dev.corral.proto.v1.SandboxDriver.SANDBOX_DRIVER_LOCAL)
                    .build())
            .getEnvironment()
            .getId());
    realIds.put("model", "claude-test");
    List<String> failures = new ArrayList<>();
    int calls = 0;
    for (ServiceDescriptor service :
        List.of(
                AgentProto.getDescriptor().getServices(),
                EnvironmentProto.getDescriptor().getServices(),
                SessionProto.getDescriptor().getServices(),
                SandboxProto.getDescriptor().getServices(),
                HarnessProto.getDescriptor().getServices(),
                dev.corral.proto.v1.IdentityProto.getDescriptor().getServices(),
                dev.corral.proto.v1.VaultProto.getDescriptor().getServices())
            .stream()
            .flatMap(List::stream)
            .toList()) {
      for (MethodDescriptor method : service.getMethods()) {
        for (int i = 0; i < REQUESTS_PER_METHOD; i++) {
          DynamicMessage request = message(method.getInputType(), random, 0);
          Status status = call(method, request);
          calls++;
          if (status.getCode() == Status.Code.INTERNAL
              || status.getCode() == Status.Code.UNKNOWN
              || String.valueOf(status.getDescription())
                  .matches("(?s).*\\b(java|io|dev|com)\\.[a-z]+\\..*")) {
            failures.add(
                method.getFullName()
                    + " -> "
                    + status.getCode()
                    + ": "
                    + status.getDescription()
                    + "\n  request: "
                    + abbreviate(request.toString()));
          }
        }
      }
    }
    assertThat(calls).isGreaterThan(500);
    assertThat(failures).as("seed %d", SEED).isEmpty();
  }

  /** Sends one request; the status it ends with (a stream is cut after its first answer). */
  private Status call(MethodDescriptor method, DynamicMessage request) throws Exception {
    io.grpc.MethodDescriptor<DynamicMessage, byte[]> descriptor =
        io.grpc.MethodDescriptor.<DynamicMessage, byte[]>newBuilder()
            .setType(
                method.isServerStreaming()
                    ? io.grpc.MethodDescriptor.MethodType.SERVER_STREAMING
                    : io.grpc.MethodDescriptor.MethodType.UNARY)
            .setFullMethodName(
                io.grpc.MethodDescriptor.generateFullMethodName(
                    method.getService().getFullName(), method.getName()))
            .setRequestMarshaller(new DynamicMarshaller(method.getInputType()))
            .setResponseMarshaller(new dev.corral.testing.RawCalls.Bytes())
            .build();
    ClientCall<DynamicMessage, byte[]> call =
        channel.newCall(descriptor, CallOptions.DEFAULT.withDeadlineAfter(10, TimeUnit.SECONDS));
    CompletableFuture<Status> closed = new CompletableFuture<>();
    call.start(
        new ClientCall.Listener<>() {
          @Override
          public void onMessage(byte[] message) {
            if (method.isServerStreaming()) {
              call.cancel("the fuzz test has seen enough", null);
            }
          }

          @Override
          public void onClose(Status status, Metadata trailers) {
            closed.complete(status);
          }
        },
        new Metadata());
    call.request(Integer.MAX_VALUE);
    call.sendMessage(request);
    call.halfClose();
    Status status = closed.get(20, TimeUnit.SECONDS);
    return status.getCode() == Status.Code.CANCELLED ? Status.OK : status;
  }

  private DynamicMessage message(Descriptor type, Random random, int depth) {
    DynamicMessage.Builder message = DynamicMessage.newBuilder(type);
    for (FieldDescriptor field : type.getFields()) {
      if (random.nextInt(3) == 0) {
        continue; // left unset
      }
      if (field.isRepeated()) {
        int count = random.nextInt(4);
        for (int i = 0; i < count; i++) {
          Object value = value(field, random, depth);
          if (value != null) {
            message.addRepeatedField(field, value);
          }
        }
      } else {
        Object value = value(field, random, depth);
        if (value != null) {
          message.setField(field, value);
        }
      }
    }
    return message.build();
  }

  private Object value(FieldDescriptor field, Random random, int depth) {
    String real = realIds.get(field.getName());
    if (real != null && random.nextInt(3) > 0) {
      return real;
    }
    return switch (field.getJavaType()) {
      case STRING -> STRINGS.get(random.nextInt(STRINGS.size()));
      case INT -> pick(random, 0, 1, -1, 7, 100, 1_000_000, Integer.MAX_VALUE, Integer.MIN_VALUE);
      case LONG -> pick(random, 0L, 1L, -1L, 5L, 1L << 40, Long.MAX_VALUE, Long.MIN_VALUE);
      case BOOLEAN -> random.nextBoolean();
      case FLOAT -> pick(random, 0f, -1f, Float.NaN, Float.MAX_VALUE);
      case DOUBLE -> pick(random, 0d, -1d, Double.NaN, Double.POSITIVE_INFINITY, 1e300);
      case BYTE_STRING -> ByteString.copyFrom(new byte[random.nextInt(3) == 0 ? 0 : 16]);
      case ENUM -> {
        List<EnumValueDescriptor> values = field.getEnumType().getValues();
        yield random.nextInt(5) == 0
            ? field.getEnumType().findValueByNumberCreatingIfUnknown(9_999)
            : values.get(random.nextInt(values.size()));
      }
      case MESSAGE -> {
        if (depth >= 4) {
          yield null;
        }
        if (field.getMessageType().getFullName().equals("google.protobuf.Timestamp")) {
          yield DynamicMessage.newBuilder(field.getMessageType())
              .setField(
                  field.getMessageType().findFieldByName("seconds"),
                  pick(random, 0L, -1L, 253_402_300_800L, Long.MAX_VALUE))
              .build();
        }
        yield message(field.getMessageType(), random, depth + 1);
      }
    };
  }

  @SafeVarargs
  private static <T> T pick(Random random, T... values) {
    return values[random.nextInt(values.length)];
  }

  private static String abbreviate(String text) {
    String oneLine = text.replace('\n', ' ');
    return oneLine.length() > 400 ? oneLine.substring(0, 400) + "…" : oneLine;
  }

  private static final class DynamicMarshaller
      implements io.grpc.MethodDescriptor.Marshaller<DynamicMessage> {
    @Override
    public InputStream stream(DynamicMessage value) {
      return new ByteArrayInputStream(value.toByteArray());
    }

    private final Descriptor type;

    DynamicMarshaller(Descriptor type) {
      this.type = type;
    }

    @Override
    public DynamicMessage parse(InputStream stream) {
      try {
        return DynamicMessage.parseFrom(type, stream);
      } catch (java.io.IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    }
  }
}
