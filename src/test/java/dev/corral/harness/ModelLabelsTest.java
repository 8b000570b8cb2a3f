package dev.corral.harness;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashSet;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** Metrics labels of model calls stay few, whatever models agents name. */
class ModelLabelsTest {

  @Test
  void aMemberNamingEndlessModelsMakesAtMostABoundedSetOfLabels() {
    // Given an operator's model, and a member who names 1,000 made-up ones
    ModelLabels labels = new ModelLabels(Set.of("claude-sonnet-4-5"));
    Set<String> made = new HashSet<>();
    IntStream.range(0, 1_000).forEach(i -> made.add(labels.model("m" + i)));

    // Then only the first few are labelled as themselves, and the operator's model still is
    assertThat(made).hasSize(ModelLabels.MAX_MODELS + 1).contains(ModelLabels.OTHER);
    assertThat(labels.model("claude-sonnet-4-5")).isEqualTo("claude-sonnet-4-5");
    assertThat(labels.model("m0")).isEqualTo("m0");
    assertThat(labels.model("m999")).isEqualTo(ModelLabels.OTHER);
  }

  @Test
  void anErrorTypeIsKeptOnlyInTheApisShape() {
    assertThat(ModelLabels.outcome("overloaded_error")).isEqualTo("overloaded_error");
    assertThat(ModelLabels.outcome("x".repeat(41))).isEqualTo(ModelLabels.OTHER);
    assertThat(ModelLabels.outcome("Weird <type>")).isEqualTo(ModelLabels.OTHER);
    assertThat(ModelLabels.outcome(null)).isEqualTo(ModelLabels.OTHER);
  }
}
