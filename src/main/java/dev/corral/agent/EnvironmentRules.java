package dev.corral.agent;

import dev.corral.common.InputRules;
import dev.corral.common.InvalidArgumentException;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.NetworkMode;
import dev.corral.proto.v1.Networking;
import dev.corral.proto.v1.SandboxDriver;
import dev.corral.proto.v1.SandboxResources;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Pattern;

/** What a valid environment looks like. */
public final class EnvironmentRules {

  public static final int MAX_SETUP_COMMANDS = 32;
  public static final int MAX_SETUP_COMMAND = 10_000;

  /** The most bytes (UTF-8) of an environment's setup commands together. */
  public static final int MAX_SETUP_BYTES = 64 * 1024;

  public static final int MAX_WARM_POOL = 100;
  private static final Pattern DNS_LABEL = Pattern.compile("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?");
  private static final Pattern IMAGE = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}");

  private EnvironmentRules() {}

  public static final int MAX_ALLOWED_HOSTS = 64;
  public static final int MAX_ALLOWED_PORTS = 16;

  private static final Pattern HOST_NAME =
      Pattern.compile(
          "(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*");
  private static final Pattern IPV4 =
      Pattern.compile(
          "((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])");

  private static void networking(String field, Networking networking) {
    NetworkMode mode = networking.getMode();
    if (mode == NetworkMode.UNRECOGNIZED) {
      throw new InvalidArgumentException(field + ".mode", "is not a known network mode");
    }
    if (mode != NetworkMode.NETWORK_MODE_LIMITED) {
      if (networking.getAllowedHostsCount() > 0) {
        throw new InvalidArgumentException(
            field + ".allowed_hosts",
            "is only for limited networking with at least one allowed host");
      }
      if (networking.getAllowedPortsCount() > 0) {
        throw new InvalidArgumentException(
            field + ".allowed_ports",
            "is only for limited networking with at least one allowed host");
      }
      return;
    }
    int hosts = networking.getAllowedHostsCount();
    if (hosts == 0 || hosts > MAX_ALLOWED_HOSTS) {
      throw new InvalidArgumentException(
          field + ".allowed_hosts", "needs 1 to " + MAX_ALLOWED_HOSTS + " hosts with LIMITED");
    }
    Map<String, Integer> seen = new HashMap<>();
    for (int i = 0; i < hosts; i++) {
      String host = networking.getAllowedHosts(i);
      Integer first = seen.putIfAbsent(host, i);
      if (first != null) {
        throw new InvalidArgumentException(
            field + ".allowed_hosts[" + i + "]", "repeats allowed_hosts[" + first + "]");
      }
      String name = host.startsWith("*.") ? host.substring(2) : host;
      // A name's last label is never all digits: that is an address, and must be a valid one.
      boolean numeric = name.substring(name.lastIndexOf('.') + 1).matches("[0-9]+");
      boolean valid =
          (HOST_NAME.matcher(name).matches() && !numeric)
              || (!host.startsWith("*.") && IPV4.matcher(host).matches());
      if (!valid) {
        throw new InvalidArgumentException(
            field + ".allowed_hosts[" + i + "]",
            "must be a lowercase host name, *. and a domain, or an IPv4 address (no scheme, port"
                + " or path)");
      }
    }
    if (networking.getAllowedPortsCount() > MAX_ALLOWED_PORTS) {
      throw new InvalidArgumentException(
          field + ".allowed_ports", "has more than " + MAX_ALLOWED_PORTS + " ports");
    }
    Map<Integer, Integer> ports = new HashMap<>();
    for (int i = 0; i < networking.getAllowedPortsCount(); i++) {
      int port = networking.getAllowedPorts(i);
      if (port < 1 || port > 65535) {
        throw new InvalidArgumentException(
            field + ".allowed_ports[" + i + "]", "must be between 1 and 65535");
      }
      Integer first = ports.putIfAbsent(port, i);
      if (first != null) {
        throw new InvalidArgumentException(
            field + ".allowed_ports[" + i + "]", "repeats allowed_ports[" + first + "]");
      }
    }
  }

  /** Checks the definition fields of {@code environment}; field names are those of the requests. */
  static Environment check(Environment environment) {
    InputRules.name("name", environment.getName(), 1, AgentRules.MAX_NAME);
    InputRules.length("description", environment.getDescription(), 0, AgentRules.MAX_DESCRIPTION);
    if (environment.getDriver() == SandboxDriver.UNRECOGNIZED) {
      throw new InvalidArgumentException("driver", "is not a known sandbox driver");
    }
    if (!environment.getImage().isEmpty() && !IMAGE.matcher(environment.getImage()).matches()) {
      throw new InvalidArgumentException("image", "is not a container image reference");
    }
    resources("resources", environment.getResources());
    networking("networking", environment.getNetworking());
    if (environment.getSetupCommandsCount() > MAX_SETUP_COMMANDS) {
      throw new InvalidArgumentException(
          "setup_commands",
          "has "
              + environment.getSetupCommandsCount()
              + " commands; the limit is "
              + MAX_SETUP_COMMANDS);
    }
    long setupBytes = 0;
    for (int i = 0; i < environment.getSetupCommandsCount(); i++) {
      InputRules.length(
          "setup_commands[" + i + "]", environment.getSetupCommands(i), 1, MAX_SETUP_COMMAND);
      setupBytes += environment.getSetupCommandsBytes(i).size();
    }
    if (setupBytes > MAX_SETUP_BYTES) {
      // every page of environments, and every warm-pool pass over them, reads them whole
      throw new InvalidArgumentException(
          "setup_commands",
          "holds " + setupBytes + " bytes in all; the limit is " + MAX_SETUP_BYTES);
    }
    if (environment.getWarmPoolSize() < 0 || environment.getWarmPoolSize() > MAX_WARM_POOL) {
      throw new InvalidArgumentException(
          "warm_pool_size", "must be between 0 and " + MAX_WARM_POOL);
    }
    if (!environment.getRuntimeClassName().isEmpty()
        && !DNS_LABEL.matcher(environment.getRuntimeClassName()).matches()) {
      throw new InvalidArgumentException(
          "runtime_class_name", "must be a DNS label such as gvisor");
    }
    if (environment.getDriver() != SandboxDriver.SANDBOX_DRIVER_KUBERNETES) {
      // A local sandbox runs the host's tools under bubblewrap: none of these would apply, and a
      // caller who set them would believe in an image or an isolation it does not get.
      kubernetesOnly("image", !environment.getImage().isEmpty());
      kubernetesOnly("runtime_class_name", !environment.getRuntimeClassName().isEmpty());
      kubernetesOnly("warm_pool_size", environment.getWarmPoolSize() > 0);
    }
    InputRules.metadata("metadata", environment.getMetadataMap());
    return environment;
  }

  private static void kubernetesOnly(String field, boolean set) {
    if (set) {
      throw new InvalidArgumentException(
          field,
          "applies to the kubernetes driver only (set the driver to kubernetes); local sandboxes"
              + " run the host's tools under bubblewrap");
    }
  }

  /** Checks resource limits; 0 means "the default". */
  public static SandboxResources resources(String field, SandboxResources resources) {
    positive(field + ".cpu_millis", resources.getCpuMillis(), 64_000);
    positive(field + ".memory_bytes", resources.getMemoryBytes(), 1L << 40);
    positive(field + ".disk_bytes", resources.getDiskBytes(), 1L << 40);
    positive(field + ".call_timeout_ms", resources.getCallTimeoutMs(), 86_400_000L);
    positive(field + ".lifetime_seconds", resources.getLifetimeSeconds(), 30L * 86_400);
    positive(field + ".max_processes", resources.getMaxProcesses(), 65_536);
    if (resources.getMemoryBytes() != 0 && resources.getMemoryBytes() < (64L << 20)) {
      throw new InvalidArgumentException(field + ".memory_bytes", "must be at least 64 MiB");
    }
    if (resources.getMaxProcesses() != 0 && resources.getMaxProcesses() < 16) {
      throw new InvalidArgumentException(field + ".max_processes", "must be at least 16");
    }
    return resources;
  }

  private static void positive(String field, long value, long max) {
    if (value < 0 || value > max) {
      throw new InvalidArgumentException(field, "must be between 0 (the default) and " + max);
    }
  }
}
