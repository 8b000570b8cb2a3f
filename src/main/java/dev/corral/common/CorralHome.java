package dev.corral.common;

import java.nio.file.Path;

/**
 * Where corral keeps its local state: {@code corral.home}, else {@code $CORRAL_HOME}, else {@code
 * ~/.corral}.
 */
public final class CorralHome {

  private CorralHome() {}

  public static Path resolve(String configured) {
    if (configured != null && !configured.isBlank()) {
      return Path.of(configured);
    }
    String fromEnvironment = System.getenv("CORRAL_HOME");
    if (fromEnvironment != null && !fromEnvironment.isBlank()) {
      return Path.of(fromEnvironment);
    }
    return Path.of(System.getProperty("user.home"), ".corral");
  }
}
