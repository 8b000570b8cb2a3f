package dev.corral.vault;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The credential a static header value carries after its authentication scheme. */
class AfterSchemeTest {

  @Test
  void theCredentialAfterASchemeIsFound() {
    assertThat(Credentials.afterScheme("Bearer tok_123456")).isEqualTo("tok_123456");
    assertThat(Credentials.afterScheme("token   a b c  ")).isEqualTo("a b c");
    assertThat(Credentials.afterScheme("Bearer " + " ".repeat(8_000) + "x")).isEqualTo("x");
  }

  @Test
  void aValueWithoutSchemeAndCredentialHasNone() {
    assertThat(Credentials.afterScheme("tok_123456")).isNull();
    assertThat(Credentials.afterScheme("Bearer")).isNull();
    assertThat(Credentials.afterScheme("Bearer   ")).isNull();
    assertThat(Credentials.afterScheme(" Bearer x")).isNull();
    assertThat(Credentials.afterScheme("Bé x")).isNull();
  }
}
