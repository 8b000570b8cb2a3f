package dev.corral.common;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class LogBudgetTest {

  @Test
  void aSandboxGetsItsLinesAMinuteThenOneSayingSoThenNoneAndAnotherIsUntouched() {
    LogBudget budget = new LogBudget(3);
    List<LogBudget.Admission> loud = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      loud.add(budget.admit("sandbox-a"));
    }
    assertThat(loud)
        .containsExactly(
            LogBudget.Admission.LOG,
            LogBudget.Admission.LOG,
            LogBudget.Admission.LOG,
            LogBudget.Admission.LOG_LAST,
            LogBudget.Admission.DROP,
            LogBudget.Admission.DROP);
    assertThat(budget.admit("sandbox-b")).isEqualTo(LogBudget.Admission.LOG);
    assertThat(LogBudget.cut("x".repeat(20_000), 253)).hasSize(256);
  }
}
