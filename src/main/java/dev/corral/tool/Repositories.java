package dev.corral.tool;

import dev.corral.egress.EgressConfig;
import dev.corral.proto.v1.ClonedRepository;
import dev.corral.proto.v1.GitRepository;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SessionResource;
import dev.corral.sandbox.Sandboxes;
import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.SandboxCommand;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Clones a session's git repositories into its new sandbox, each under /workspace at its mount
 * path. The remote is corral's git endpoint ({@code http://corral-git/<resource id>}, through the
 * sandbox's egress proxy), never the real URL with a token: corral adds the credential on its way
 * out. A clone that fails is reported (in sandbox.provisioned, and to the model), not fatal: the
 * sandbox serves the session without it.
 */
@ApplicationScoped
class Repositories {

  /** Bytes of a failed clone's output kept as its error. */
  private static final int ERROR_CAP = 1024;

  private static final Pattern COMMIT = Pattern.compile("[0-9a-f]{40}|[0-9a-f]{64}");

  /**
   * Arguments: the gateway URL, the mount path, the ref (may be empty). git reaches the gateway
   * through the sandbox's proxy settings (http_proxy), as the sandbox's own git commands do later.
   * A commit id is checked out after the clone; a branch or tag is cloned directly. Prints the
   * commit at HEAD.
   */
  static final String CLONE =
      """
      a=("${__corral_a[@]}")
      export GIT_TERMINAL_PROMPT=0
      dir="/workspace/${a[1]}"
      [ -e "$dir" ] && { echo "corral: /workspace/${a[1]} already exists"; exit 2; }
      mkdir -p -- "$(dirname -- "$dir")" || exit 2
      [ -n "$http_proxy" ] || { echo "corral: this sandbox has no proxy settings"; exit 2; }
      if [ -z "${a[2]}" ] || [[ "${a[2]}" =~ ^[0-9a-f]{7,64}$ ]]; then
        git clone --quiet -- "${a[0]}" "$dir" 2>&1 || exit 1
      else
        git clone --quiet --branch "${a[2]}" -- "${a[0]}" "$dir" 2>&1 || exit 1
      fi
      cd -- "$dir" || exit 1
      if [[ "${a[2]}" =~ ^[0-9a-f]{7,64}$ ]]; then
        git -c advice.detachedHead=false checkout --quiet "${a[2]}" -- 2>&1 || exit 1
      fi
      git rev-parse HEAD
      """;

  private final Sandboxes sandboxes;
  private final EgressConfig egress;

  Repositories(Sandboxes sandboxes, EgressConfig egress) {
    this.sandboxes = sandboxes;
    this.egress = egress;
  }

  /** Clones {@code resources}' repositories into {@code sandbox}, one after another. */
  Uni<List<ClonedRepository>> cloneAll(
      Sandbox sandbox, List<SessionResource> resources, Duration timeout) {
    if (resources.isEmpty()) {
      return Uni.createFrom().item(List.of());
    }
    return Multi.createFrom()
        .iterable(resources)
        .filter(SessionResource::hasGitRepository)
        .onItem()
        .transformToUniAndConcatenate(resource -> cloneOne(sandbox, resource, timeout))
        .collect()
        .asList();
  }

  private Uni<ClonedRepository> cloneOne(
      Sandbox sandbox, SessionResource resource, Duration timeout) {
    GitRepository repository = resource.getGitRepository();
    ClonedRepository.Builder cloned =
        ClonedRepository.newBuilder()
            .setResourceId(resource.getId())
            .setUrl(repository.getUrl())
            .setMountPath(repository.getMountPath());
    SandboxCommand command =
        new SandboxCommand(
            CLONE,
            List.of(
                bytes("http://" + egress.gitHost() + "/" + resource.getId()),
                bytes(repository.getMountPath()),
                bytes(repository.getRef())),
            timeout,
            ERROR_CAP,
            true);
    return sandboxes
        .run(sandbox, command)
        .map(result -> outcome(cloned, result))
        .onFailure(dev.corral.common.CorralException.class)
        .recoverWithItem(failure -> cloned.setError(failure.getMessage()).build());
  }

  private static ClonedRepository outcome(ClonedRepository.Builder cloned, ExecResult result) {
    String output = new String(result.output(), StandardCharsets.UTF_8).strip();
    String last = output.substring(output.lastIndexOf('\n') + 1);
    if (result.exitCode() == 0 && COMMIT.matcher(last).matches()) {
      return cloned.setCommit(last).build();
    }
    String why =
        result.timedOut()
            ? "the clone ran out of time"
            : output.isEmpty() ? "git exited with " + result.exitCode() : output;
    return cloned.setError(why).build();
  }

  private static byte[] bytes(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }
}
