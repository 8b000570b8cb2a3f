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
 * of the transport's generic INTERNAL, and so that no string field of any request holds NUL, which
 * PostgreSQL's text cannot store.
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
    Descriptor type = prototype.getDescriptorForType();
    String problem;
    try {
      // Fields this schema does not know are dropped, at every depth: stored in the log, they
      // would be served back and could stop parsing once a later schema gives their numbers a type.
      T request = withoutUnknownFields((T) prototype.getParserForType().parseFrom(bytes));
      // No string can hold NUL if no byte is 0 (the common case: no scan).
      String withNul =
          hasZeroByte(bytes) ? fieldWith(type, bytes, Utf8CheckedMarshaller::hasNul) : null;
      if (withNul != null) {
        problem =
            withNul
                + SEPARATOR
                + "must not contain the NUL character (U+0000), which PostgreSQL cannot store";
      } else {
        problem = unknownEnumValue(request, "");
        if (problem == null) {
          return request; // holds no unknown field, so no marker a client forged
        }
      }
    } catch (InvalidProtocolBufferException e) {
      String field = fieldWith(type, bytes, value -> !value.isValidUtf8());
      problem =
          field == null
              ? "request" + SEPARATOR + "is not a valid " + type.getFullName() + " message"
              : field + SEPARATOR + "is not valid UTF-8";
    }
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

  /**
   * {@code message} without unknown fields at any depth: itself when it has none, else rebuilt
   * along the paths that hold some (one walk).
   */
  @SuppressWarnings("unchecked")
  static <M extends Message> M withoutUnknownFields(M message) {
    Message.Builder builder = null;
    if (!message.getUnknownFields().asMap().isEmpty()) {
      builder = message.toBuilder().setUnknownFields(UnknownFieldSet.getDefaultInstance());
    }
    for (var entry : message.getAllFields().entrySet()) {
      FieldDescriptor field = entry.getKey();
      if (field.getJavaType() != FieldDescriptor.JavaType.MESSAGE) {
        continue;
      }
      if (field.isRepeated()) {
        java.util.List<?> values = (java.util.List<?>) entry.getValue();
        for (int i = 0; i < values.size(); i++) {
          Message value = (Message) values.get(i);
          Message clean = withoutUnknownFields(value);
          if (clean != value) {
            builder = builder != null ? builder : message.toBuilder();
            builder.setRepeatedField(field, i, clean);
          }
        }
      } else {
        Message value = (Message) entry.getValue();
        Message clean = withoutUnknownFields(value);
        if (clean != value) {
          builder = builder != null ? builder : message.toBuilder();
          builder.setField(field, clean);
        }
      }
    }
    return builder == null ? message : (M) builder.build();
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
    return fieldWith(type, bytes, value -> !value.isValidUtf8());
  }

  /** The path of the first string field whose bytes match {@code bad}, or null. */
  private static String fieldWith(
      Descriptor type, byte[] bytes, java.util.function.Predicate<ByteString> bad) {
    try {
      return scan(type, CodedInputStream.newInstance(bytes), "", bad);
    } catch (IOException e) {
      return null;
    }
  }

  /** Whether messages of each type hold an enum field, at any depth (computed once per type). */
  private static final java.util.concurrent.ConcurrentHashMap<Descriptor, Boolean> HAS_ENUMS =
      new java.util.concurrent.ConcurrentHashMap<>();

  /** "path" + SEPARATOR + why, for the first enum field set to a number the schema lacks. */
  private static String unknownEnumValue(Message message, String path) {
    if (!hasEnums(message.getDescriptorForType(), new java.util.HashSet<>())) {
      return null;
    }
    for (var entry : message.getAllFields().entrySet()) {
      FieldDescriptor field = entry.getKey();
      String fieldPath = path + field.getName();
      java.util.List<?> values =
          field.isRepeated()
              ? (java.util.List<?>) entry.getValue()
              : java.util.List.of(entry.getValue());
      for (int i = 0; i < values.size(); i++) {
        String at =
            field.isRepeated() && !field.isMapField() ? fieldPath + "[" + i + "]" : fieldPath;
        Object value = values.get(i);
        if (value instanceof com.google.protobuf.Descriptors.EnumValueDescriptor enumValue
            && enumValue.getIndex() < 0) {
          return at
              + SEPARATOR
              + enumValue.getNumber()
              + " is not a value of "
              + field.getEnumType().getName();
        }
        if (value instanceof Message nested) {
          String found = unknownEnumValue(nested, at + ".");
          if (found != null) {
            return found;
          }
        }
      }
    }
    return null;
  }

  private static boolean hasEnums(Descriptor type, java.util.Set<Descriptor> seen) {
    Boolean known = HAS_ENUMS.get(type);
    if (known != null) {
      return known;
    }
    if (!seen.add(type)) {
      return false; // a recursive type: decided where the cycle started
    }
    boolean has = false;
    for (FieldDescriptor field : type.getFields()) {
      if (field.getJavaType() == FieldDescriptor.JavaType.ENUM
          || (field.getJavaType() == FieldDescriptor.JavaType.MESSAGE
              && hasEnums(field.getMessageType(), seen))) {
        has = true;
      }
    }
    HAS_ENUMS.put(type, has);
    return has;
  }

  private static boolean hasZeroByte(byte[] bytes) {
    for (byte b : bytes) {
      if (b == 0) {
        return true;
      }
    }
    return false;
  }

  private static boolean hasNul(ByteString value) {
    for (int i = 0; i < value.size(); i++) {
      if (value.byteAt(i) == 0) {
        return true;
      }
    }
    return false;
  }

  private static String scan(
      Descriptor type,
      CodedInputStream input,
      String path,
      java.util.function.Predicate<ByteString> bad)
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
        if (bad.test(input.readBytes())) {
          return fieldPath;
        }
      } else if (field.getType() == FieldDescriptor.Type.MESSAGE) {
        int limit = input.pushLimit(input.readRawVarint32());
        String found = scan(field.getMessageType(), input, fieldPath + ".", bad);
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
