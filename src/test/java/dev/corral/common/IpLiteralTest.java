package dev.corral.common;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

class IpLiteralTest {

  @Test
  void onlyTextThatParsesWithoutALookupIsALiteral() {
    for (String literal :
        List.of("1.2.3.4", "255.255.255.255", "::1", "[::1]", "fe80::1", "::ffff:10.0.0.1")) {
      assertThat(IpLiteral.parse(literal)).as(literal).isPresent();
    }
    // each of these would be handed to the resolver by InetAddress.getByName (".:1" is, with a
    // hosts file naming it), so none may be parsed here
    for (String name :
        List.of(
            "0001.deadbeef.de", "1.2.3.4.5", "127.1", "2130706433", ".:1", "x:1", "1.2.3.04", "")) {
      assertThat(IpLiteral.parse(name)).as(name).isEmpty();
    }
  }
}
