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
}
