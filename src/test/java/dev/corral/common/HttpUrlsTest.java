package dev.corral.common;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.URI;
import org.junit.jupiter.api.Test;

class HttpUrlsTest {

  @Test
  void aUrlIsNormalized() {
    assertThat(HttpUrls.normalized("url", "HTTPS://Good.Example:443"))
        .isEqualTo("https://good.example/");
    assertThat(HttpUrls.normalized("url", "http://good.example:8080/mcp?x=1"))
        .isEqualTo("http://good.example:8080/mcp?x=1");
  }

  @Test
  void aPathThatReadsAsAnotherHostIsRefused() {
    // "//evil.example/mcp" resolved against the origin, as an HTTP client library may, is evil's
    String url = "https://good.example//evil.example/mcp";
    assertThat(URI.create("https://good.example/").resolve(URI.create(url).getRawPath()).getHost())
        .isEqualTo("evil.example");
    assertThatThrownBy(() -> HttpUrls.normalized("mcp_server_url", url))
        .isInstanceOf(InvalidArgumentException.class)
        .hasMessageContaining("mcp_server_url")
        .hasMessageContaining("//");
  }
}
