package dev.corral.identity;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** Settings of the start that would let in tokens corral was never meant to take. */
class AdminKeyBootstrapTest {

  @Test
  void anAudienceOfAnyIsNoAudienceAndIsRefused() {
    assertThat(AdminKeyBootstrap.checksNoAudience("any")).isTrue();
    assertThat(AdminKeyBootstrap.checksNoAudience(" ANY ")).isTrue();
    assertThat(AdminKeyBootstrap.checksNoAudience("corral,any")).isTrue();
    assertThat(AdminKeyBootstrap.checksNoAudience("corral")).isFalse();
    assertThat(AdminKeyBootstrap.checksNoAudience("company-api")).isFalse();
  }
}
