package dev.corral.common;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class IdKindTest {

  @Test
  void newIdsAreWellFormedUniqueAndSortByCreation() {
    String first = IdKind.SESSION.next();
    String second;
    do {
      second = IdKind.SESSION.next();
    } while (second.substring(0, 15).equals(first.substring(0, 15)));

    assertThat(first).matches("sesn_[0-9a-hjkmnp-tv-z]{26}");
    assertThat(IdKind.SESSION.isValid(first)).isTrue();
    assertThat(first).isLessThan(second);
    Set<String> many = new HashSet<>();
    for (int i = 0; i < 10_000; i++) {
      many.add(IdKind.EVENT.next());
    }
    assertThat(many).hasSize(10_000);
  }

  @Test
  void idOfAnotherKindOrShapeIsRejectedNamingTheField() {
    assertThat(IdKind.SESSION.isValid(IdKind.AGENT.next())).isFalse();
    assertThat(IdKind.SESSION.isValid("sesn_" + "u".repeat(26))).isFalse();
    assertThatThrownBy(() -> IdKind.AGENT.require("agent_id", ""))
        .isInstanceOf(InvalidArgumentException.class)
        .hasMessage("agent_id: is required");
    assertThatThrownBy(() -> IdKind.AGENT.require("agent_id", "agent_1"))
        .isInstanceOf(InvalidArgumentException.class)
        .hasMessageStartingWith("agent_id: is not a valid id");
  }
}
