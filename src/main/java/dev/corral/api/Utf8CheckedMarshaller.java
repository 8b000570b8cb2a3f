package dev.corral.api;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.UnknownFieldSet;
import com.google.protobuf.WireFormat;
import dev.corral.common.InvalidArgumentException;
import io.grpc.MethodDescriptor;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/**
 * Decodes requests so that bytes the protobuf runtime refuses become INVALID_ARGUMENT naming the
 * field (for instance {@code event.user_message.content[0].text.text: is not valid UTF-8}) instead
 * of the transport's generic INTERNAL.
 *
 * <p>The Vert.x transport drops a request whose decoder throws and then fails the call with
 * "Half-closed without a request". So this decoder never throws: it returns an empty request
 * carrying the problem in an unknown field, and {@link ServiceDefinitions} closes such calls with
 * INVALID_ARGUMENT before they reach the service.
 */
final class Utf8CheckedMarshaller<T extends Message>
    implements MethodDescriptor.PrototypeMarshaller<T> {

  /** The largest field number protobuf allows; no corral message uses it. */
  private static final int PROBLEM_FIELD = (1 << 29) - 1;

  private static final char SEPARATOR = '\u0000';

  private final MethodDescriptor.PrototypeMarshaller<T> delegate;

  Utf8CheckedMarshaller(MethodDescriptor.PrototypeMarshaller<T> delegate) {
    this.delegate = delegate;
  }

  @Override
  public InputStream stream(T value) {
    return delegate.stream(value);
  }

  @Override
  @SuppressWarnings("unchecked")
  public T parse(InputStream stream) {
    byte[] bytes;
    try {
      bytes = stream.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    T prototype = delegate.getMessagePrototype();
    try {
      return (T) prototype.getParserForType().parseFrom(bytes);
    } catch (InvalidProtocolBufferException e) {
      String field = invalidUtf8Field(prototype.getDescriptorForType(), bytes);
      String problem =
          field == null
              ? "request"
                  + SEPARATOR
                  + "is not a valid "
                  + prototype.getDescriptorForType().getFullName()
                  + " message"
              : field + SEPARATOR + "is not valid UTF-8";
      UnknownFieldSet marker =
          UnknownFieldSet.newBuilder()
              .addField(
                  PROBLEM_FIELD,
                  UnknownFieldSet.Field.newBuilder()
                      .addLengthDelimited(ByteString.copyFromUtf8(problem))
                      .build())
              .build();
      return (T) prototype.toBuilder().setUnknownFields(marker).build();
    }
  }

  /** Why {@code request} could not be decoded, or null if it was. */
  static InvalidArgumentException problemOf(Object request) {
    if (request instanceof Message message && message.getUnknownFields().hasField(PROBLEM_FIELD)) {
      String problem =
          message
              .getUnknownFields()
              .getField(PROBLEM_FIELD)
              .getLengthDelimitedList()
              .get(0)
              .toStringUtf8();
      int separator = problem.indexOf(SEPARATOR);
      return new InvalidArgumentException(
          problem.substring(0, separator), problem.substring(separator + 1));
    }
    return null;
  }

  @Override
  public T getMessagePrototype() {
    return delegate.getMessagePrototype();
  }

  @Override
  public Class<T> getMessageClass() {
    return delegate.getMessageClass();
  }

  /** The path of the first string field whose bytes are not UTF-8, or null. */
  static String invalidUtf8Field(Descriptor type, byte[] bytes) {
    try {
      return scan(type, CodedInputStream.newInstance(bytes), "");
    } catch (IOException e) {
      return null;
    }
  }

  private static String scan(Descriptor type, CodedInputStream input, String path)
      throws IOException {
    java.util.Map<Integer, Integer> repeats = new java.util.HashMap<>();
    while (!input.isAtEnd()) {
      int tag = input.readTag();
      FieldDescriptor field = type.findFieldByNumber(WireFormat.getTagFieldNumber(tag));
      if (field == null || WireFormat.getTagWireType(tag) != WireFormat.WIRETYPE_LENGTH_DELIMITED) {
        input.skipField(tag);
        continue;
      }
      String fieldPath = path + field.getName();
      if (field.isRepeated() && !field.isMapField()) {
        int index = repeats.merge(field.getNumber(), 1, Integer::sum) - 1;
        fieldPath += "[" + index + "]";
      }
      if (field.getType() == FieldDescriptor.Type.STRING) {
        if (!input.readBytes().isValidUtf8()) {
          return fieldPath;
        }
      } else if (field.getType() == FieldDescriptor.Type.MESSAGE) {
        int limit = input.pushLimit(input.readRawVarint32());
        String found = scan(field.getMessageType(), input, fieldPath + ".");
        if (found != null) {
          return found;
        }
        input.popLimit(limit);
      } else {
        input.skipField(tag);
      }
    }
    return null;
  }
}
