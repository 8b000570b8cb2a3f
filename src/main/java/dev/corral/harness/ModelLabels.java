package dev.corral.harness;

import dev.corral.model.ModelConfig;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

/**
 * The values a model call's metrics are labelled with. A model name is the agent's, which any
 * member chooses, and every distinct label is a meter kept for the life of the replica: names of
 * {@code corral.model.context-windows} and the first {@link #MAX_MODELS} others seen are labelled
 * as themselves, the rest as {@code other}. An error type is the API's word, kept only in its
 * shape.
 */
final class ModelLabels {

  /** Model names labelled as themselves beyond the configured ones. */
  static final int MAX_MODELS = 32;

  static final String OTHER = "other";

  private static final Pattern ERROR_TYPE = Pattern.compile("[a-z_]{1,40}");

  private final Set<String> configured;
  private final Set<String> seen = ConcurrentHashMap.newKeySet();

  /**
   * @param configured the models an operator named ({@link ModelConfig#contextWindows()}' keys)
   */
  ModelLabels(Set<String> configured) {
    this.configured = Set.copyOf(configured);
  }

  String model(String name) {
    if (configured.contains(name) || seen.contains(name)) {
      return name;
    }
    synchronized (seen) {
      if (seen.size() < MAX_MODELS) {
        seen.add(name);
        return name;
      }
    }
    return OTHER;
  }

  static String outcome(String errorType) {
    return errorType != null && ERROR_TYPE.matcher(errorType).matches() ? errorType : OTHER;
  }
}
