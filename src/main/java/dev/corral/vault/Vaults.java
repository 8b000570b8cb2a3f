package dev.corral.vault;

import dev.corral.common.FailedPreconditionException;
import dev.corral.common.IdKind;
import dev.corral.common.InputRules;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.NotFoundException;
import dev.corral.common.Page;
import dev.corral.common.Paging;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.Vault;
import dev.corral.session.VaultDirectory;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.UnaryOperator;

/**
 * Vaults: named groups of a tenant's credentials. A session names vaults, and an MCP server of its
 * agent that names no credential of its own uses the one of those vaults bound to its URL.
 */
@ApplicationScoped
public class Vaults implements VaultDirectory {

  private final VaultRepository repository;

  Vaults(VaultRepository repository) {
    this.repository = repository;
  }

  public Uni<Vault> create(Tenant tenant, String displayName, Map<String, String> metadata) {
    return Uni.createFrom()
        .item(
            () -> {
              InputRules.name("display_name", displayName, 1, 256);
              InputRules.metadata("metadata", metadata);
              return Vault.newBuilder()
                  .setId(IdKind.VAULT.next())
                  .setDisplayName(displayName)
                  .putAllMetadata(metadata)
                  .build();
            })
        .flatMap(vault -> repository.insert(tenant, vault));
  }

  public Uni<Vault> get(Tenant tenant, String vaultId) {
    return Uni.createFrom()
        .item(() -> IdKind.VAULT.require("vault_id", vaultId))
        .flatMap(id -> repository.find(tenant, id));
  }

  public Uni<Page<Vault>> list(
      Tenant tenant, int pageSize, String pageToken, boolean includeArchived) {
    return Uni.createFrom()
        .item(() -> Paging.pageSize("page_size", pageSize, 20, 100))
        .flatMap(
            size ->
                repository
                    .list(
                        tenant,
                        Paging.keyOf("page_token", pageToken, IdKind.VAULT::isValid),
                        includeArchived,
                        size + 1)
                    .map(rows -> Page.of(rows, size, Vault::getId)));
  }

  /** Sets what is given: an empty optional keeps the field. */
  public Uni<Vault> update(
      Tenant tenant,
      String vaultId,
      Optional<String> displayName,
      Optional<Map<String, String>> metadata) {
    return patch(
        tenant,
        vaultId,
        displayName,
        metadata.map(entries -> (UnaryOperator<Map<String, String>>) current -> entries));
  }

  /**
   * As {@link #update}, with the metadata made from the vault's current metadata under its row
   * lock: of two patches at once, neither undoes the other.
   */
  public Uni<Vault> patch(
      Tenant tenant,
      String vaultId,
      Optional<String> displayName,
      Optional<UnaryOperator<Map<String, String>>> metadata) {
    return Uni.createFrom()
        .item(
            () -> {
              // what each field holds is checked before the lookup: the metadata as the change
              // makes it of none (a whole new map, or what a patch adds), again under the lock
              displayName.ifPresent(name -> InputRules.name("display_name", name, 1, 256));
              metadata.ifPresent(change -> InputRules.metadata("metadata", change.apply(Map.of())));
              return IdKind.VAULT.require("vault_id", vaultId);
            })
        .flatMap(
            id ->
                repository.update(
                    tenant,
                    id,
                    current -> {
                      if (current.hasArchivedAt()) {
                        throw new FailedPreconditionException(
                            "vault " + id + " is archived and cannot change");
                      }
                      Vault.Builder next = current.toBuilder();
                      displayName.ifPresent(next::setDisplayName);
                      metadata.ifPresent(
                          change -> {
                            Map<String, String> entries = change.apply(current.getMetadataMap());
                            InputRules.metadata("metadata", entries);
                            next.clearMetadata().putAllMetadata(entries);
                          });
                      return next.build();
                    }));
  }

  public Uni<Vault> archive(Tenant tenant, String vaultId) {
    return Uni.createFrom()
        .item(() -> IdKind.VAULT.require("vault_id", vaultId))
        .flatMap(id -> repository.archive(tenant, id));
  }

  /** Deletes the vault and every credential in it. */
  public Uni<Void> delete(Tenant tenant, String vaultId) {
    return Uni.createFrom()
        .item(() -> IdKind.VAULT.require("vault_id", vaultId))
        .flatMap(id -> repository.delete(tenant, id));
  }

  /**
   * @throws InvalidArgumentException (in the Uni) for a malformed, repeated or excess id
   * @throws NotFoundException (in the Uni) for an id that is no usable vault of the tenant
   */
  @Override
  public Uni<Void> requireUsable(Tenant tenant, String field, List<String> vaultIds) {
    if (vaultIds.isEmpty()) {
      return Uni.createFrom().voidItem();
    }
    return Uni.createFrom()
        .item(() -> VaultDirectory.checkIds(field, vaultIds))
        .flatMap(ids -> repository.requireUsable(tenant, ids));
  }
}
