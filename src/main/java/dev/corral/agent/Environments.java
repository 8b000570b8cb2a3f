package dev.corral.agent;

import dev.corral.common.FailedPreconditionException;
import dev.corral.common.IdKind;
import dev.corral.common.Page;
import dev.corral.common.Paging;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.NetworkMode;
import dev.corral.proto.v1.SandboxDriver;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.function.UnaryOperator;

/** Creates, changes, lists and archives environments. */
@ApplicationScoped
public class Environments {

  /**
   * An environment that every field may change on its own: it has a name, and the kubernetes driver
   * takes every field.
   */
  private static final Environment FIELDS_ALONE =
      Environment.newBuilder()
          .setName("fields-alone")
          .setDriver(SandboxDriver.SANDBOX_DRIVER_KUBERNETES)
          .build();

  private final EnvironmentRepository repository;
  private final EnvironmentAdmission admission;

  Environments(EnvironmentRepository repository, EnvironmentAdmission admission) {
    this.repository = repository;
    this.admission = admission;
  }

  public Uni<Environment> create(Tenant tenant, Environment definition) {
    return Uni.createFrom()
        .item(
            () -> {
              Environment checked =
                  EnvironmentRules.check(
                      withDefaults(EnvironmentRepository.definitionOf(definition)));
              admission.check(Environment.getDefaultInstance(), checked);
              return checked;
            })
        .flatMap(checked -> repository.create(tenant, IdKind.ENVIRONMENT.next(), checked));
  }

  public Uni<Environment> get(Tenant tenant, String environmentId) {
    return Uni.createFrom()
        .item(() -> IdKind.ENVIRONMENT.require("environment_id", environmentId))
        .flatMap(id -> repository.find(tenant, id));
  }

  /** An active environment of {@code tenant} a new sandbox or session may use. */
  public Uni<Environment> usable(Tenant tenant, String field, String environmentId) {
    return Uni.createFrom()
        .item(() -> IdKind.ENVIRONMENT.require(field, environmentId))
        .flatMap(id -> repository.find(tenant, id))
        .invoke(
            environment -> {
              if (environment.hasArchivedAt()) {
                throw new FailedPreconditionException(
                    "environment " + environmentId + " is archived; new sandboxes cannot use it");
              }
            });
  }

  /**
   * Applies {@code change} as the next version.
   *
   * @param expectedVersion 0, or the version the caller expects to change
   */
  public Uni<Environment> update(
      Tenant tenant, String environmentId, int expectedVersion, UnaryOperator<Environment> change) {
    return Uni.createFrom()
        .item(
            () -> {
              if (expectedVersion < 0) {
                throw new dev.corral.common.InvalidArgumentException(
                    "expected_version", "must not be negative");
              }
              String id = IdKind.ENVIRONMENT.require("environment_id", environmentId);
              // what each field holds is checked before the lookup, so that a bad field is
              // INVALID_ARGUMENT whatever the environment's state; what depends on the
              // environment's other fields (its driver, its admission) is checked with them
              EnvironmentRules.check(withDefaults(change.apply(FIELDS_ALONE)));
              return id;
            })
        .flatMap(
            id ->
                repository.update(
                    tenant,
                    id,
                    current -> {
                      if (current.hasArchivedAt()) {
                        throw new FailedPreconditionException(
                            "environment " + id + " is archived and cannot change");
                      }
                      if (expectedVersion != 0 && expectedVersion != current.getVersion()) {
                        throw new dev.corral.common.ConflictException(
                            "environment "
                                + id
                                + " is at version "
                                + current.getVersion()
                                + ", not the expected "
                                + expectedVersion);
                      }
                      // an update reads back as a create of the same fields would
                      Environment next =
                          EnvironmentRules.check(withDefaults(change.apply(current)));
                      admission.check(current, next);
                      return next;
                    }));
  }

  public Uni<Page<Environment>> list(
      Tenant tenant, int pageSize, String pageToken, boolean includeArchived) {
    return Uni.createFrom()
        .item(
            () ->
                Paging.pageSize(
                    "page_size", pageSize, Agents.DEFAULT_PAGE_SIZE, Agents.MAX_PAGE_SIZE))
        .flatMap(
            size ->
                repository
                    .list(
                        tenant,
                        Paging.keyOf("page_token", pageToken, IdKind.ENVIRONMENT::isValid),
                        includeArchived,
                        size + 1)
                    .map(environments -> Page.of(environments, size, Environment::getId)));
  }

  public Uni<Environment> archive(Tenant tenant, String environmentId) {
    return Uni.createFrom()
        .item(() -> IdKind.ENVIRONMENT.require("environment_id", environmentId))
        .flatMap(id -> repository.archive(tenant, id));
  }

  private static Environment withDefaults(Environment environment) {
    Environment.Builder builder = environment.toBuilder();
    if (environment.getDriver() == SandboxDriver.SANDBOX_DRIVER_UNSPECIFIED) {
      builder.setDriver(SandboxDriver.SANDBOX_DRIVER_LOCAL);
    }
    if (environment.getNetworking().getMode() == NetworkMode.NETWORK_MODE_UNSPECIFIED) {
      builder.getNetworkingBuilder().setMode(NetworkMode.NETWORK_MODE_NONE);
    }
    return builder.build();
  }
}
