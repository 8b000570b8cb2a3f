package dev.corral.api;

import dev.corral.proto.v1.CreateCredentialRequest;
import dev.corral.proto.v1.CreateCredentialResponse;
import dev.corral.proto.v1.DeleteCredentialRequest;
import dev.corral.proto.v1.DeleteCredentialResponse;
import dev.corral.proto.v1.GetCredentialRequest;
import dev.corral.proto.v1.GetCredentialResponse;
import dev.corral.proto.v1.ListCredentialsRequest;
import dev.corral.proto.v1.ListCredentialsResponse;
import dev.corral.proto.v1.MutinyVaultServiceGrpc;
import dev.corral.proto.v1.RewrapCredentialsRequest;
import dev.corral.proto.v1.RewrapCredentialsResponse;
import dev.corral.proto.v1.UpdateCredentialRequest;
import dev.corral.proto.v1.UpdateCredentialResponse;
import dev.corral.vault.Credentials;
import io.grpc.ServerServiceDefinition;
import io.quarkus.grpc.GrpcService;
import io.smallrye.mutiny.Uni;
import java.util.Map;

/** corral.v1.VaultService on top of {@link Credentials}. */
@GrpcService
public class VaultGrpcService extends MutinyVaultServiceGrpc.VaultServiceImplBase {

  private final Credentials credentials;

  VaultGrpcService(Credentials credentials) {
    this.credentials = credentials;
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
        .list(Caller.current().tenant(), request.getPageSize(), request.getPageToken())
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
