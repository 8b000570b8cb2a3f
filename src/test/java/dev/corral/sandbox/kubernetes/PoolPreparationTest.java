package dev.corral.sandbox.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.sandbox.kubernetes.WarmPools.Preparation;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import java.time.Instant;
import org.junit.jupiter.api.Test;

/** Which replica prepares a pool pod: one only, and another once it has not been heard of. */
class PoolPreparationTest {

  private static final Instant ABANDONED_BEFORE = Instant.parse("2026-12-08T10:00:00Z");

  @Test
  void aPodIsPreparedByTheReplicaItNamesAndAbandonedOnceItsPreparerIsSilent() {
    assertThat(of(pod("replica-a", "2026-12-08T10:30:00Z", false))).isEqualTo(Preparation.MINE);
    assertThat(of(pod("replica-b", "2026-12-08T10:30:00Z", false))).isEqualTo(Preparation.THEIRS);
    assertThat(of(pod(null, "2026-12-08T10:30:00Z", false))).isEqualTo(Preparation.UNCLAIMED);
    assertThat(of(pod("replica-b", "2026-12-08T09:00:00Z", false)))
        .isEqualTo(Preparation.ABANDONED);
    assertThat(of(pod(null, "2026-12-08T09:00:00Z", false))).isEqualTo(Preparation.ABANDONED);
    // a replica that restarted under its name goes on with its own, however old
    assertThat(of(pod("replica-a", "2026-12-08T09:00:00Z", false))).isEqualTo(Preparation.MINE);
    // a ready pod is done with, and a pod of no readable age is not taken for abandoned
    assertThat(of(pod("replica-b", "2026-12-08T09:00:00Z", true))).isEqualTo(Preparation.READY);
    assertThat(of(pod("replica-b", "yesterday", false))).isEqualTo(Preparation.THEIRS);
  }

  @Test
  void anOldPodWhosePreparerWasHeardOfLatelyIsStillItsPreparers() {
    // a pod made long ago that waits its turn among its preparer's many (8 are set up at once),
    // its preparer heard of at its last pass
    Pod queued = pod("replica-b", "2026-12-08T06:00:00Z", false);
    queued.getMetadata().getAnnotations().put(SandboxLabels.PREPARER_SEEN, "2026-12-08T10:30:00Z");
    assertThat(of(queued)).isEqualTo(Preparation.THEIRS);
    // and one whose preparer has not been heard of since long before
    Pod silent = pod("replica-b", "2026-12-08T10:30:00Z", false);
    silent.getMetadata().getAnnotations().put(SandboxLabels.PREPARER_SEEN, "2026-12-08T09:30:00Z");
    assertThat(of(silent)).isEqualTo(Preparation.ABANDONED);
  }

  private static Preparation of(Pod pod) {
    return WarmPools.preparation(pod, "replica-a", ABANDONED_BEFORE);
  }

  private static Pod pod(String preparer, String created, boolean ready) {
    PodBuilder pod =
        new PodBuilder()
            .withNewMetadata()
            .withName("corral-pool-x")
            .withCreationTimestamp(created)
            .addToLabels(SandboxLabels.POOL, "warm")
            .endMetadata();
    if (preparer != null) {
      pod.editMetadata().addToAnnotations(SandboxLabels.PREPARER, preparer).endMetadata();
    }
    if (ready) {
      pod.editMetadata().addToLabels(SandboxLabels.READY, "true").endMetadata();
    }
    return pod.build();
  }
}
