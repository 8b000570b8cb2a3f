package dev.corral.sandbox.kubernetes;

import java.util.LinkedHashMap;
import java.util.Map;

/** The labels corral puts on sandbox pods, and only here. */
public final class SandboxLabels {

  public static final String MANAGED_BY = "app.kubernetes.io/managed-by";
  public static final String CORRAL = "corral";
  public static final String COMPONENT = "app.kubernetes.io/component";
  public static final String SANDBOX_COMPONENT = "sandbox";
  public static final String ENVIRONMENT = "corral.dev/environment";
  public static final String SANDBOX = "corral.dev/sandbox";
  public static final String SESSION = "corral.dev/session";

  /** "warm" while a pool pod waits to be claimed; absent once claimed. */
  public static final String POOL = "corral.dev/pool";

  /** Set once a pool pod ran its environment's setup commands and may be claimed. */
  public static final String READY = "corral.dev/ready";

  /** A hash of the spec the pod was made from; a pool pod of an older spec is replaced. */
  public static final String SPEC = "corral.dev/spec";

  /**
   * The annotation naming the replica that prepares a pool pod (starts it and runs its setup): only
   * it does, since setup commands run twice at once in one pod fail, or break each other.
   */
  public static final String PREPARER = "corral.dev/preparer";

  /**
   * The annotation saying when a pool pod's preparer last said it is at work on it (an instant,
   * refreshed at each of its reconciler's passes): another replica takes a pod it has not heard of
   * for a while for abandoned.
   */
  public static final String PREPARER_SEEN = "corral.dev/preparer-seen";

  private SandboxLabels() {}

  /** Labels of every sandbox pod. */
  static Map<String, String> common(String environmentId, String specHash) {
    Map<String, String> labels = new LinkedHashMap<>();
    labels.put(MANAGED_BY, CORRAL);
    labels.put(COMPONENT, SANDBOX_COMPONENT);
    labels.put(ENVIRONMENT, environmentId.isEmpty() ? "default" : environmentId);
    labels.put(SPEC, specHash);
    return labels;
  }
}
