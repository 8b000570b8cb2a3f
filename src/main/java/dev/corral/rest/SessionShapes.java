package dev.corral.rest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.GitRepository;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionResource;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.proto.v1.UserMessage;
import java.net.URI;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Sessions and their resources in the API's shape. A session embeds its agent as resolved; its
 * usage has the API's token fields; corral's stop reason and last seq ride along as extra keys. Git
 * repositories are {@code github_repository} resources (any smart-HTTP host), mounted under {@code
 * /workspace}.
 */
final class SessionShapes {

  private static final Pattern COMMIT = Pattern.compile("[0-9a-f]{7,64}");
  private static final String WORKSPACE = "/workspace/";

  private SessionShapes() {}

  static ObjectNode session(Session session) {
    ObjectNode node =
        Shapes.object()
            .put("type", "session")
            .put("id", session.getId())
            .put("status", status(session.getStatus()));
    node.set("agent", AgentShapes.agent(session.getAgent()));
    node.put("environment_id", session.getEnvironmentId());
    node.set(
        "title",
        session.getTitle().isEmpty()
            ? Shapes.NODES.nullNode()
            : Shapes.NODES.textNode(session.getTitle()));
    node.set("metadata", Shapes.metadata(session.getMetadataMap()));
    ArrayNode resources = node.putArray("resources");
    session.getResourcesList().forEach(resource -> resources.add(resource(resource, session)));
    ArrayNode vaults = node.putArray("vault_ids");
    session.getVaultIdsList().forEach(vaults::add);
    node.putArray("outcome_evaluations");
    node.putObject("stats");
    ObjectNode usage =
        node.putObject("usage")
            .put("input_tokens", session.getUsage().getInputTokens())
            .put("output_tokens", session.getUsage().getOutputTokens())
            .put("cache_read_input_tokens", session.getUsage().getCacheReadInputTokens())
            .put("cache_creation_input_tokens", session.getUsage().getCacheCreationInputTokens());
    // the API splits cache writes by lifetime; corral's harness only writes 5-minute entries
    usage
        .putObject("cache_creation")
        .put("ephemeral_5m_input_tokens", session.getUsage().getCacheCreationInputTokens())
        .put("ephemeral_1h_input_tokens", 0);
    node.set("created_at", Shapes.time(session.hasCreatedAt(), session.getCreatedAt()));
    node.set("updated_at", Shapes.time(session.hasUpdatedAt(), session.getUpdatedAt()));
    node.set("archived_at", Shapes.time(session.hasArchivedAt(), session.getArchivedAt()));
    node.put("last_seq", session.getLastSeq());
    if (session.hasStopReason()) {
      node.set("stop_reason", EventShapes.stopReason(session.getStopReason()));
    }
    if (session.hasBudget()) {
      node.putObject("corral_budget")
          .put("max_tokens", session.getBudget().getMaxTokens())
          .put("max_model_requests", session.getBudget().getMaxModelRequests());
    }
    return node;
  }

  static String status(SessionStatus status) {
    return switch (status) {
      case SESSION_STATUS_RUNNING -> "running";
      case SESSION_STATUS_RESCHEDULING -> "rescheduling";
      case SESSION_STATUS_TERMINATED -> "terminated";
      default -> "idle";
    };
  }

  static SessionStatus status(String status, String field) {
    return switch (status) {
      case "idle" -> SessionStatus.SESSION_STATUS_IDLE;
      case "running" -> SessionStatus.SESSION_STATUS_RUNNING;
      case "rescheduling" -> SessionStatus.SESSION_STATUS_RESCHEDULING;
      case "terminated" -> SessionStatus.SESSION_STATUS_TERMINATED;
      default ->
          throw new InvalidArgumentException(
              field, "must be idle, running, rescheduling or terminated");
    };
  }

  static ObjectNode resource(SessionResource resource, Session session) {
    GitRepository repository = resource.getGitRepository();
    ObjectNode node =
        Shapes.object()
            .put("type", "github_repository")
            .put("id", resource.getId())
            .put("url", repository.getUrl())
            .put("mount_path", WORKSPACE + repository.getMountPath());
    if (!repository.getRef().isEmpty()) {
      node.set(
          "checkout",
          COMMIT.matcher(repository.getRef()).matches()
              ? Shapes.object().put("type", "commit").put("sha", repository.getRef())
              : Shapes.object().put("type", "branch").put("name", repository.getRef()));
    }
    if (!repository.getCredentialId().isEmpty()) {
      node.put("credential_id", repository.getCredentialId());
    }
    boolean dated = resource.hasCreatedAt();
    node.set(
        "created_at",
        Shapes.time(
            dated || session.hasCreatedAt(),
            dated ? resource.getCreatedAt() : session.getCreatedAt()));
    node.set("updated_at", node.get("created_at"));
    return node;
  }

  // --- requests
  // -----------------------------------------------------------------------------------

  /** A repository resource of a request; {@code credential} is the vault credential to use. */
  static SessionResource resource(ObjectNode resource, String at, String credential) {
    String type = Fields.type(resource, at, Set.of("github_repository"));
    String url = Fields.string(resource, "url", at + ".url");
    GitRepository.Builder repository =
        GitRepository.newBuilder().setUrl(url).setCredentialId(credential);
    Fields.optionalString(resource, "mount_path", at + ".mount_path")
        .ifPresent(mount -> repository.setMountPath(mountPath(mount, at + ".mount_path")));
    Fields.optionalObject(resource, "checkout", at + ".checkout")
        .ifPresent(
            checkout -> {
              String kind = Fields.type(checkout, at + ".checkout", Set.of("branch", "commit"));
              repository.setRef(
                  kind.equals("branch")
                      ? Fields.string(checkout, "name", at + ".checkout.name")
                      : Fields.string(checkout, "sha", at + ".checkout.sha"));
            });
    return SessionResource.newBuilder().setGitRepository(repository).build();
  }

  /** corral mounts under /workspace: {@code /workspace/app} or {@code app}. */
  private static String mountPath(String mount, String field) {
    if (mount.startsWith(WORKSPACE)) {
      return mount.substring(WORKSPACE.length());
    }
    if (mount.startsWith("/")) {
      throw new InvalidArgumentException(field, "must be under /workspace");
    }
    return mount;
  }

  /** The origin (scheme, host and port) a repository's token is bound to. */
  static String origin(String url, String field) {
    try {
      URI uri = URI.create(url);
      if (uri.getHost() == null || uri.getScheme() == null) {
        throw new InvalidArgumentException(field, "has no scheme or host");
      }
      String scheme = uri.getScheme().toLowerCase(Locale.ROOT);
      String host = uri.getHost().toLowerCase(Locale.ROOT);
      if (scheme.equals("https") && (uri.getPort() < 0 || uri.getPort() == 443)) {
        return host; // the vault's short form for https on its usual port
      }
      return scheme + "://" + host + (uri.getPort() < 0 ? "" : ":" + uri.getPort());
    } catch (IllegalArgumentException e) {
      throw new InvalidArgumentException(field, "is not a URL");
    }
  }

  /** A create request's initial events: user messages only, as the API allows. */
  static List<Event> initialEvents(JsonNode body) {
    List<ObjectNode> events = Fields.objects(body, "initial_events", "initial_events");
    List<Event> parsed = new ArrayList<>();
    for (int i = 0; i < events.size(); i++) {
      String at = "initial_events[" + i + "]";
      Fields.type(events.get(i), at, Set.of("user.message"));
      parsed.add(
          Event.newBuilder()
              .setUserMessage(
                  UserMessage.newBuilder()
                      .addAllContent(Shapes.content(events.get(i), "content", at + ".content")))
              .build());
    }
    return parsed;
  }

  /** The agent a create request names: an id (latest version) or {@code {type, id, version}}. */
  record AgentRef(String id, int version) {}

  static AgentRef agent(JsonNode body) {
    if (!Fields.has(body, "agent")) {
      throw new InvalidArgumentException("agent", "is required");
    }
    JsonNode agent = body.get("agent");
    if (agent.isTextual()) {
      return new AgentRef(agent.asText(), 0);
    }
    if (!agent.isObject()) {
      throw new InvalidArgumentException("agent", "must be an agent id or an object");
    }
    String type = Fields.optionalString(agent, "type", "agent.type").orElse("agent");
    if (!type.equals("agent")) {
      throw new InvalidArgumentException(
          "agent.type", "corral sessions take an agent as it is (no agent_with_overrides)");
    }
    return new AgentRef(
        Fields.string(agent, "id", "agent.id"),
        Fields.optionalInt(agent, "version", "agent.version").orElse(0));
  }
}
