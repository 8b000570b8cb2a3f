package dev.corral.session;

import static org.assertj.core.api.Assertions.assertThat;

import io.quarkus.test.junit.QuarkusTest;
import io.vertx.mutiny.sqlclient.Pool;
import jakarta.inject.Inject;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** What the append statements do, in their generic plans (prepared once, run with new values). */
@QuarkusTest
class AppendPlanTest {

  @Inject Pool pool;

  @Test
  void noIndexOfSessionsHoldsAColumnEveryAppendChanges() {
    // Every append updates its session's row; while no index holds a column it changes, the
    // update is HOT (no index is touched). An index on updated_at made every append 15% dearer.
    List<String> indexes =
        pool
            .query(
                "SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index"
                    + " WHERE indrelid = 'sessions'::regclass")
            .execute()
            .await()
            .indefinitely()
            .stream()
            .map(row -> row.getString("def"))
            .toList();
    assertThat(indexes).isNotEmpty();
    for (String column :
        List.of(
            "last_seq",
            "updated_at",
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens")) {
      assertThat(indexes).as(column).noneMatch(def -> def.matches("(?s).*\\b" + column + "\\b.*"));
    }
  }

  @Test
  void aStatementWithoutKeysDoesNotLookForEarlierEvents() {
    // events is read only to find the earlier events of an idempotency key
    List.of(
            Map.entry(EventLog.APPEND, true),
            Map.entry(EventLog.APPEND_MANY, true),
            Map.entry(EventLog.APPEND_UNKEYED, false),
            Map.entry(EventLog.APPEND_ONE_EVENT, false),
            Map.entry(EventLog.APPEND_MANY_UNKEYED, false))
        .forEach(
            entry -> {
              String statement = entry.getKey();
              boolean keyed = entry.getValue();
              String plan = genericPlan(statement);
              assertThat(plan).contains("Update on sessions").contains("Insert on events");
              assertThat(plan.matches("(?s).*Scan[^\\n]* on events.*")).as(plan).isEqualTo(keyed);
            });
  }

  private String genericPlan(String statement) {
    return dev.corral.testing.Plans.generic(pool, statement);
  }
}
