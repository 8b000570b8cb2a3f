package dev.corral.sandbox.kubernetes;

import dev.corral.common.DaemonThreads;
import dev.corral.common.FailedPreconditionException;
import dev.corral.common.UnavailableException;
import dev.corral.sandbox.driver.SandboxConfig;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.dsl.ExecWatch;
import io.fabric8.kubernetes.client.dsl.PodResource;
import io.quarkus.runtime.ShutdownEvent;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.OutputStream;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;
import org.jboss.logging.Logger;

/**
 * Every call corral makes to the Kubernetes API, and only here. fabric8 blocks, so each call runs
 * on one bounded pool of threads, with a time limit, and comes back as a {@link Uni}; a failing or
 * silent API is {@link UnavailableException}, a refused request (4xx) {@link
 * dev.corral.common.FailedPreconditionException}, each with the API server's message only. Pods
 * live in the sandbox namespace.
 */
@ApplicationScoped
public class KubernetesGateway {

  private static final Logger LOGGER = Logger.getLogger(KubernetesGateway.class);

  /** Time limit of one API call (not of an exec, whose limit is the call's own). */
  static final Duration CALL_TIMEOUT = Duration.ofSeconds(30);

  /** The first wait between two reads of a starting pod; it doubles up to {@link #POLL_MOST}. */
  private static final Duration POLL = Duration.ofMillis(100);

  private static final Duration POLL_MOST = Duration.ofSeconds(1);

  /**
   * Why a container waits that no wait will mend: its image name is malformed or must not be
   * pulled, or its configuration is wrong.
   */
  private static final java.util.Set<String> CANNOT_START =
      java.util.Set.of("InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError");

  /**
   * Why a container waits that a registry may mend: a pull failed and is retried with a back-off
   * (the kubelet says so about 10 s after the first failure; a rate limit or an outage of the
   * registry may last longer). Past half the time a pod may take to be ready, the image is taken
   * for one that cannot be pulled.
   */
  private static final String PULL_BACKING_OFF = "ImagePullBackOff";

  private static final int THREADS = 16;
  private static final int QUEUE = 1024;

  private final KubernetesClient client;
  private final SandboxConfig config;
  private final ThreadPoolExecutor pool;

  KubernetesGateway(KubernetesClient client, SandboxConfig config) {
    this.client = client;
    this.config = config;
    this.pool =
        new ThreadPoolExecutor(
            THREADS,
            THREADS,
            60,
            TimeUnit.SECONDS,
            new ArrayBlockingQueue<>(QUEUE),
            DaemonThreads.named("corral-kubernetes"));
    this.pool.allowCoreThreadTimeOut(true);
  }

  void stop(@Observes ShutdownEvent event) {
    pool.shutdownNow();
  }

  String namespace() {
    return config.kubernetes().namespace();
  }

  Uni<Pod> create(Pod pod) {
    return call("create pod " + pod.getMetadata().getName(), () -> pods().resource(pod).create());
  }

  /** The pod, if it exists. */
  Uni<Optional<Pod>> get(String name) {
    return call("read pod " + name, () -> Optional.ofNullable(pod(name).get()));
  }

  /** Pods of the sandbox namespace that carry all of {@code labels}. */
  Uni<List<Pod>> list(Map<String, String> labels) {
    return call("list pods", () -> pods().withLabels(labels).list().getItems());
  }

  /** Deletes a pod at once (no grace period); deleting a pod that is gone is fine. */
  Uni<Void> delete(String name) {
    return call(
        "delete pod " + name,
        () -> {
          pod(name).withGracePeriod(0).delete();
          return null;
        });
  }

  /**
   * Replaces the pod with {@code change} applied, if it is still at the resource version it was
   * read at; false if it changed meanwhile (another replica won) or is gone.
   */
  Uni<Boolean> update(Pod pod, UnaryOperator<PodBuilder> change) {
    return call(
        "update pod " + pod.getMetadata().getName(),
        () -> {
          try {
            pods()
                .resource(change.apply(new PodBuilder(pod)).build())
                .lockResourceVersion(pod.getMetadata().getResourceVersion())
                .update();
            return true;
          } catch (KubernetesClientException conflict) {
            // 409: it changed since it was read; 404: it is gone (deleted by a reconciler)
            if (conflict.getCode() != 409 && conflict.getCode() != 404) {
              throw conflict;
            }
            LOGGER.debugf(
                "pod %s changed meanwhile: %s", pod.getMetadata().getName(), conflict.getMessage());
            return false;
          }
        });
  }

  /** Sets an annotation of the pod as it is now. */
  Uni<Void> annotate(String name, String key, String value) {
    return edit(
        "annotate pod " + name,
        name,
        pod -> pod.editMetadata().addToAnnotations(key, value).endMetadata());
  }

  /** Adds a label to the pod as it is now. */
  Uni<Void> label(String name, String key, String value) {
    return edit(
        "label pod " + name, name, pod -> pod.editMetadata().addToLabels(key, value).endMetadata());
  }

  /** Applies {@code change} to the pod as it is now (a patch: no other change is lost). */
  private Uni<Void> edit(String what, String name, UnaryOperator<PodBuilder> change) {
    return call(
        what,
        () -> {
          pod(name).edit(current -> change.apply(new PodBuilder(current)).build());
          return null;
        });
  }

  /**
   * Waits, without holding a thread, until the pod runs and its containers are ready; fails if it
   * ends, disappears or takes longer than {@code timeout}.
   */
  Uni<Pod> awaitRunning(String name, Duration timeout) {
    return pollUntilRunning(name, POLL, timeout.dividedBy(2))
        .ifNoItem()
        .after(timeout)
        .failWith(
            () ->
                new UnavailableException(
                    "sandbox pod " + name + " was not ready after " + timeout, null));
  }

  private Uni<Pod> pollUntilRunning(String name, Duration wait, Duration pullPatience) {
    Duration next =
        wait.multipliedBy(2).compareTo(POLL_MOST) > 0 ? POLL_MOST : wait.multipliedBy(2);
    return get(name)
        .map(found -> startedOrNull(name, found, pullPatience))
        .flatMap(
            pod ->
                pod != null
                    ? Uni.createFrom().item(pod)
                    : Uni.createFrom()
                        .voidItem()
                        .onItem()
                        .delayIt()
                        .by(wait)
                        .flatMap(ignored -> pollUntilRunning(name, next, pullPatience)));
  }

  /**
   * An exec that opened, then failed before its end: its process may run on in the pod (the kubelet
   * leaves it when the stream goes). An exec that failed to open started nothing anyone knows of.
   */
  static final class ExecBroke extends UnavailableException {
    ExecBroke(Throwable cause) {
      super("the exec in the sandbox's pod failed", cause);
    }
  }

  /** How an exec ended: its exit code (null: the stream closed without one), or out of time. */
  record Exit(Integer code, boolean timedOut) {}

  /**
   * Runs {@code argv} in the pod's container, writing stdout and stderr to {@code output}. Opening
   * the exec uses a pool thread; waiting for its end does not. Cancelling closes the stream.
   */
  Uni<Exit> exec(String name, List<String> argv, Duration timeout, OutputStream output) {
    return call(
            "exec in pod " + name,
            () ->
                pod(name)
                    .withReadyWaitTimeout(0)
                    .writingOutput(output)
                    .writingError(output)
                    .exec(argv.toArray(String[]::new)))
        .flatMap(watch -> awaitExit(watch, timeout));
  }

  private static Uni<Exit> awaitExit(ExecWatch watch, Duration timeout) {
    return Uni.createFrom()
        .completionStage(watch.exitCode())
        .map(code -> new Exit(code, false))
        .ifNoItem()
        .after(timeout)
        .recoverWithItem(new Exit(null, true))
        .onFailure()
        .transform(
            failure -> {
              LOGGER.warnf("a pod exec failed: %s", failure.getMessage());
              return new ExecBroke(failure);
            })
        .onTermination()
        .invoke(watch::close);
  }

  private static Pod startedOrNull(String name, Optional<Pod> found, Duration pullPatience) {
    Pod pod =
        found.orElseThrow(
            () ->
                new FailedPreconditionException(
                    "sandbox pod " + name + " disappeared while it started"));
    String phase = pod.getStatus() == null ? null : pod.getStatus().getPhase();
    if ("Failed".equals(phase) || "Succeeded".equals(phase)) {
      throw new FailedPreconditionException(
          "sandbox pod " + name + " ended while it started (" + phase + ")");
    }
    if (pod.getStatus() != null && pod.getStatus().getContainerStatuses() != null) {
      for (var container : pod.getStatus().getContainerStatuses()) {
        var waiting = container.getState() == null ? null : container.getState().getWaiting();
        if (waiting != null
            && (CANNOT_START.contains(waiting.getReason())
                || (PULL_BACKING_OFF.equals(waiting.getReason())
                    && before(
                        pod.getMetadata().getCreationTimestamp(),
                        java.time.Instant.now().minus(pullPatience))))) {
          throw new FailedPreconditionException(
              "sandbox pod "
                  + name
                  + " cannot start: "
                  + waiting.getReason()
                  + (waiting.getMessage() == null ? "" : " (" + waiting.getMessage() + ")")
                  + "; check the environment's image and resources");
        }
      }
    }
    return running(pod) ? pod : null;
  }

  /**
   * Whether {@code instant}, as the API writes one (a creation timestamp, an annotation), is before
   * {@code limit}; false when there is none or it cannot be read.
   */
  static boolean before(String instant, java.time.Instant limit) {
    try {
      return instant != null && java.time.Instant.parse(instant).isBefore(limit);
    } catch (java.time.format.DateTimeParseException unreadable) {
      return false;
    }
  }

  /** Whether the pod runs and all its containers are ready. */
  static boolean running(Pod pod) {
    if (pod.getStatus() == null || !"Running".equals(pod.getStatus().getPhase())) {
      return false;
    }
    return pod.getStatus().getContainerStatuses() != null
        && pod.getStatus().getContainerStatuses().stream()
            .allMatch(status -> Boolean.TRUE.equals(status.getReady()));
  }

  private io.fabric8.kubernetes.client.dsl.NonNamespaceOperation<
          Pod, io.fabric8.kubernetes.api.model.PodList, PodResource>
      pods() {
    return client.pods().inNamespace(namespace());
  }

  private PodResource pod(String name) {
    return pods().withName(name);
  }

  /** One blocking fabric8 call on the pool, with the time limit of an API call. */
  private <T> Uni<T> call(String what, Supplier<T> work) {
    return Uni.createFrom()
        .<T>emitter(
            emitter -> {
              try {
                pool.execute(
                    () -> {
                      try {
                        emitter.complete(work.get());
                      } catch (KubernetesClientException failure) {
                        emitter.fail(failed(what, failure));
                      } catch (RuntimeException failure) {
                        emitter.fail(failure);
                      }
                    });
              } catch (RejectedExecutionException full) {
                emitter.fail(
                    new UnavailableException(
                        "too many Kubernetes API calls are waiting (" + QUEUE + ")", full));
              }
            })
        .ifNoItem()
        .after(CALL_TIMEOUT)
        .failWith(
            () ->
                new UnavailableException(
                    "the Kubernetes API did not answer in " + CALL_TIMEOUT + " (" + what + ")",
                    null));
  }

  /**
   * What a failed API call tells the client: only the API server's own message (never its address
   * or the client library's dump, which go to the log). A refusal of the request (4xx: admission,
   * an unknown RuntimeClass, a quota) is FAILED_PRECONDITION, not worth retrying as it is; anything
   * else is UNAVAILABLE.
   */
  private static dev.corral.common.CorralException failed(
      String what, KubernetesClientException failure) {
    LOGGER.warnf("Kubernetes API call failed (%s): %s", what, failure.getMessage());
    int code = failure.getCode();
    String reason =
        failure.getStatus() != null && failure.getStatus().getMessage() != null
            ? failure.getStatus().getMessage()
            : code > 0 ? "HTTP " + code : "no answer";
    if (reason.length() > 500) {
      reason = reason.substring(0, 500) + "…";
    }
    if (code >= 400 && code < 500 && code != 408 && code != 429) {
      return new dev.corral.common.FailedPreconditionException(
          "the Kubernetes API refused " + what + ": " + reason);
    }
    return new UnavailableException("the Kubernetes API failed (" + what + "): " + reason, failure);
  }
}
