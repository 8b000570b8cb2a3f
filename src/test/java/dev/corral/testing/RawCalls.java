package dev.corral.testing;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.MethodDescriptor;
import io.grpc.stub.ClientCalls;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/** Sends hand-made request bytes, which the generated stubs would never produce (invalid UTF-8). */
public final class RawCalls {

  private RawCalls() {}

  public static <Resp> Resp unary(
      Channel channel, MethodDescriptor<?, Resp> method, byte[] request) {
    MethodDescriptor<byte[], Resp> raw =
        MethodDescriptor.<byte[], Resp>newBuilder()
            .setType(MethodDescriptor.MethodType.UNARY)
            .setFullMethodName(method.getFullMethodName())
            .setRequestMarshaller(new Bytes())
            .setResponseMarshaller(method.getResponseMarshaller())
            .build();
    return ClientCalls.blockingUnaryCall(channel, raw, CallOptions.DEFAULT, request);
  }

  /**
   * {@code message} with every occurrence of {@code placeholder} replaced by the same number of
   * 0xFF bytes.
   */
  public static byte[] corrupt(byte[] message, String placeholder) {
    byte[] needle = placeholder.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    byte[] copy = message.clone();
    for (int i = 0; i + needle.length <= copy.length; i++) {
      if (java.util.Arrays.equals(copy, i, i + needle.length, needle, 0, needle.length)) {
        java.util.Arrays.fill(copy, i, i + needle.length, (byte) 0xFF);
      }
    }
    return copy;
  }

  /** Messages as their raw bytes. */
  public static final class Bytes implements MethodDescriptor.Marshaller<byte[]> {
    @Override
    public InputStream stream(byte[] value) {
      return new ByteArrayInputStream(value);
    }

    @Override
    public byte[] parse(InputStream stream) {
      try {
        return stream.readAllBytes();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }
}
