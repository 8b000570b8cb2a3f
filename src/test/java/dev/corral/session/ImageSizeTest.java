package dev.corral.session;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;

class ImageSizeTest {

  @Test
  void readsTheSizeOfImagesAsTheirEncodersWroteThem() throws IOException {
    for (String format : new String[] {"png", "jpeg", "gif"}) {
      ByteString image = encoded(format, 37, 11);

      assertThat(ImageSize.of("image/" + format, image)).as(format).contains(new ImageSize(37, 11));
    }
  }

  @Test
  void readsTheSizeOfEachKindOfWebp() {
    // VP8X: 24-bit width and height, each less one
    ByteString extended =
        webp("VP8X", new byte[] {0, 0, 0, 0, 0, 0, 0, 0, (byte) 0x3f, 0x1f, 0, 0x0f, 0, 0});
    assertThat(ImageSize.of("image/webp", extended)).contains(new ImageSize(8000, 16));

    // VP8L: a signature byte, then 14 bits of width and 14 of height, each less one
    long bits = (100 - 1) | ((long) (9000 - 1) << 14);
    ByteString lossless =
        webp(
            "VP8L",
            new byte[] {
              0,
              0,
              0,
              0,
              0x2f,
              (byte) bits,
              (byte) (bits >> 8),
              (byte) (bits >> 16),
              (byte) (bits >> 24)
            });
    assertThat(ImageSize.of("image/webp", lossless)).contains(new ImageSize(100, 9000));

    // VP8: a key frame's start code, then 14-bit width and height
    ByteString lossy =
        webp(
            "VP8 ",
            new byte[] {0, 0, 0, 0, 0, 0, 0, (byte) 0x9d, 0x01, 0x2a, 0x40, 0x01, (byte) 0xf0, 0});
    assertThat(ImageSize.of("image/webp", lossy)).contains(new ImageSize(320, 240));
  }

  @Test
  void aHeaderCutShortOrDamagedHasNoSize() throws IOException {
    ByteString png = encoded("png", 5, 5);
    assertThat(ImageSize.of("image/png", png.substring(0, 20))).isEmpty();
    ByteString junk =
        png.substring(0, 8).concat(ByteString.copyFromUtf8("this is not a PNG at all, really"));
    assertThat(ImageSize.of("image/png", junk)).isEmpty();
    ByteString jpeg = encoded("jpeg", 5, 5);
    assertThat(ImageSize.of("image/jpeg", jpeg.substring(0, 4))).isEmpty();
    assertThat(ImageSize.of("image/jpeg", ByteString.copyFrom(new byte[] {-1, -40, -1, -1, -1})))
        .isEmpty();
    assertThat(ImageSize.of("image/gif", ByteString.copyFromUtf8("GIF89a\0\0\0\0"))).isEmpty();
  }

  private static ByteString encoded(String format, int width, int height) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    assertThat(
            ImageIO.write(
                new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB), format, out))
        .isTrue();
    return ByteString.copyFrom(out.toByteArray());
  }

  private static ByteString webp(String chunk, byte[] payload) {
    return ByteString.copyFromUtf8("RIFF\0\0\0\0WEBP" + chunk).concat(ByteString.copyFrom(payload));
  }
}
