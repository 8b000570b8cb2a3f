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
  void aNameServerThatNeverAnswersHoldsAtMostFourThreadsOfOneAskerAndNoneOfAnother()
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
      // When one sandbox asks for five such names
      List<CompletableFuture<List<InetAddress>>> hanging = new ArrayList<>();
      for (int i = 0; i < NameLookups.PER_ASKER; i++) {
        hanging.add(
            lookups
                .lookup("sandbox-a", i + ".hang.test", Duration.ofSeconds(30))
                .subscribeAsCompletionStage());
      }
      var fifth =
          lookups
              .lookup("sandbox-a", "5.hang.test", Duration.ofSeconds(30))
              .subscribeAsCompletionStage();

      // Then the fifth is refused at once, another sandbox is served, and a lookup that outlives
      // its time limit fails at it
      assertThatThrownBy(() -> fifth.get(1, TimeUnit.SECONDS))
          .hasCauseInstanceOf(NameLookups.LookupFailedException.class)
          .hasMessageContaining("4 lookups already wait");
      assertThat(
              lookups
                  .lookup("sandbox-b", "fine.test", Duration.ofSeconds(5))
                  .subscribeAsCompletionStage()
                  .get(5, TimeUnit.SECONDS))
          .hasSize(1);
      assertThatThrownBy(
              () ->
                  lookups
                      .lookup("sandbox-b", "late.hang.test", Duration.ofMillis(200))
                      .subscribeAsCompletionStage()
                      .get(5, TimeUnit.SECONDS))
          .hasMessageContaining("in time");

      // And once the name server answers, the first sandbox may ask again
      answer.countDown();
      for (var lookup : hanging) {
        assertThat(lookup.get(5, TimeUnit.SECONDS)).hasSize(1);
      }
      assertThat(
              lookups
                  .lookup("sandbox-a", "again.test", Duration.ofSeconds(5))
                  .subscribeAsCompletionStage()
                  .get(5, TimeUnit.SECONDS))
          .hasSize(1);
    } finally {
      answer.countDown();
      lookups.stop();
    }
  }
}
