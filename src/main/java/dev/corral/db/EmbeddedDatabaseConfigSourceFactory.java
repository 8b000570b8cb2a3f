package dev.corral.db;

import dev.corral.common.CorralHome;
import io.smallrye.config.ConfigSourceContext;
import io.smallrye.config.ConfigSourceFactory;
import io.smallrye.config.ConfigValue;
import io.smallrye.config.PropertiesConfigSource;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import org.eclipse.microprofile.config.spi.ConfigSource;

/**
 * Starts the embedded PostgreSQL when no external datasource is configured, and points the
 * datasource at it. With {@code quarkus.datasource.reactive.url} or {@code
 * quarkus.datasource.jdbc.url} set (in any config source) nothing starts.
 *
 * <p>Runs when the runtime configuration is built, which is before Flyway and the reactive pool
 * read the datasource settings. Quarkus also builds the application's configuration while it
 * generates code and augments the application (inside Maven or the test launcher); nothing starts
 * then.
 */
public class EmbeddedDatabaseConfigSourceFactory implements ConfigSourceFactory {

  /** Below application.properties (250) so an explicit setting always wins. */
  private static final int ORDINAL = 200;

  @Override
  public Iterable<ConfigSource> getConfigSources(ConfigSourceContext context) {
    if (isBuildTime()) {
      return List.of();
    }
    if (isSet(context, "quarkus.datasource.reactive.url")
        || isSet(context, "quarkus.datasource.jdbc.url")) {
      return List.of();
    }
    if (!Boolean.parseBoolean(valueOr(context, "corral.embedded-postgres.enabled", "true"))) {
      return List.of();
    }
    Path home = CorralHome.resolve(valueOr(context, "corral.home", ""));
    EmbeddedDatabase.Login login =
        EmbeddedDatabase.start(
            home.resolve("pgdata"),
            Integer.parseInt(valueOr(context, "corral.embedded-postgres.port", "0")),
            Boolean.parseBoolean(valueOr(context, "corral.embedded-postgres.ephemeral", "false")));
    String hostPort = "127.0.0.1:" + login.port() + "/postgres";
    return List.of(
        new PropertiesConfigSource(
            Map.of(
                "quarkus.datasource.reactive.url",
                "postgresql://" + hostPort,
                "quarkus.datasource.jdbc.url",
                "jdbc:postgresql://" + hostPort,
                "quarkus.datasource.username",
                login.user(),
                "quarkus.datasource.password",
                login.password(),
                "corral.embedded-postgres.active",
                "true"),
            "corral-embedded-postgres",
            ORDINAL));
  }

  @Override
  public OptionalInt getPriority() {
    return OptionalInt.of(ORDINAL);
  }

  /**
   * The build reads configuration from io.quarkus.deployment / io.quarkus.maven code, and the test
   * launcher from io.quarkus.test.config before it starts the application.
   */
  private static boolean isBuildTime() {
    return StackWalker.getInstance()
        .walk(
            frames ->
                frames
                    .map(StackWalker.StackFrame::getClassName)
                    .anyMatch(
                        name ->
                            name.startsWith("io.quarkus.deployment.")
                                || name.startsWith("io.quarkus.maven.")
                                || name.startsWith("io.quarkus.test.config.")));
  }

  private static boolean isSet(ConfigSourceContext context, String name) {
    ConfigValue value = context.getValue(name);
    return value != null && value.getValue() != null && !value.getValue().isBlank();
  }

  private static String valueOr(ConfigSourceContext context, String name, String fallback) {
    ConfigValue value = context.getValue(name);
    return value == null || value.getValue() == null ? fallback : value.getValue();
  }
}
