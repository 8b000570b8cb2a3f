package dev.corral.session;

import com.google.protobuf.ByteString;
import java.util.Optional;

/**
 * The width and height an image's header declares, read without decoding its pixels: PNG, GIF, JPEG
 * and WebP, the types the model takes. Empty when the header is cut short or damaged.
 */
record ImageSize(int width, int height) {

  static Optional<ImageSize> of(String mediaType, ByteString data) {
    try {
      return switch (mediaType) {
        case "image/png" -> png(data);
        case "image/gif" -> gif(data);
        case "image/jpeg" -> jpeg(data);
        case "image/webp" -> webp(data);
        default -> Optional.empty();
      };
    } catch (IndexOutOfBoundsException cutShort) {
      return Optional.empty();
    }
  }

  /** The IHDR chunk comes first: its width and height are 4 bytes each, big-endian. */
  private static Optional<ImageSize> png(ByteString data) {
    if (!data.substring(12, 16).toStringUtf8().equals("IHDR")) {
      return Optional.empty();
    }
    return sized(bigEndian(data, 16, 4), bigEndian(data, 20, 4));
  }

  /** The logical screen: width and height of 2 bytes each, little-endian, after the signature. */
  private static Optional<ImageSize> gif(ByteString data) {
    return sized(littleEndian(data, 6, 2), littleEndian(data, 8, 2));
  }

  /** Segments follow the start marker; a start-of-frame segment holds the height, then width. */
  private static Optional<ImageSize> jpeg(ByteString data) {
    int at = 2;
    while (true) {
      if (byteAt(data, at) != 0xff) {
        return Optional.empty();
      }
      int marker = byteAt(data, at + 1);
      if (marker == 0xff) { // fill bytes before a marker
        at++;
        continue;
      }
      if (marker == 0xd8 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
        at += 2; // markers without a length
        continue;
      }
      if (marker == 0xd9 || marker == 0xda) { // end of image, or scan data before any frame
        return Optional.empty();
      }
      int length = (int) bigEndian(data, at + 2, 2);
      if (length < 2) {
        return Optional.empty();
      }
      boolean frame =
          marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc;
      if (frame) {
        return sized(bigEndian(data, at + 7, 2), bigEndian(data, at + 5, 2));
      }
      at += 2 + length;
    }
  }

  /** RIFF, then one of three kinds of first chunk, each with its own way of saying the size. */
  private static Optional<ImageSize> webp(ByteString data) {
    String chunk = data.substring(12, 16).toStringUtf8();
    switch (chunk) {
      case "VP8 " -> {
        // a key frame: 3 bytes of frame tag, 3 of start code, then 14-bit width and height
        if (byteAt(data, 23) != 0x9d || byteAt(data, 24) != 0x01 || byteAt(data, 25) != 0x2a) {
          return Optional.empty();
        }
        return sized(littleEndian(data, 26, 2) & 0x3fff, littleEndian(data, 28, 2) & 0x3fff);
      }
      case "VP8L" -> {
        if (byteAt(data, 20) != 0x2f) {
          return Optional.empty();
        }
        long bits = littleEndian(data, 21, 4);
        return sized((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1);
      }
      case "VP8X" -> {
        return sized(littleEndian(data, 24, 3) + 1, littleEndian(data, 27, 3) + 1);
      }
      default -> {
        return Optional.empty();
      }
    }
  }

  private static Optional<ImageSize> sized(long width, long height) {
    if (width <= 0 || height <= 0 || width > Integer.MAX_VALUE || height > Integer.MAX_VALUE) {
      return Optional.empty();
    }
    return Optional.of(new ImageSize((int) width, (int) height));
  }

  private static int byteAt(ByteString data, int at) {
    return data.byteAt(at) & 0xff;
  }

  private static long bigEndian(ByteString data, int at, int bytes) {
    long value = 0;
    for (int i = 0; i < bytes; i++) {
      value = (value << 8) | byteAt(data, at + i);
    }
    return value;
  }

  private static long littleEndian(ByteString data, int at, int bytes) {
    long value = 0;
    for (int i = bytes - 1; i >= 0; i--) {
      value = (value << 8) | byteAt(data, at + i);
    }
    return value;
  }
}
