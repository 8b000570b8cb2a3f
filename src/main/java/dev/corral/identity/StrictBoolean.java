package dev.corral.identity;

import java.util.Locale;
import org.eclipse.microprofile.config.spi.Converter;

/**
 * A switch of security that takes {@code true} or {@code false} only. SmallRye's own boolean reads
 * {@code off}, {@code 0}, {@code no} and, with only a warning, any word it does not know as {@code
 * false}: a typo would turn authentication off. Here a start with any other value fails, naming the
 * setting.
 */
public class StrictBoolean implements Converter<Boolean> {

  @Override
  public Boolean convert(String value) {
    return parse(value)
        .orElseThrow(
            () ->
                new IllegalArgumentException("must be true or false, not '" + value.strip() + "'"));
  }

  /** {@code true} or {@code false} (any case, spaces around ignored); empty for anything else. */
  static java.util.Optional<Boolean> parse(String value) {
    String word = value == null ? "" : value.strip().toLowerCase(Locale.ROOT);
    return switch (word) {
      case "true" -> java.util.Optional.of(true);
      case "false" -> java.util.Optional.of(false);
      default -> java.util.Optional.empty();
    };
  }
}
