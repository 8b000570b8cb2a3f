package dev.corral.testing;

import java.util.HashMap;
import java.util.Map;

/**
 * The harness profile with tracing on (to {@link InMemoryTraces}) and JSON logs written to {@link
 * #JSON_LOG}, with corral's debug lines.
 */
public class ObservabilityTestProfile extends HarnessTestProfile {

  public static final String JSON_LOG = "target/corral-json.log";

  @Override
  public Map<String, String> getConfigOverrides() {
    Map<String, String> config = new HashMap<>(super.getConfigOverrides());
    config.put("quarkus.otel.sdk.disabled", "false");
    config.put("quarkus.log.file.enabled", "true");
    config.put("quarkus.log.file.path", JSON_LOG);
    config.put("quarkus.log.file.json.enabled", "true");
    config.put("quarkus.log.category.\"dev.corral\".level", "DEBUG");
    return config;
  }
}
