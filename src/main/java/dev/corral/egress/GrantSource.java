package dev.corral.egress;

import io.smallrye.mutiny.Uni;
import java.util.Optional;

/**
 * What a sandbox that reaches the proxy over the network (a Kubernetes pod, on any replica) may
 * reach now, from its record: nothing (empty) unless it is ready and its environment or session
 * grants something. The sandbox domain provides it, so that egress knows no sandbox record.
 */
public interface GrantSource {

  Uni<Optional<EgressGrant>> grantOf(String sandboxId);

  /**
   * What a sandbox may reach now, for one served since it was provisioned: {@code provisioning}
   * while that still goes on (its setup commands keep the grant it was given).
   */
  Uni<Now> now(String sandboxId);

  record Now(boolean provisioning, Optional<EgressGrant> grant) {}
}
