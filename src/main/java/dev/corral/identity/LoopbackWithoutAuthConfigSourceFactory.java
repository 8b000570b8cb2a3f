package dev.corral.identity;

import io.smallrye.config.ConfigSourceContext;
import io.smallrye.config.ConfigSourceFactory;
import io.smallrye.config.ConfigValue;
import io.smallrye.config.PropertiesConfigSource;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import org.eclipse.microprofile.config.spi.ConfigSource;

/**
 * With authentication off ({@code corral.auth.enabled=false}) the server listens on 127.0.0.1,
 * whatever {@code quarkus.http.host} says, unless {@code corral.auth.allow-remote-unauthenticated}
 * is true as well. Its ordinal is above the environment's and the system properties', so no other
 * setting of the host wins. A value of either that is neither {@code true} nor {@code false} keeps
 * the server on 127.0.0.1 here, and fails the start in {@link AuthConfig} ({@link StrictBoolean}).
 */
public class LoopbackWithoutAuthConfigSourceFactory implements ConfigSourceFactory {

  private static final int ORDINAL = 1000;

  @Override
  public Iterable<ConfigSource> getConfigSources(ConfigSourceContext context) {
    String enabled = value(context, "corral.auth.enabled");
    boolean on = enabled.isEmpty() || StrictBoolean.parse(enabled).orElse(false);
    if (on
        || StrictBoolean.parse(value(context, "corral.auth.allow-remote-unauthenticated"))
            .orElse(false)) {
      return List.of();
    }
    return List.of(
        new PropertiesConfigSource(
            Map.of("quarkus.http.host", "127.0.0.1"), "corral-loopback-without-auth", ORDINAL));
  }

  @Override
  public OptionalInt getPriority() {
    return OptionalInt.of(ORDINAL);
  }

  private static String value(ConfigSourceContext context, String name) {
    ConfigValue value = context.getValue(name);
    return value == null || value.getValue() == null ? "" : value.getValue().strip();
  }
}
