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

  @Override
  public Map<String, String> getConfigOverrides() {
    return Map.of(
        // A small model to run past its window: see LongSessionTest.
        "corral.model.context-windows.\"claude-small\"", Integer.toString(SMALL_WINDOW),
        "corral.harness.enabled", "true",
        "corral.harness.lease-ttl", "2s",
        "corral.harness.renew-interval", "500ms",
        "corral.harness.scan-interval", "200ms",
        "corral.model.api-key", FakeAnthropic.API_KEY,
        "corral.model.retry-initial-backoff", "20ms",
        "corral.model.retry-max-backoff", "100ms",
        "corral.model.max-retries", "3");
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
