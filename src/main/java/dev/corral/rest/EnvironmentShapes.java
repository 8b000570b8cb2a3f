package dev.corral.rest;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.NetworkMode;
import dev.corral.proto.v1.Networking;
import dev.corral.proto.v1.SandboxDriver;
import dev.corral.proto.v1.SandboxResources;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Environments in the API's shape: a {@code cloud} config whose networking is {@code unrestricted}
 * or {@code limited} (corral's {@code none} is {@code limited} with no host), with corral's own
 * settings (driver, image, resources, setup commands) as extra keys of the config. Package lists
 * are not installed by corral: a request with packages is refused rather than ignored.
 */
final class EnvironmentShapes {

  private static final List<String> PACKAGE_MANAGERS =
      List.of("apt", "cargo", "gem", "go", "npm", "pip");

  private EnvironmentShapes() {}

  static ObjectNode environment(Environment environment) {
    ObjectNode node =
        Shapes.object()
            .put("type", "environment")
            .put("id", environment.getId())
            .put("name", environment.getName());
    node.set(
        "description",
        environment.getDescription().isEmpty()
            ? Shapes.NODES.nullNode()
            : Shapes.NODES.textNode(environment.getDescription()));
    ObjectNode config = node.putObject("config").put("type", "cloud");
    config.set("networking", networking(environment.getNetworking()));
    ObjectNode packages = config.putObject("packages").put("type", "packages");
    PACKAGE_MANAGERS.forEach(packages::putArray);
    config.put(
        "driver",
        environment.getDriver() == SandboxDriver.SANDBOX_DRIVER_KUBERNETES
            ? "kubernetes"
            : "local");
    if (!environment.getImage().isEmpty()) {
      config.put("image", environment.getImage());
    }
    ArrayNode setup = config.putArray("setup_commands");
    environment.getSetupCommandsList().forEach(setup::add);
    SandboxResources resources = environment.getResources();
    ObjectNode limits = config.putObject("resources");
    limits.put("cpu_millis", resources.getCpuMillis());
    limits.put("memory_bytes", resources.getMemoryBytes());
    limits.put("disk_bytes", resources.getDiskBytes());
    limits.put("call_timeout_ms", resources.getCallTimeoutMs());
    limits.put("lifetime_seconds", resources.getLifetimeSeconds());
    limits.put("max_processes", resources.getMaxProcesses());
    node.set("metadata", Shapes.metadata(environment.getMetadataMap()));
    node.put("version", environment.getVersion());
    node.set("created_at", Shapes.time(environment.hasCreatedAt(), environment.getCreatedAt()));
    node.set("updated_at", Shapes.time(environment.hasUpdatedAt(), environment.getUpdatedAt()));
    node.set("archived_at", Shapes.time(environment.hasArchivedAt(), environment.getArchivedAt()));
    return node;
  }

  private static ObjectNode networking(Networking networking) {
    if (networking.getMode() == NetworkMode.NETWORK_MODE_UNRESTRICTED) {
      return Shapes.object().put("type", "unrestricted");
    }
    ObjectNode node = Shapes.object().put("type", "limited");
    ArrayNode hosts = node.putArray("allowed_hosts");
    if (networking.getMode() == NetworkMode.NETWORK_MODE_LIMITED) {
      networking.getAllowedHostsList().forEach(hosts::add);
      ArrayNode ports = node.putArray("allowed_ports");
      networking.getAllowedPortsList().forEach(ports::add);
    }
    node.put("allow_mcp_servers", false).put("allow_package_managers", false);
    return node;
  }

  // --- requests
  // -----------------------------------------------------------------------------------

  /** An environment from a create request (corral's networking default: none). */
  static Environment definition(JsonNode body) {
    Environment.Builder environment =
        Environment.newBuilder()
            .setName(Fields.string(body, "name", "name"))
            .setDescription(Fields.optionalString(body, "description", "description").orElse(""))
            .putAllMetadata(
                Fields.metadata(body, "metadata", "metadata")
                    .map(AgentShapes::withoutNulls)
                    .orElse(java.util.Map.of()))
            .setNetworking(Networking.newBuilder().setMode(NetworkMode.NETWORK_MODE_NONE));
    Fields.optionalObject(body, "config", "config").ifPresent(config -> apply(environment, config));
    return environment.build();
  }

  /** Applies an update's fields to {@code current}: left out means kept. */
  static Environment updated(Environment current, JsonNode body) {
    Environment.Builder environment = current.toBuilder();
    if (body.has("name") && body.get("name").isNull()) {
      throw new InvalidArgumentException(
          "name", "cannot be cleared: an environment needs one (leave it out to keep it)");
    }
    Fields.optionalString(body, "name", "name").ifPresent(environment::setName);
    Fields.cleared(body, "description").ifPresent(environment::setDescription);
    // (an environment's metadata patch deletes a key set to null or to "", as the SDKs say)
    Fields.metadata(body, "metadata", "metadata")
        .map(
            patch -> {
              java.util.Map<String, String> deleting = new java.util.LinkedHashMap<>(patch);
              deleting.replaceAll((key, value) -> value == null || value.isEmpty() ? null : value);
              return deleting;
            })
        .ifPresent(
            patch ->
                environment
                    .clearMetadata()
                    .putAllMetadata(AgentShapes.patched(current.getMetadataMap(), patch)));
    Fields.optionalObject(body, "config", "config").ifPresent(config -> apply(environment, config));
    return environment.build();
  }

  private static void apply(Environment.Builder environment, ObjectNode config) {
    String type = Fields.optionalString(config, "type", "config.type").orElse("cloud");
    if (!type.equals("cloud")) {
      throw new InvalidArgumentException(
          "config.type", "only cloud environments exist in corral (its own sandboxes)");
    }
    Fields.optionalObject(config, "networking", "config.networking")
        .ifPresent(networking -> environment.setNetworking(networking(networking)));
    Fields.optionalObject(config, "packages", "config.packages")
        .ifPresent(
            packages -> {
              for (String manager : PACKAGE_MANAGERS) {
                Fields.unsupported(
                    packages,
                    manager,
                    "config.packages." + manager,
                    "corral installs no packages for an environment; use config.setup_commands");
              }
            });
    Fields.optionalString(config, "driver", "config.driver")
        .ifPresent(
            driver -> {
              switch (driver) {
                case "local" -> environment.setDriver(SandboxDriver.SANDBOX_DRIVER_LOCAL);
                case "kubernetes" -> environment.setDriver(SandboxDriver.SANDBOX_DRIVER_KUBERNETES);
                default ->
                    throw new InvalidArgumentException(
                        "config.driver", "must be local or kubernetes");
              }
            });
    Fields.optionalString(config, "image", "config.image").ifPresent(environment::setImage);
    if (config.has("setup_commands")) {
      environment
          .clearSetupCommands()
          .addAllSetupCommands(Fields.strings(config, "setup_commands", "config.setup_commands"));
    }
    Fields.optionalObject(config, "resources", "config.resources")
        .ifPresent(resources -> environment.setResources(resources(resources)));
  }

  private static Networking networking(ObjectNode networking) {
    String type = Fields.type(networking, "config.networking", Set.of("unrestricted", "limited"));
    if (type.equals("unrestricted")) {
      return Networking.newBuilder().setMode(NetworkMode.NETWORK_MODE_UNRESTRICTED).build();
    }
    Fields.unsupported(
        networking,
        "allow_package_managers",
        "config.networking.allow_package_managers",
        "name the package registries in allowed_hosts");
    // MCP servers are called by corral's server, never from a sandbox: nothing to allow.
    Optional<Boolean> ignored =
        Fields.optionalBoolean(
            networking, "allow_mcp_servers", "config.networking.allow_mcp_servers");
    List<String> hosts =
        Fields.strings(networking, "allowed_hosts", "config.networking.allowed_hosts");
    List<JsonNode> ports =
        Fields.array(networking, "allowed_ports", "config.networking.allowed_ports");
    Networking.Builder parsed =
        Networking.newBuilder()
            .setMode(
                hosts.isEmpty() ? NetworkMode.NETWORK_MODE_NONE : NetworkMode.NETWORK_MODE_LIMITED)
            .addAllAllowedHosts(hosts);
    for (int i = 0; i < ports.size(); i++) {
      if (!ports.get(i).isIntegralNumber() || !ports.get(i).canConvertToInt()) {
        throw new InvalidArgumentException(
            "config.networking.allowed_ports[" + i + "]", "must be an integer");
      }
      parsed.addAllowedPorts(ports.get(i).asInt());
    }
    return parsed.build();
  }

  private static SandboxResources resources(ObjectNode resources) {
    SandboxResources.Builder parsed = SandboxResources.newBuilder();
    String at = "config.resources.";
    Fields.optionalInt(resources, "cpu_millis", at + "cpu_millis").ifPresent(parsed::setCpuMillis);
    Fields.optionalInt(resources, "max_processes", at + "max_processes")
        .ifPresent(parsed::setMaxProcesses);
    Fields.optionalLong(resources, "memory_bytes", at + "memory_bytes")
        .ifPresent(parsed::setMemoryBytes);
    Fields.optionalLong(resources, "disk_bytes", at + "disk_bytes").ifPresent(parsed::setDiskBytes);
    Fields.optionalLong(resources, "call_timeout_ms", at + "call_timeout_ms")
        .ifPresent(parsed::setCallTimeoutMs);
    Fields.optionalLong(resources, "lifetime_seconds", at + "lifetime_seconds")
        .ifPresent(parsed::setLifetimeSeconds);
    return parsed.build();
  }
}
