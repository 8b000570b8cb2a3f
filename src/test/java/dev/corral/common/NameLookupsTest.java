package dev.corral.common;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.InetAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class NameLookupsTest {

  @Test
  void aNameServerThatNeverAnswersHoldsUpOnlyTheLookupsOfTheTenantThatAskedForIt()
      throws Exception {
    // Given a resolver that hangs on every name of hang.test
    CountDownLatch answer = new CountDownLatch(1);
    NameLookups lookups =
        new NameLookups(
            name -> {
              if (name.endsWith("hang.test")) {
                try {
                  answer.await();
                } catch (InterruptedException stopped) {
                  throw new java.net.UnknownHostException(name);
                }
              }
              return new InetAddress[] {InetAddress.getByAddress(name, new byte[] {1, 2, 3, 4})};
            });
    try {
      // When one tenant asks for as many such names as it may have running, and one more name
      List<CompletableFuture<List<InetAddress>>> hanging = new ArrayList<>();
      for (int i = 0; i < NameLookups.RUNNING_PER_ASKER; i++) {
        hanging.add(lookup(lookups, "tenant a", i + ".hang.test", Duration.ofSeconds(30)));
      }
      var waiting = lookup(lookups, "tenant a", "fine.test", Duration.ofSeconds(30));

      // Then its next lookup waits its turn, another tenant is served at once, and a lookup that
      // outlives its time limit fails at it
      org.awaitility.Awaitility.await()
          .during(Duration.ofMillis(300))
          .atMost(Duration.ofSeconds(2))
          .until(() -> !waiting.isDone());
      assertThat(
              lookup(lookups, "tenant b", "fine.test", Duration.ofSeconds(5))
                  .get(5, TimeUnit.SECONDS))
          .hasSize(1);
      assertThatThrownBy(
              () ->
                  lookup(lookups, "tenant b", "late.hang.test", Duration.ofMillis(200))
                      .get(5, TimeUnit.SECONDS))
          .hasMessageContaining("in time");

      // And what waits beyond its bound is refused at once
      List<CompletableFuture<List<InetAddress>>> queued = new ArrayList<>();
      for (int i = 1; i < NameLookups.WAITING_PER_ASKER; i++) {
        queued.add(lookup(lookups, "tenant a", "q" + i + ".test", Duration.ofSeconds(30)));
      }
      assertThatThrownBy(
              () ->
                  lookup(lookups, "tenant a", "one-too-many.test", Duration.ofSeconds(30))
                      .get(1, TimeUnit.SECONDS))
          .hasMessageContaining("too many name lookups wait");

      // And once the name server answers, every lookup of the first tenant completes
      answer.countDown();
      for (var lookup : hanging) {
        assertThat(lookup.get(5, TimeUnit.SECONDS)).hasSize(1);
      }
      assertThat(waiting.get(5, TimeUnit.SECONDS)).hasSize(1);
      for (var lookup : queued) {
        assertThat(lookup.get(5, TimeUnit.SECONDS)).hasSize(1);
      }
    } finally {
      answer.countDown();
      lookups.stop();
    }
  }

  private static CompletableFuture<List<InetAddress>> lookup(
      NameLookups lookups, String asker, String name, Duration timeout) {
    return lookups.lookup(asker, name, timeout).subscribeAsCompletionStage();
  }
}
