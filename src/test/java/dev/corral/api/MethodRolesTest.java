package dev.corral.api;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.identity.Role;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ApiKeyServiceGrpc;
import dev.corral.proto.v1.EnvironmentServiceGrpc;
import dev.corral.proto.v1.HarnessServiceGrpc;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.TenantServiceGrpc;
import io.grpc.MethodDescriptor;
import io.grpc.ServiceDescriptor;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class MethodRolesTest {

  private static final List<ServiceDescriptor> SERVICES =
      List.of(
          AgentServiceGrpc.getServiceDescriptor(),
          EnvironmentServiceGrpc.getServiceDescriptor(),
          SessionServiceGrpc.getServiceDescriptor(),
          HarnessServiceGrpc.getServiceDescriptor(),
          SandboxServiceGrpc.getServiceDescriptor(),
          ApiKeyServiceGrpc.getServiceDescriptor(),
          TenantServiceGrpc.getServiceDescriptor(),
          dev.corral.proto.v1.VaultServiceGrpc.getServiceDescriptor());

  @Test
  void everyRpcOfEveryCorralServiceNeedsARoleAndNoOtherIsListed() {
    Set<String> methods = new HashSet<>();
    for (ServiceDescriptor service : SERVICES) {
      for (MethodDescriptor<?, ?> method : service.getMethods()) {
        methods.add(method.getFullMethodName());
      }
    }
    assertThat(MethodRoles.all().keySet()).containsExactlyInAnyOrderElementsOf(methods);
  }

  @Test
  void readsNeedViewersWritesMembersAndKeysAdmins() {
    assertThat(MethodRoles.of("corral.v1.SessionService/StreamEvents")).contains(Role.VIEWER);
    assertThat(MethodRoles.of("corral.v1.SessionService/GetEvents")).contains(Role.VIEWER);
    assertThat(MethodRoles.of("corral.v1.SessionService/EmitEvent")).contains(Role.MEMBER);
    assertThat(MethodRoles.of("corral.v1.SandboxService/Execute")).contains(Role.MEMBER);
    assertThat(MethodRoles.of("corral.v1.HarnessService/Wake")).contains(Role.MEMBER);
    assertThat(MethodRoles.of("corral.v1.ApiKeyService/ListApiKeys")).contains(Role.ADMIN);
    assertThat(MethodRoles.of("corral.v1.NoSuchService/Anything")).isEmpty();
  }
}
