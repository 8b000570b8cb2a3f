package dev.corral.db;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.common.Paging;
import io.quarkus.test.junit.QuarkusTest;
import io.vertx.mutiny.sqlclient.Pool;
import jakarta.inject.Inject;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Every list reads the pages after a cursor from the cursor on: in the generic plan (the pool plans
 * a statement once for any parameters) the cursor bounds the index scan, rather than filtering the
 * rows of every page before it.
 */
@QuarkusTest
class ListPlanTest {

  @Inject Pool pool;

  @Test
  void theNextPageOfEveryListStartsAtItsCursor() throws Exception {
    List<String> listings =
        List.of(
            "dev.corral.session.SessionRepository#LIST",
            "dev.corral.agent.AgentRepository#LIST",
            "dev.corral.agent.AgentRepository#LIST_VERSIONS",
            "dev.corral.agent.EnvironmentRepository#LIST",
            "dev.corral.sandbox.SandboxRepository#LIST",
            "dev.corral.vault.VaultRepository#LIST",
            "dev.corral.vault.CredentialRepository#LIST",
            "dev.corral.identity.ApiKeyRepository#LIST",
            "dev.corral.identity.TenantRepository#LIST");
    for (String name : listings) {
      String[] parts = name.split("#");
      var field = Class.forName(parts[0]).getDeclaredField(parts[1]);
      field.setAccessible(true);
      Paging.Listing listing = (Paging.Listing) field.get(null);
      String next = genericPlan(listing.nextPage());
      assertThat(next)
          .as(name + "\n" + next)
          .matches("(?s).*Index Cond: [^\\n]*\\b(id|version) [<>] \\$\\d+.*");
      // and the first page plans no condition on a cursor it does not have
      assertThat(genericPlan(listing.firstPage()))
          .as(name)
          .doesNotContainPattern("OR \\((\\w+\\.)?(id|version) [<>]");
    }
  }

  private String genericPlan(String statement) {
    return dev.corral.testing.Plans.generic(pool, statement);
  }
}
