package dev.corral.testing;

import io.quarkus.test.junit.QuarkusTestProfile;
import java.util.Map;

/** A statement timeout of one second, so that tests can hold a row lock past it. */
public class ShortStatementTimeoutProfile implements QuarkusTestProfile {
  @Override
  public Map<String, String> getConfigOverrides() {
    return Map.of("corral.database.statement-timeout", "1s");
  }
}
