package dev.corral.api;

import dev.corral.identity.Role;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ApiKeyServiceGrpc;
import dev.corral.proto.v1.EnvironmentServiceGrpc;
import dev.corral.proto.v1.HarnessServiceGrpc;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.TenantServiceGrpc;
import dev.corral.proto.v1.VaultServiceGrpc;
import io.grpc.MethodDescriptor;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/**
 * The role each RPC needs. An RPC that is in no table needs a role no one has: a new RPC stays
 * closed until it is given one here ({@code MethodRolesTest} checks that every corral RPC is).
 * Operator-only RPCs (tenants, re-wrapping the vault's keys) need an admin of the operator tenant.
 */
public final class MethodRoles {

  private static final Map<String, Role> ROLES = new HashMap<>();

  /** RPCs about the whole deployment: an admin of the operator tenant only. */
  private static final java.util.Set<String> OPERATOR_ONLY = new java.util.HashSet<>();

  static {
    viewer(AgentServiceGrpc.getGetAgentMethod());
    viewer(AgentServiceGrpc.getListAgentsMethod());
    viewer(AgentServiceGrpc.getListAgentVersionsMethod());
    member(AgentServiceGrpc.getCreateAgentMethod());
    member(AgentServiceGrpc.getUpdateAgentMethod());
    member(AgentServiceGrpc.getArchiveAgentMethod());

    viewer(EnvironmentServiceGrpc.getGetEnvironmentMethod());
    viewer(EnvironmentServiceGrpc.getListEnvironmentsMethod());
    member(EnvironmentServiceGrpc.getCreateEnvironmentMethod());
    member(EnvironmentServiceGrpc.getUpdateEnvironmentMethod());
    member(EnvironmentServiceGrpc.getArchiveEnvironmentMethod());

    viewer(SessionServiceGrpc.getGetSessionMethod());
    viewer(SessionServiceGrpc.getListSessionsMethod());
    viewer(SessionServiceGrpc.getGetEventsMethod());
    viewer(SessionServiceGrpc.getStreamEventsMethod());
    member(SessionServiceGrpc.getCreateSessionMethod());
    member(SessionServiceGrpc.getArchiveSessionMethod());
    member(SessionServiceGrpc.getDeleteSessionMethod());
    member(SessionServiceGrpc.getEmitEventMethod());
    viewer(SessionServiceGrpc.getListSessionResourcesMethod());
    member(SessionServiceGrpc.getAddSessionResourceMethod());
    member(SessionServiceGrpc.getRemoveSessionResourceMethod());

    member(HarnessServiceGrpc.getWakeMethod());

    viewer(SandboxServiceGrpc.getGetSandboxMethod());
    viewer(SandboxServiceGrpc.getListSandboxesMethod());
    member(SandboxServiceGrpc.getProvisionMethod());
    member(SandboxServiceGrpc.getExecuteMethod());
    member(SandboxServiceGrpc.getReleaseSandboxMethod());

    admin(ApiKeyServiceGrpc.getCreateApiKeyMethod());
    admin(ApiKeyServiceGrpc.getGetApiKeyMethod());
    admin(ApiKeyServiceGrpc.getListApiKeysMethod());
    admin(ApiKeyServiceGrpc.getRevokeApiKeyMethod());

    viewer(VaultServiceGrpc.getGetCredentialMethod());
    viewer(VaultServiceGrpc.getListCredentialsMethod());
    member(VaultServiceGrpc.getCreateCredentialMethod());
    member(VaultServiceGrpc.getUpdateCredentialMethod());
    member(VaultServiceGrpc.getDeleteCredentialMethod());
    operator(VaultServiceGrpc.getRewrapCredentialsMethod());
    viewer(VaultServiceGrpc.getGetVaultMethod());
    viewer(VaultServiceGrpc.getListVaultsMethod());
    member(VaultServiceGrpc.getCreateVaultMethod());
    member(VaultServiceGrpc.getUpdateVaultMethod());
    member(VaultServiceGrpc.getArchiveVaultMethod());
    member(VaultServiceGrpc.getDeleteVaultMethod());

    viewer(TenantServiceGrpc.getWhoAmIMethod());
    operator(TenantServiceGrpc.getCreateTenantMethod());
    operator(TenantServiceGrpc.getGetTenantMethod());
    operator(TenantServiceGrpc.getListTenantsMethod());
    operator(TenantServiceGrpc.getDisableTenantMethod());
    operator(TenantServiceGrpc.getEnableTenantMethod());
  }

  private MethodRoles() {}

  /** The role {@code fullMethodName} needs, or empty if it is no corral RPC. */
  public static Optional<Role> of(String fullMethodName) {
    return Optional.ofNullable(ROLES.get(fullMethodName));
  }

  /** Whether {@code fullMethodName} is for operators only. */
  public static boolean operatorOnly(String fullMethodName) {
    return OPERATOR_ONLY.contains(fullMethodName);
  }

  /** Every RPC with a role, for tests. */
  static Map<String, Role> all() {
    return Map.copyOf(ROLES);
  }

  private static void viewer(MethodDescriptor<?, ?> method) {
    ROLES.put(method.getFullMethodName(), Role.VIEWER);
  }

  private static void member(MethodDescriptor<?, ?> method) {
    ROLES.put(method.getFullMethodName(), Role.MEMBER);
  }

  private static void admin(MethodDescriptor<?, ?> method) {
    ROLES.put(method.getFullMethodName(), Role.ADMIN);
  }

  private static void operator(MethodDescriptor<?, ?> method) {
    admin(method);
    OPERATOR_ONLY.add(method.getFullMethodName());
  }
}
