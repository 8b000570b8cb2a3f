package dev.corral.identity;

import static org.assertj.core.api.Assertions.assertThat;

import io.smallrye.config.ConfigSourceContext;
import io.smallrye.config.ConfigValue;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.StreamSupport;
import org.eclipse.microprofile.config.spi.ConfigSource;
import org.junit.jupiter.api.Test;

/** Which values of the two switches keep an unauthenticated server on 127.0.0.1. */
class LoopbackWithoutAuthConfigSourceFactoryTest {

  @Test
  void onlyAnExplicitTrueLeavesTheHostAloneAndOnlyAnExplicitTrueOpensItWithoutAuthentication() {
    assertThat(host(Map.of())).isNull();
    assertThat(host(Map.of("corral.auth.enabled", "true"))).isNull();
    assertThat(host(Map.of("corral.auth.enabled", " TRUE "))).isNull();
    for (String off : List.of("false", "off", "0", "no", "ture", "enabled")) {
      assertThat(host(Map.of("corral.auth.enabled", off))).as(off).isEqualTo("127.0.0.1");
    }
    assertThat(
            host(
                Map.of(
                    "corral.auth.enabled", "false",
                    "corral.auth.allow-remote-unauthenticated", "true")))
        .isNull();
    for (String notTrue : List.of("yes", "1", "on", "")) {
      assertThat(
              host(
                  Map.of(
                      "corral.auth.enabled",
                      "false",
                      "corral.auth.allow-remote-unauthenticated",
                      notTrue)))
          .as(notTrue)
          .isEqualTo("127.0.0.1");
    }
  }

  private static String host(Map<String, String> values) {
    Iterable<ConfigSource> sources =
        new LoopbackWithoutAuthConfigSourceFactory().getConfigSources(context(values));
    return StreamSupport.stream(sources.spliterator(), false)
        .map(source -> source.getValue("quarkus.http.host"))
        .findFirst()
        .orElse(null);
  }

  private static ConfigSourceContext context(Map<String, String> values) {
    Map<String, String> copy = new HashMap<>(values);
    return new ConfigSourceContext() {
      @Override
      public ConfigValue getValue(String name) {
        String value = copy.get(name);
        return value == null ? null : ConfigValue.builder().withName(name).withValue(value).build();
      }

      @Override
      public List<String> getProfiles() {
        return List.of();
      }

      @Override
      public java.util.Iterator<String> iterateNames() {
        return copy.keySet().iterator();
      }
    };
  }
}
