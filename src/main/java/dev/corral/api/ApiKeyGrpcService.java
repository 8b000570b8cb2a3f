package dev.corral.api;

import dev.corral.identity.ApiKeys;
import dev.corral.proto.v1.CreateApiKeyRequest;
import dev.corral.proto.v1.CreateApiKeyResponse;
import dev.corral.proto.v1.GetApiKeyRequest;
import dev.corral.proto.v1.GetApiKeyResponse;
import dev.corral.proto.v1.ListApiKeysRequest;
import dev.corral.proto.v1.ListApiKeysResponse;
import dev.corral.proto.v1.MutinyApiKeyServiceGrpc;
import dev.corral.proto.v1.RevokeApiKeyRequest;
import dev.corral.proto.v1.RevokeApiKeyResponse;
import io.grpc.ServerServiceDefinition;
import io.quarkus.grpc.GrpcService;
import io.smallrye.mutiny.Uni;
import java.util.Map;

/** corral.v1.ApiKeyService on top of {@link ApiKeys}. */
@GrpcService
public class ApiKeyGrpcService extends MutinyApiKeyServiceGrpc.ApiKeyServiceImplBase {

  private final ApiKeys keys;

  ApiKeyGrpcService(ApiKeys keys) {
    this.keys = keys;
  }

  @Override
  public ServerServiceDefinition bindService() {
    return ServiceDefinitions.rewrite(super.bindService(), Map.of());
  }

  @Override
  public Uni<CreateApiKeyResponse> createApiKey(CreateApiKeyRequest request) {
    return keys.create(
            Caller.current(), request.getName(), request.getRole(), request.getTenantId())
        .map(
            created ->
                CreateApiKeyResponse.newBuilder()
                    .setApiKey(created.record())
                    .setKey(created.key())
                    .build());
  }

  @Override
  public Uni<GetApiKeyResponse> getApiKey(GetApiKeyRequest request) {
    return keys.get(Caller.current(), request.getApiKeyId(), request.getTenantId())
        .map(key -> GetApiKeyResponse.newBuilder().setApiKey(key).build());
  }

  @Override
  public Uni<ListApiKeysResponse> listApiKeys(ListApiKeysRequest request) {
    return keys.list(
            Caller.current(),
            request.getPageSize(),
            request.getPageToken(),
            request.getIncludeRevoked(),
            request.getTenantId())
        .map(
            page ->
                ListApiKeysResponse.newBuilder()
                    .addAllApiKeys(page.items())
                    .setNextPageToken(page.nextPageToken())
                    .build());
  }

  @Override
  public Uni<RevokeApiKeyResponse> revokeApiKey(RevokeApiKeyRequest request) {
    return keys.revoke(Caller.current(), request.getApiKeyId(), request.getTenantId())
        .map(key -> RevokeApiKeyResponse.newBuilder().setApiKey(key).build());
  }
}
