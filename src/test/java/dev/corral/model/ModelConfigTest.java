package dev.corral.model;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class ModelConfigTest {

  @Test
  void aThinkingBudgetTheApiWouldRefuseOnEveryCallIsAProblemAtStart() {
    assertThat(ModelConfig.thinkingProblem(0, 8192)).isEmpty();
    assertThat(ModelConfig.thinkingProblem(1024, 8192)).isEmpty();
    assertThat(ModelConfig.thinkingProblem(8191, 8192)).isEmpty();
    assertThat(ModelConfig.thinkingProblem(1023, 8192)).get().asString().contains("from 1024");
    assertThat(ModelConfig.thinkingProblem(8192, 8192))
        .get()
        .asString()
        .contains("below corral.model.max-tokens (8192)");
    assertThat(ModelConfig.thinkingProblem(-5, 8192)).isPresent();
    assertThat(ModelConfig.thinkingProblem(0, 0)).get().asString().contains("max-tokens is 0");
  }
}
