package dev.corral.testing;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import io.quarkus.test.junit.QuarkusTestProfile;
import java.util.List;
import java.util.Map;

/**
 * The application with its harness on, talking to a {@link FakeAnthropic}, with short retry delays
 * and leases so that tests of failures stay fast.
 */
public class HarnessTestProfile implements QuarkusTestProfile {

  /** The context window of the model "claude-small", in tokens. */
  public static final int SMALL_WINDOW = 8_000;

  /** The max_tokens of every model call. */
  public static final int MAX_TOKENS = 2_048;

  @Override
  public Map<String, String> getConfigOverrides() {
    return harnessOverrides();
  }

  /** This profile's overrides, with {@code pairs} (a key, then its value) put over them. */
  protected static Map<String, String> overriddenWith(String... pairs) {
    Map<String, String> overrides = new java.util.HashMap<>(harnessOverrides());
    for (int i = 0; i + 1 < pairs.length; i += 2) {
      overrides.put(pairs[i], pairs[i + 1]);
    }
    return overrides;
  }

  private static Map<String, String> harnessOverrides() {
    return Map.ofEntries(
        // A small model to run past its window: see LongSessionTest.
        Map.entry("corral.model.context-windows.\"claude-small\"", Integer.toString(SMALL_WINDOW)),
        // (a prompt and max_tokens together must fit in the window, as the API requires)
        Map.entry("corral.model.max-tokens", Integer.toString(MAX_TOKENS)),
        Map.entry("corral.harness.enabled", "true"),
        Map.entry("corral.harness.lease-ttl", "2s"),
        Map.entry("corral.harness.renew-interval", "500ms"),
        Map.entry("corral.harness.scan-interval", "200ms"),
        Map.entry("corral.model.api-key", FakeAnthropic.API_KEY),
        Map.entry("corral.model.retry-initial-backoff", "20ms"),
        Map.entry("corral.model.retry-max-backoff", "100ms"),
        Map.entry("corral.model.retry-after-max", "4s"),
        Map.entry("corral.model.max-retries", "3"),
        // MCP servers that hang or fail are given up on quickly: see McpToolsTest.
        Map.entry("corral.mcp.call-timeout", "3s"),
        Map.entry("corral.mcp.list-timeout", "3s"),
        Map.entry("corral.mcp.tools-ttl", "1s"));
  }

  @Override
  public List<TestResourceEntry> testResources() {
    return List.of(new TestResourceEntry(Resource.class));
  }

  /** Starts the fake Messages API before the application and points the application at it. */
  public static class Resource implements QuarkusTestResourceLifecycleManager {
    private FakeAnthropic fake;

    @Override
    public Map<String, String> start() {
      try {
        fake = FakeAnthropic.start();
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
      return Map.of("corral.model.base-url", fake.baseUrl());
    }

    @Override
    public void inject(TestInjector injector) {
      injector.injectIntoFields(
          fake,
          new TestInjector.AnnotatedAndMatchesType(InjectFakeAnthropic.class, FakeAnthropic.class));
    }

    @Override
    public void stop() {
      if (fake != null) {
        fake.close();
      }
    }
  }
}
