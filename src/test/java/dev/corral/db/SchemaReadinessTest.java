package dev.corral.db;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

class SchemaReadinessTest {

  @Test
  void requiredVersionIsTheNewestMigration() throws IOException {
    Pattern migration = Pattern.compile("V(\\d+)__.+\\.sql");
    int newest;
    try (Stream<Path> files = Files.list(Path.of("src/main/resources/db/migration"))) {
      newest =
          files
              .map(path -> migration.matcher(path.getFileName().toString()))
              .filter(Matcher::matches)
              .mapToInt(matcher -> Integer.parseInt(matcher.group(1)))
              .max()
              .orElseThrow();
    }
    assertThat(SchemaReadiness.REQUIRED_VERSION).isEqualTo(Integer.toString(newest));
  }
}
