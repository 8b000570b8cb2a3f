package dev.corral.sandbox.local;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import java.util.Map;

/**
 * The same attacks on the control of a call where corral may make no cgroups (not root, no
 * delegated cgroup v2): a call is then told apart from what earlier calls left running by its
 * session and by what ran before it.
 */
@QuarkusTest
@TestProfile(CallControlWithoutCgroupsTest.NoCgroups.class)
class CallControlWithoutCgroupsTest extends CallControlTest {

  public static class NoCgroups implements QuarkusTestProfile {
    @Override
    public Map<String, String> getConfigOverrides() {
      return Map.of("corral.sandbox.local.cgroups", "false");
    }
  }
}
