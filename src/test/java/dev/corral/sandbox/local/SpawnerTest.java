package dev.corral.sandbox.local;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

class SpawnerTest {

  @Test
  void aSandboxOutlivesTheThreadThatAskedForIt() throws Exception {
    // Given bubblewrap started with --die-with-parent, as every sandbox is, by a thread that then
    // ends (a pooled thread past its keep-alive)
    AtomicReference<Process> started = new AtomicReference<>();
    Thread asker =
        new Thread(
            () -> {
              try {
                started.set(
                    Spawner.start(
                        new ProcessBuilder(
                            List.of(
                                "bwrap",
                                "--die-with-parent",
                                "--ro-bind",
                                "/",
                                "/",
                                "sleep",
                                "30"))));
              } catch (java.io.IOException failed) {
                throw new java.io.UncheckedIOException(failed);
              }
            });
    asker.start();
    asker.join();
    Process sandbox = started.get();
    try {
      // Then the sandbox is still alive well after that thread ended
      assertThat(sandbox).isNotNull();
      org.awaitility.Awaitility.await()
          .during(Duration.ofSeconds(1))
          .atMost(Duration.ofSeconds(2))
          .until(sandbox::isAlive);
    } finally {
      sandbox.destroyForcibly();
    }
  }
}
