package dev.corral.testing;

import java.util.Map;

/**
 * The harness profile with tracing on (to {@link InMemoryTraces}) and JSON logs written to {@link
 * #JSON_LOG}, with corral's debug lines.
 */
public class ObservabilityTestProfile extends HarnessTestProfile {

  public static final String JSON_LOG = "target/corral-json.log";

  @Override
  public Map<String, String> getConfigOverrides() {
    return overriddenWith(
        "quarkus.otel.sdk.disabled", "false",
        "quarkus.log.file.enabled", "true",
        "quarkus.log.file.path", JSON_LOG,
        "quarkus.log.file.json.enabled", "true",
        "quarkus.log.category.\"dev.corral\".level", "DEBUG");
  }
}
