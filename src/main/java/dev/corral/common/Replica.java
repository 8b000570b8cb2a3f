package dev.corral.common;

import jakarta.enterprise.context.ApplicationScoped;
import java.net.InetAddress;
import java.util.Optional;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * This server process among the replicas: its name in leases and on the sandboxes it hosts. {@code
 * corral.replica-id} sets it (on Kubernetes, the pod name); otherwise host name and pid.
 */
@ApplicationScoped
public class Replica {

  private final String id;

  Replica(@ConfigProperty(name = "corral.replica-id") Optional<String> configured) {
    this.id = configured.filter(value -> !value.isBlank()).orElseGet(Replica::defaultId);
  }

  public String id() {
    return id;
  }

  private static String defaultId() {
    String host;
    try {
      host = InetAddress.getLocalHost().getHostName();
    } catch (java.io.IOException e) {
      host = "localhost";
    }
    return host + "-" + ProcessHandle.current().pid();
  }
}
