package dev.corral.sandbox;

import dev.corral.agent.Environments;
import dev.corral.common.IdKind;
import dev.corral.common.NotFoundException;
import dev.corral.common.Tenant;
import dev.corral.egress.EgressGrant;
import dev.corral.egress.GrantSource;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxState;
import dev.corral.session.Sessions;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.Optional;

/**
 * A sandbox's egress grant from its record, for the proxy serving pods: its environment's
 * networking and its session's repositories, while it is ready; nothing once it has ended.
 */
@ApplicationScoped
class SandboxGrants implements GrantSource {

  private final SandboxRepository repository;
  private final Sandboxes sandboxes;
  private final Environments environments;
  private final Sessions sessions;

  SandboxGrants(
      SandboxRepository repository,
      Sandboxes sandboxes,
      Environments environments,
      Sessions sessions) {
    this.repository = repository;
    this.sandboxes = sandboxes;
    this.environments = environments;
    this.sessions = sessions;
  }

  @Override
  public Uni<Optional<EgressGrant>> grantOf(String sandboxId) {
    return now(sandboxId).map(Now::grant); // nothing while it is being provisioned
  }

  @Override
  public Uni<Now> now(String sandboxId) {
    if (!IdKind.SANDBOX.isValid(sandboxId)) {
      return Uni.createFrom().item(new Now(false, Optional.empty()));
    }
    return repository
        .find(sandboxId)
        .flatMap(
            sandbox ->
                sandbox.getState() == SandboxState.SANDBOX_STATE_PROVISIONING
                    ? Uni.createFrom().item(new Now(true, Optional.empty()))
                    : grantOf(sandbox).map(grant -> new Now(false, grant)))
        .onFailure(NotFoundException.class)
        .recoverWithItem(new Now(false, Optional.empty()));
  }

  private Uni<Optional<EgressGrant>> grantOf(Sandbox sandbox) {
    if (sandbox.getState() != SandboxState.SANDBOX_STATE_READY) {
      return Uni.createFrom().item(Optional.empty());
    }
    Tenant tenant = new Tenant(sandbox.getTenantId());
    Uni<Boolean> repositories =
        sandbox.getSessionId().isEmpty()
            ? Uni.createFrom().item(false)
            : sessions.find(sandbox.getSessionId()).map(session -> session.getResourcesCount() > 0);
    // An archived environment's running sandboxes keep its networking.
    String environmentId = sandbox.getEnvironmentId();
    Uni<Optional<EgressGrant>> granted =
        (environmentId.isEmpty()
                ? sandboxes.environment(tenant, "")
                : environments.get(tenant, environmentId))
            .flatMap(
                environment ->
                    repositories.map(
                        repos ->
                            Sandboxes.egressOf(
                                sandbox.getId(),
                                sandbox.getSessionId(),
                                tenant,
                                environment,
                                repos)));
    // A disabled tenant reaches nothing from the next refresh on, on every replica, even before
    // the reconciler of the replica that hosts the sandbox releases it.
    return repository
        .disabled(tenant)
        .flatMap(disabled -> disabled ? Uni.createFrom().item(Optional.empty()) : granted);
  }
}
