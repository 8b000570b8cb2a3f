package dev.corral.testing;

import java.util.HashMap;
import java.util.Map;

/**
 * The harness profile with the egress proxy's resolver pinned for the tests: names that map to this
 * machine's outward address (where the test servers listen; that one address is opened as a private
 * network) and names that map to addresses the proxy must always refuse.
 */
public class EgressTestProfile extends HarnessTestProfile {

  /** Allowed by the tests' allow-lists; served by the test servers. */
  public static final String ALLOWED = "allowed.test";

  /** Also this machine, never in an allow-list. */
  public static final String OTHER = "other.test";

  /** The test git server's name. */
  public static final String GIT = "git.test";

  @Override
  public Map<String, String> getConfigOverrides() {
    String outward = TestNetwork.outwardAddress().getHostAddress();
    Map<String, String> config = new HashMap<>(super.getConfigOverrides());
    config.put("corral.egress.allowed-private-networks", outward + "/32");
    for (String name : new String[] {ALLOWED, OTHER, GIT}) {
      config.put("corral.egress.static-hosts.\"" + name + "\"", outward);
    }
    // Names that resolve to what must never be reached, whatever the allow-list says.
    config.put("corral.egress.static-hosts.\"rebind.test\"", "127.0.0.1");
    config.put("corral.egress.static-hosts.\"metadata.test\"", "169.254.169.254");
    config.put("corral.egress.static-hosts.\"private.test\"", "10.20.30.40");
    config.put("corral.egress.static-hosts.\"mapped.test\"", "::ffff:127.0.0.1");
    return config;
  }
}
