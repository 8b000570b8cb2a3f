package dev.corral.session;

import dev.corral.common.HttpUrls;
import dev.corral.common.IdKind;
import dev.corral.common.InputRules;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.GitRepository;
import dev.corral.proto.v1.SessionResource;
import java.net.URI;
import java.util.List;
import java.util.regex.Pattern;

/** What a session's resources look like: git repositories with safe refs and mount paths. */
final class ResourceRules {

  static final int MAX_RESOURCES = 16;

  /** The longest mount path (under /workspace, well within a path's 4096 bytes). */
  static final int MAX_MOUNT_PATH = 1_024;

  /** A ref git accepts and a shell cannot read as an option or an expansion. */
  private static final Pattern REF = Pattern.compile("(?!-)(?!.*\\.\\.)[A-Za-z0-9._/-]{1,255}");

  private static final Pattern SEGMENT = Pattern.compile("(?!\\.{1,2}$)[A-Za-z0-9._-]{1,100}");

  private ResourceRules() {}

  /** The resource with its id assigned and its mount path decided. */
  static SessionResource checked(String field, SessionResource resource) {
    if (!resource.getId().isEmpty()) {
      throw new InvalidArgumentException(
          field + ".id", "is assigned by the server and must be empty");
    }
    if (!resource.hasGitRepository()) {
      throw new InvalidArgumentException(field, "needs git_repository");
    }
    GitRepository repository = resource.getGitRepository();
    String at = field + ".git_repository";
    String url = HttpUrls.normalized(at + ".url", repository.getUrl());
    if (!repository.getRef().isEmpty() && !REF.matcher(repository.getRef()).matches()) {
      throw new InvalidArgumentException(
          at + ".ref",
          "must be a branch, tag or commit of [A-Za-z0-9._/-] (no .., not starting with -)");
    }
    String mount = repository.getMountPath().isEmpty() ? nameOf(url) : repository.getMountPath();
    InputRules.length(at + ".mount_path", mount, 1, MAX_MOUNT_PATH);
    for (String segment : mount.split("/", -1)) {
      if (!SEGMENT.matcher(segment).matches()) {
        throw repository.getMountPath().isEmpty()
            ? new InvalidArgumentException(
                at + ".mount_path",
                "is needed: the url's last segment, which names the directory otherwise, is"
                    + " not a name of [A-Za-z0-9._-]")
            : new InvalidArgumentException(
                at + ".mount_path",
                "must be a relative path of [A-Za-z0-9._-] segments under /workspace (no . or"
                    + " ..)");
      }
    }
    if (!repository.getCredentialId().isEmpty()) {
      IdKind.CREDENTIAL.require(at + ".credential_id", repository.getCredentialId());
    }
    if (resource.hasCreatedAt()) {
      throw new InvalidArgumentException(field + ".created_at", "is assigned by the server");
    }
    return resource.toBuilder()
        .setId(IdKind.SESSION_RESOURCE.next())
        .setCreatedAt(dev.corral.common.ProtoTime.of(java.time.Instant.now()))
        .setGitRepository(repository.toBuilder().setUrl(url).setMountPath(mount))
        .build();
  }

  /**
   * Resources of one session may not share a mount path, and are at most {@link #MAX_RESOURCES}.
   */
  static void checkAll(String field, List<SessionResource> resources) {
    if (resources.size() > MAX_RESOURCES) {
      throw new InvalidArgumentException(
          field, "has " + resources.size() + " resources; the limit is " + MAX_RESOURCES);
    }
    for (int i = 0; i < resources.size(); i++) {
      checkMount(field + "[" + i + "]", resources.subList(0, i), resources.get(i));
    }
  }

  /**
   * Checks {@code added} (the request's {@code field}) against the session's {@code current}
   * resources: RESOURCE_EXHAUSTED past the limit, INVALID_ARGUMENT for a mount path that overlaps.
   */
  static void checkAdded(String field, List<SessionResource> current, SessionResource added) {
    if (current.size() >= MAX_RESOURCES) {
      throw new dev.corral.common.ResourceExhaustedException(
          "the session has " + current.size() + " resources, the most it may; remove one first");
    }
    checkMount(field, current, added);
  }

  private static void checkMount(
      String field, List<SessionResource> others, SessionResource resource) {
    String mount = resource.getGitRepository().getMountPath();
    for (SessionResource earlier : others) {
      String other = earlier.getGitRepository().getMountPath();
      if (mount.equals(other) || mount.startsWith(other + "/") || other.startsWith(mount + "/")) {
        throw new InvalidArgumentException(
            field + ".git_repository.mount_path",
            "overlaps the mount path " + other + " of another repository");
      }
    }
  }

  /** The last path segment of a repository URL, without .git. */
  private static String nameOf(String url) {
    String path = URI.create(url).getPath();
    String[] segments = path.split("/");
    String last = segments.length == 0 ? "" : segments[segments.length - 1];
    last = last.endsWith(".git") ? last.substring(0, last.length() - 4) : last;
    return last.isEmpty() ? "repository" : last;
  }
}
