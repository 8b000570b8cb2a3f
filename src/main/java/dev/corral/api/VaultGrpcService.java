package dev.corral.api;

import dev.corral.proto.v1.ArchiveVaultRequest;
import dev.corral.proto.v1.ArchiveVaultResponse;
import dev.corral.proto.v1.CreateCredentialRequest;
import dev.corral.proto.v1.CreateCredentialResponse;
import dev.corral.proto.v1.CreateVaultRequest;
import dev.corral.proto.v1.CreateVaultResponse;
import dev.corral.proto.v1.DeleteCredentialRequest;
import dev.corral.proto.v1.DeleteCredentialResponse;
import dev.corral.proto.v1.DeleteVaultRequest;
import dev.corral.proto.v1.DeleteVaultResponse;
import dev.corral.proto.v1.GetCredentialRequest;
import dev.corral.proto.v1.GetCredentialResponse;
import dev.corral.proto.v1.GetVaultRequest;
import dev.corral.proto.v1.GetVaultResponse;
import dev.corral.proto.v1.ListCredentialsRequest;
import dev.corral.proto.v1.ListCredentialsResponse;
import dev.corral.proto.v1.ListVaultsRequest;
import dev.corral.proto.v1.ListVaultsResponse;
import dev.corral.proto.v1.MutinyVaultServiceGrpc;
import dev.corral.proto.v1.RewrapCredentialsRequest;
import dev.corral.proto.v1.RewrapCredentialsResponse;
import dev.corral.proto.v1.UpdateCredentialRequest;
import dev.corral.proto.v1.UpdateCredentialResponse;
import dev.corral.proto.v1.UpdateVaultRequest;
import dev.corral.proto.v1.UpdateVaultResponse;
import dev.corral.vault.Credentials;
import dev.corral.vault.Vaults;
import io.grpc.ServerServiceDefinition;
import io.quarkus.grpc.GrpcService;
import io.smallrye.mutiny.Uni;
import java.util.Map;
import java.util.Optional;

/** corral.v1.VaultService on top of {@link Credentials}. */
@GrpcService
public class VaultGrpcService extends MutinyVaultServiceGrpc.VaultServiceImplBase {

  private final Credentials credentials;
  private final Vaults vaults;

  VaultGrpcService(Credentials credentials, Vaults vaults) {
    this.credentials = credentials;
    this.vaults = vaults;
  }

  @Override
  public ServerServiceDefinition bindService() {
    return ServiceDefinitions.rewrite(super.bindService(), Map.of());
  }

  @Override
  public Uni<CreateCredentialResponse> createCredential(CreateCredentialRequest request) {
    return credentials
        .create(Caller.current().tenant(), request)
        .map(credential -> CreateCredentialResponse.newBuilder().setCredential(credential).build());
  }

  @Override
  public Uni<UpdateCredentialResponse> updateCredential(UpdateCredentialRequest request) {
    return credentials
        .update(Caller.current().tenant(), request)
        .map(credential -> UpdateCredentialResponse.newBuilder().setCredential(credential).build());
  }

  @Override
  public Uni<GetCredentialResponse> getCredential(GetCredentialRequest request) {
    return credentials
        .get(Caller.current().tenant(), request.getCredentialId())
        .map(credential -> GetCredentialResponse.newBuilder().setCredential(credential).build());
  }

  @Override
  public Uni<ListCredentialsResponse> listCredentials(ListCredentialsRequest request) {
    return credentials
        .list(
            Caller.current().tenant(),
            request.getPageSize(),
            request.getPageToken(),
            request.getVaultId())
        .map(
            page ->
                ListCredentialsResponse.newBuilder()
                    .addAllCredentials(page.items())
                    .setNextPageToken(page.nextPageToken())
                    .build());
  }

  @Override
  public Uni<DeleteCredentialResponse> deleteCredential(DeleteCredentialRequest request) {
    return credentials
        .delete(Caller.current().tenant(), request.getCredentialId())
        .map(ignored -> DeleteCredentialResponse.getDefaultInstance());
  }

  @Override
  public Uni<CreateVaultResponse> createVault(CreateVaultRequest request) {
    return vaults
        .create(Caller.current().tenant(), request.getDisplayName(), request.getMetadataMap())
        .map(vault -> CreateVaultResponse.newBuilder().setVault(vault).build());
  }

  @Override
  public Uni<GetVaultResponse> getVault(GetVaultRequest request) {
    return vaults
        .get(Caller.current().tenant(), request.getVaultId())
        .map(vault -> GetVaultResponse.newBuilder().setVault(vault).build());
  }

  @Override
  public Uni<ListVaultsResponse> listVaults(ListVaultsRequest request) {
    return vaults
        .list(
            Caller.current().tenant(),
            request.getPageSize(),
            request.getPageToken(),
            request.getIncludeArchived())
        .map(
            page ->
                ListVaultsResponse.newBuilder()
                    .addAllVaults(page.items())
                    .setNextPageToken(page.nextPageToken())
                    .build());
  }

  @Override
  public Uni<UpdateVaultResponse> updateVault(UpdateVaultRequest request) {
    return vaults
        .update(
            Caller.current().tenant(),
            request.getVaultId(),
            request.hasDisplayName() ? Optional.of(request.getDisplayName()) : Optional.empty(),
            request.hasMetadata()
                ? Optional.of(request.getMetadata().getEntriesMap())
                : Optional.empty())
        .onFailure(dev.corral.common.InvalidArgumentException.class)
        .transform(
            failure ->
                UpdateFields.renamed(
                    failure,
                    new UpdateFields.Wrapper(
                        request.hasMetadata(), "metadata", "metadata.entries")))
        .map(vault -> UpdateVaultResponse.newBuilder().setVault(vault).build());
  }

  @Override
  public Uni<ArchiveVaultResponse> archiveVault(ArchiveVaultRequest request) {
    return vaults
        .archive(Caller.current().tenant(), request.getVaultId())
        .map(vault -> ArchiveVaultResponse.newBuilder().setVault(vault).build());
  }

  @Override
  public Uni<DeleteVaultResponse> deleteVault(DeleteVaultRequest request) {
    return vaults
        .delete(Caller.current().tenant(), request.getVaultId())
        .map(ignored -> DeleteVaultResponse.getDefaultInstance());
  }

  /** Operators only ({@link MethodRoles}): it touches every tenant's credentials. */
  @Override
  public Uni<RewrapCredentialsResponse> rewrapCredentials(RewrapCredentialsRequest request) {
    return credentials
        .rewrapAll()
        .map(
            done ->
                RewrapCredentialsResponse.newBuilder()
                    .setRewrapped(done.count())
                    .setActiveKeyId(done.activeKeyId())
                    .build());
  }
}
