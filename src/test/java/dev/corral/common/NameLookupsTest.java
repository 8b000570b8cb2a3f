package dev.corral.common;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.InetAddress;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class NameLookupsTest {

  @Test
  void aNameServerThatNeverAnswersHoldsUpOnlyTheLookupsOfTheTenantThatAskedForIt()
      throws Exception {
    // Given a name server that answers no name of hang.test until told to
    CompletableFuture<Void> answer = new CompletableFuture<>();
    NameLookups lookups = new NameLookups(name -> hangingOn(name, answer));
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
      answer.complete(null);
      for (var lookup : hanging) {
        assertThat(lookup.get(5, TimeUnit.SECONDS)).hasSize(1);
      }
      assertThat(waiting.get(5, TimeUnit.SECONDS)).hasSize(1);
      for (var lookup : queued) {
        assertThat(lookup.get(5, TimeUnit.SECONDS)).hasSize(1);
      }
    } finally {
      answer.complete(null);
      lookups.stop();
    }
  }

  @Test
  void aLookupThatTimedOutGivesItsPlaceBackAtOnce() throws Exception {
    // Given a name server that never answers a name of hang.test, and as many lookups of one
    // tenant asking it as may run at once, each with a short time limit
    CompletableFuture<Void> never = new CompletableFuture<>();
    List<String> cancelled = java.util.Collections.synchronizedList(new ArrayList<>());
    NameLookups lookups =
        new NameLookups(
            name -> hangingOn(name, never).onCancellation().invoke(() -> cancelled.add(name)));
    List<CompletableFuture<List<InetAddress>>> hanging = new ArrayList<>();
    for (int i = 0; i < NameLookups.RUNNING_PER_ASKER; i++) {
      hanging.add(lookup(lookups, "tenant a", i + ".hang.test", Duration.ofMillis(200)));
    }

    // When they time out
    for (var lookup : hanging) {
      assertThatThrownBy(() -> lookup.get(5, TimeUnit.SECONDS)).hasMessageContaining("in time");
    }

    // Then each question was cancelled, and the same tenant's next lookup is answered at once,
    // while the name server still has not answered
    assertThat(cancelled).hasSize(NameLookups.RUNNING_PER_ASKER);
    assertThat(
            lookup(lookups, "tenant a", "fine.test", Duration.ofSeconds(5))
                .get(5, TimeUnit.SECONDS))
        .hasSize(1);
  }

  @Test
  void tenantsWhoseNamesNeverAnswerCannotStarveAnotherTenant() throws Exception {
    // Given twenty tenants, each with as many lookups hanging on a silent name server as it may
    // run at once
    CompletableFuture<Void> never = new CompletableFuture<>();
    NameLookups lookups = new NameLookups(name -> hangingOn(name, never));
    List<CompletableFuture<List<InetAddress>>> hanging = new ArrayList<>();
    for (int tenant = 0; tenant < 20; tenant++) {
      for (int i = 0; i < NameLookups.RUNNING_PER_ASKER; i++) {
        hanging.add(lookup(lookups, "tenant " + tenant, i + ".hang.test", Duration.ofSeconds(30)));
      }
    }

    // When another tenant looks a name up, then it is answered at once
    assertThat(
            lookup(lookups, "tenant z", "fine.test", Duration.ofSeconds(5))
                .get(5, TimeUnit.SECONDS))
        .hasSize(1);
    assertThat(hanging).noneMatch(CompletableFuture::isDone);
    hanging.forEach(lookup -> lookup.cancel(true));
  }

  @Test
  void theSystemResolverReadsTheHostsFileAndFailsOnANameThatDoesNotExist() throws Exception {
    NameLookups lookups = new NameLookups();
    try {
      assertThat(
              lookup(lookups, "tenant a", "localhost", Duration.ofSeconds(10))
                  .get(15, TimeUnit.SECONDS))
          .isNotEmpty()
          .allMatch(InetAddress::isLoopbackAddress);
      // .invalid never resolves (RFC 6761); with no name server in reach it fails in time
      assertThatThrownBy(
              () ->
                  lookup(lookups, "tenant a", "no-such-name.invalid", Duration.ofSeconds(10))
                      .get(15, TimeUnit.SECONDS))
          .hasCauseInstanceOf(NameLookups.LookupFailedException.class)
          .hasMessageContaining("no-such-name.invalid could not be resolved");
    } finally {
      lookups.stop();
    }
  }

  /** 1.2.3.4 for any name, and for names of hang.test once {@code answer} completes. */
  private static io.smallrye.mutiny.Uni<List<InetAddress>> hangingOn(
      String name, CompletableFuture<Void> answer) {
    List<InetAddress> addresses;
    try {
      addresses = List.of(InetAddress.getByAddress(name, new byte[] {1, 2, 3, 4}));
    } catch (java.net.UnknownHostException impossible) {
      throw new AssertionError(impossible);
    }
    if (!name.endsWith("hang.test")) {
      return io.smallrye.mutiny.Uni.createFrom().item(addresses);
    }
    return io.smallrye.mutiny.Uni.createFrom()
        .completionStage(() -> answer.thenApply(answered -> addresses));
  }

  private static CompletableFuture<List<InetAddress>> lookup(
      NameLookups lookups, String asker, String name, Duration timeout) {
    return lookups.lookup(asker, name, timeout).subscribeAsCompletionStage();
  }
}
