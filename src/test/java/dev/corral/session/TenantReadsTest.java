package dev.corral.session;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.corral.common.ResourceExhaustedException;
import dev.corral.common.Tenant;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.helpers.test.UniAssertSubscriber;
import io.smallrye.mutiny.subscription.UniEmitter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * One tenant's page reads on a replica: a few run at once, the rest wait in order, and a read past
 * the waiting bound is refused; another tenant's reads never wait behind them.
 */
class TenantReadsTest {

  private static final Tenant NOISY = new Tenant("noisy");
  private static final Tenant QUIET = new Tenant("quiet");

  private final TenantReads reads = new TenantReads(2, 2);

  /**
   * The reads that started, by name, each holding its (database) answer until the test gives it.
   */
  private final Map<String, UniEmitter<? super String>> started = new LinkedHashMap<>();

  private UniAssertSubscriber<String> read(Tenant tenant, String name) {
    return reads
        .run(tenant, () -> Uni.createFrom().<String>emitter(answer -> started.put(name, answer)))
        .subscribe()
        .withSubscriber(UniAssertSubscriber.create());
  }

  @Test
  void aTenantsReadsPastItsBoundWaitInOrderAndPastTheQueueAreRefused() {
    // When a tenant asks for five reads at once, with two running and two waiting at most
    List<UniAssertSubscriber<String>> noisy = new ArrayList<>();
    for (int i = 1; i <= 5; i++) {
      noisy.add(read(NOISY, "n" + i));
    }

    // Then two run, two wait, and the fifth is refused at once, saying why
    assertThat(started).containsOnlyKeys("n1", "n2");
    assertThat(reads.running(NOISY)).isEqualTo(2);
    noisy.get(4).assertFailedWith(ResourceExhaustedException.class, "2 log reads running");

    // And another tenant's read runs at once
    UniAssertSubscriber<String> quiet = read(QUIET, "q1");
    assertThat(started).containsKey("q1");
    started.get("q1").complete("quiet page");
    quiet.assertCompleted().assertItem("quiet page");

    // When a running read ends, the first waiting one starts, and its caller gets its own answer
    started.get("n1").complete("page 1");
    noisy.get(0).assertItem("page 1");
    assertThat(started).containsOnlyKeys("n1", "n2", "q1", "n3");
    // a failed read lets the next start too
    started.get("n2").fail(new IllegalStateException("the database went away"));
    noisy.get(1).assertFailedWith(IllegalStateException.class, "went away");
    assertThat(started).containsKey("n4");
    assertThat(reads.running(NOISY)).isEqualTo(2);
  }

  @Test
  void aCallerThatGoesAwayWhileWaitingGivesItsPlaceUpAndARunningOneHoldsItsSlotToItsEnd() {
    // Given two running reads and two waiting
    List<UniAssertSubscriber<String>> noisy = new ArrayList<>();
    for (int i = 1; i <= 4; i++) {
      noisy.add(read(NOISY, "n" + i));
    }

    // When the first waiting caller goes away, and so does a running one
    noisy.get(2).cancel();
    noisy.get(0).cancel();

    // Then the running one keeps its slot (its statement still holds a connection) until its
    // statement ends, and then the read after the one that left starts, not the one that left
    assertThat(started).containsOnlyKeys("n1", "n2");
    assertThat(reads.running(NOISY)).isEqualTo(2);
    started.get("n1").complete("nobody reads this");
    assertThat(started).containsOnlyKeys("n1", "n2", "n4");

    // And a place in the queue came free: two more may wait
    read(NOISY, "n5");
    read(NOISY, "n6").assertNotTerminated();
    read(NOISY, "n7").assertFailedWith(ResourceExhaustedException.class, "waiting");

    // And once every read has ended, the tenant holds nothing
    started.get("n2").complete("page");
    started.get("n4").complete("page");
    started.get("n5").complete("page");
    started.get("n6").complete("page");
    assertThat(reads.running(NOISY)).isZero();
  }

  @Test
  void aBoundOfNoReadsIsRefused() {
    assertThatThrownBy(() -> new TenantReads(0, 10))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessageContaining("reads-per-tenant");
  }
}
