package dev.corral.rest;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.common.IdKind;
import dev.corral.common.NotFoundException;
import dev.corral.proto.v1.Credential;
import dev.corral.proto.v1.VaultServiceGrpc;
import dev.corral.vault.Credentials;
import dev.corral.vault.Vaults;
import io.smallrye.mutiny.Uni;
import io.vertx.ext.web.Router;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.Map;
import java.util.function.UnaryOperator;

/** {@code /v1/vaults} and their credentials, on {@link Vaults} and {@link Credentials}. */
@ApplicationScoped
class VaultRoutes {

  private final Vaults vaults;
  private final Credentials credentials;

  VaultRoutes(Vaults vaults, Credentials credentials) {
    this.vaults = vaults;
    this.credentials = credentials;
  }

  void install(Router router) {
    router
        .post("/v1/vaults")
        .handler(RestCall.json(VaultServiceGrpc.getCreateVaultMethod(), this::create));
    router
        .get("/v1/vaults")
        .handler(RestCall.json(VaultServiceGrpc.getListVaultsMethod(), this::list));
    router
        .get("/v1/vaults/:vault_id")
        .handler(RestCall.json(VaultServiceGrpc.getGetVaultMethod(), this::retrieve));
    router
        .post("/v1/vaults/:vault_id")
        .handler(RestCall.json(VaultServiceGrpc.getUpdateVaultMethod(), this::update));
    router
        .post("/v1/vaults/:vault_id/archive")
        .handler(RestCall.json(VaultServiceGrpc.getArchiveVaultMethod(), this::archive));
    router
        .delete("/v1/vaults/:vault_id")
        .handler(RestCall.json(VaultServiceGrpc.getDeleteVaultMethod(), this::delete));
    router
        .post("/v1/vaults/:vault_id/credentials")
        .handler(
            RestCall.json(VaultServiceGrpc.getCreateCredentialMethod(), this::createCredential));
    router
        .get("/v1/vaults/:vault_id/credentials")
        .handler(RestCall.json(VaultServiceGrpc.getListCredentialsMethod(), this::credentials));
    router
        .get("/v1/vaults/:vault_id/credentials/:credential_id")
        .handler(RestCall.json(VaultServiceGrpc.getGetCredentialMethod(), this::credential));
    router
        .post("/v1/vaults/:vault_id/credentials/:credential_id")
        .handler(
            RestCall.json(VaultServiceGrpc.getUpdateCredentialMethod(), this::updateCredential));
    router
        .delete("/v1/vaults/:vault_id/credentials/:credential_id")
        .handler(
            RestCall.json(VaultServiceGrpc.getDeleteCredentialMethod(), this::deleteCredential));
  }

  private Uni<ObjectNode> create(RestCall call) {
    ObjectNode body = call.body();
    return vaults
        .create(
            call.tenant(),
            Fields.string(body, "display_name", "display_name"),
            Fields.metadata(body, "metadata", "metadata")
                .map(AgentShapes::withoutNulls)
                .orElse(java.util.Map.of()))
        .map(VaultShapes::vault);
  }

  private Uni<ObjectNode> list(RestCall call) {
    return RestCall.listing(
            () ->
                vaults.list(
                    call.tenant(), call.limit(100), call.page(), call.flag("include_archived")))
        .map(page -> Shapes.page(page, VaultShapes::vault));
  }

  private Uni<ObjectNode> retrieve(RestCall call) {
    return vaults.get(call.tenant(), call.path("vault_id")).map(VaultShapes::vault);
  }

  private Uni<ObjectNode> update(RestCall call) {
    ObjectNode body = call.body();
    String id = call.path("vault_id");
    var patch = Fields.metadata(body, "metadata", "metadata");
    // the patch is applied to the metadata as it is under the vault's lock, not as read before
    return vaults
        .patch(
            call.tenant(),
            id,
            Fields.optionalString(body, "display_name", "display_name"),
            patch.map(
                entries ->
                    (UnaryOperator<Map<String, String>>)
                        current -> AgentShapes.patched(current, entries)))
        .map(VaultShapes::vault);
  }

  private Uni<ObjectNode> archive(RestCall call) {
    return vaults.archive(call.tenant(), call.path("vault_id")).map(VaultShapes::vault);
  }

  private Uni<ObjectNode> delete(RestCall call) {
    String id = call.path("vault_id");
    return vaults
        .delete(call.tenant(), id)
        .map(ignored -> Shapes.object().put("id", id).put("type", "vault_deleted"));
  }

  private Uni<ObjectNode> createCredential(RestCall call) {
    String vault = call.path("vault_id");
    ObjectNode body = call.body();
    // the request's own fields are checked before the vault is looked up (as gRPC's
    // CreateCredential does); an unknown or archived vault is refused by the creation itself
    return VaultShapes.fieldNames(body)
        .on(
            Uni.createFrom()
                .deferred(() -> credentials.create(call.tenant(), VaultShapes.create(vault, body))))
        .map(VaultShapes::credential);
  }

  private Uni<ObjectNode> credentials(RestCall call) {
    String vault = call.path("vault_id");
    return vaults
        .get(call.tenant(), vault)
        .flatMap(
            found ->
                RestCall.listing(
                    () -> credentials.list(call.tenant(), call.limit(100), call.page(), vault)))
        .map(page -> Shapes.page(page, VaultShapes::credential));
  }

  /** The credential, if it is one of the vault's (another vault's reads as unknown). */
  private Uni<Credential> inVault(RestCall call) {
    String vault = call.path("vault_id");
    String id = call.path("credential_id");
    return Uni.createFrom()
        .item(() -> IdKind.VAULT.require("vault_id", vault))
        .flatMap(ignored -> credentials.get(call.tenant(), id))
        .invoke(
            credential -> {
              if (!credential.getVaultId().equals(vault)) {
                throw new NotFoundException("credential", id);
              }
            });
  }

  private Uni<ObjectNode> credential(RestCall call) {
    return inVault(call).map(VaultShapes::credential);
  }

  private Uni<ObjectNode> updateCredential(RestCall call) {
    ObjectNode body = call.body();
    String id = call.path("credential_id");
    return VaultShapes.fieldNames(body)
        .on(
            inVault(call)
                .flatMap(
                    current ->
                        credentials.update(
                            call.tenant(),
                            VaultShapes.update(id, current, body),
                            VaultShapes.metadataPatch(body))))
        .map(VaultShapes::credential);
  }

  private Uni<ObjectNode> deleteCredential(RestCall call) {
    String id = call.path("credential_id");
    return inVault(call)
        .flatMap(found -> credentials.delete(call.tenant(), id))
        .map(ignored -> Shapes.object().put("id", id).put("type", "vault_credential_deleted"));
  }
}
