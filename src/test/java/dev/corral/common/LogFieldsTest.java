package dev.corral.common;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashMap;
import java.util.Map;
import org.jboss.logging.MDC;
import org.junit.jupiter.api.Test;

/** Log fields are in the context for their one line only, and leave an outer context as it was. */
class LogFieldsTest {

  @Test
  void fieldsAreSetForTheLineAndRestoredAfter() {
    MDC.put(LogFields.SESSION_ID, "sesn_outer");
    Map<String, Object> seen = new HashMap<>();
    try {
      LogFields.sandbox("sbx_1")
          .withSession("sesn_inner")
          .epoch(7)
          .tool("bash")
          .withTenant("")
          .log(() -> seen.putAll(MDC.getMap()));
      assertThat(seen)
          .containsEntry(LogFields.SANDBOX, "sbx_1")
          .containsEntry(LogFields.SESSION_ID, "sesn_inner")
          .containsEntry(LogFields.EPOCH, 7L)
          .containsEntry(LogFields.TOOL, "bash")
          .doesNotContainKey(LogFields.TENANT);
      assertThat(MDC.get(LogFields.SESSION_ID)).isEqualTo("sesn_outer");
      assertThat(MDC.get(LogFields.SANDBOX)).isNull();
      assertThat(MDC.get(LogFields.EPOCH)).isNull();
    } finally {
      MDC.remove(LogFields.SESSION_ID);
    }
  }

  @Test
  void aLineThatThrowsStillRestoresTheContext() {
    try {
      LogFields.session("sesn_x")
          .seq(3)
          .log(
              () -> {
                throw new IllegalStateException("boom");
              });
    } catch (IllegalStateException expected) {
      assertThat(expected).hasMessage("boom");
    }
    assertThat(MDC.get(LogFields.SESSION_ID)).isNull();
    assertThat(MDC.get(LogFields.SEQ)).isNull();
  }
}
