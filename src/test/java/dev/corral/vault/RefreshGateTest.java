package dev.corral.vault;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.common.UnavailableException;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.helpers.test.UniAssertSubscriber;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * A tenant whose token endpoint stalls cannot hold more than its share of the database pool with
 * OAuth refreshes (each holds a connection while it waits on the endpoint).
 */
class RefreshGateTest {

  private final RefreshGate<String> gate = new RefreshGate<>(2, 3);
  private final List<CompletableFuture<String>> endpoints = new ArrayList<>();
  private final AtomicInteger started = new AtomicInteger();

  /** A refresh that waits on a token endpoint the test answers. */
  private Uni<String> stalledRefresh() {
    started.incrementAndGet();
    CompletableFuture<String> endpoint = new CompletableFuture<>();
    endpoints.add(endpoint);
    return Uni.createFrom().completionStage(endpoint);
  }

  @Test
  void callersRefusedTheSameTokenShareOneRefresh() {
    // When a hundred requests with the same refused token ask for a refresh
    List<UniAssertSubscriber<String>> callers = new ArrayList<>();
    for (int i = 0; i < 100; i++) {
      callers.add(
          gate.refresh("t1", "cred_a", "old", this::stalledRefresh)
              .subscribe()
              .withSubscriber(UniAssertSubscriber.create()));
    }

    // Then one refresh ran, and all got its token
    assertThat(started).hasValue(1);
    endpoints.get(0).complete("fresh");
    callers.forEach(caller -> caller.assertItem("fresh"));
    // and the next refusal starts a new refresh, not the finished one's answer
    gate.refresh("t1", "cred_a", "fresh", this::stalledRefresh).subscribe().with(item -> {});
    assertThat(started).hasValue(2);
  }

  @Test
  void aTenantRunsTwoRefreshesAtOnceTheRestWaitOrAreRefusedAndOtherTenantsAreNotHeld() {
    // Given a tenant whose endpoint stalls, with refreshes of six credentials asked for
    List<UniAssertSubscriber<String>> callers = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      callers.add(
          gate.refresh("t1", "cred_" + i, null, this::stalledRefresh)
              .subscribe()
              .withSubscriber(UniAssertSubscriber.create()));
    }

    // Then two run, three wait, and the sixth is refused at once
    assertThat(started).hasValue(2);
    callers.get(5).assertFailedWith(UnavailableException.class, "too many OAuth token refreshes");
    // while another tenant's refresh starts at once
    gate.refresh("t2", "cred_b", null, this::stalledRefresh).subscribe().with(item -> {});
    assertThat(started).hasValue(3);

    // When one of the tenant's refreshes ends, the next waiting one starts
    endpoints.get(0).complete("a");
    callers.get(0).assertItem("a");
    assertThat(started).hasValue(4);
    endpoints.get(1).completeExceptionally(new IllegalStateException("endpoint down"));
    callers.get(1).assertFailedWith(IllegalStateException.class, "endpoint down");
    assertThat(started).hasValue(5);

    // and the refused credential can be refreshed once there is room (its refusal is not kept)
    endpoints.get(3).complete("c");
    endpoints.get(4).complete("d");
    assertThat(started).hasValue(6);
    gate.refresh("t1", "cred_5", null, this::stalledRefresh)
        .subscribe()
        .withSubscriber(UniAssertSubscriber.create())
        .assertNotTerminated();
    assertThat(started).hasValue(7);
  }
}
