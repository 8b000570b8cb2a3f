package dev.corral.testing;

import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.oidc.server.OidcWiremockTestResource;
import java.util.List;
import java.util.Map;

/**
 * OIDC tokens on: an identity provider on loopback (quarkus-test-oidc-server's WireMock, offline)
 * whose keys sign {@link Tokens}' tokens.
 */
public class OidcTestProfile implements QuarkusTestProfile {

  @Override
  public Map<String, String> getConfigOverrides() {
    return Map.of(
        "corral.auth.oidc.enabled", "true",
        "corral.auth.oidc.issuer", "${keycloak.url}/realms/quarkus",
        "corral.auth.oidc.audience", Tokens.AUDIENCE);
  }

  @Override
  public List<TestResourceEntry> testResources() {
    return List.of(new TestResourceEntry(OidcWiremockTestResource.class));
  }
}
