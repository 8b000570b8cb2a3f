package dev.corral.sandbox.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import dev.corral.proto.v1.CreateEnvironmentRequest;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.EnvironmentServiceGrpc;
import dev.corral.proto.v1.ListSandboxesRequest;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxDriver;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.UpdateEnvironmentRequest;
import dev.corral.testing.FakeKubernetes;
import dev.corral.testing.Fixtures;
import dev.corral.testing.InjectFakeKubernetes;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.client.NamespacedKubernetesClient;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import org.junit.jupiter.api.Test;

/**
 * The operator decides which images and RuntimeClasses tenants' pods may use (the profile allows
 * images under registry.corp/sandboxes/ and the RuntimeClasses gvisor, the default, and kata): a
 * tenant cannot run another tenant's private image that a node has cached, nor step out of the
 * sandbox runtime that keeps tenants apart.
 */
@QuarkusTest
@WithTestResource(FakeKubernetes.class)
@TestProfile(KubernetesEgressTest.Profile.class)
class KubernetesPolicyTest {

  @InjectFakeKubernetes NamespacedKubernetesClient cluster;

  @jakarta.inject.Inject io.vertx.mutiny.sqlclient.Pool pool;

  @GrpcClient("corral")
  SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  @GrpcClient("corral")
  EnvironmentServiceGrpc.EnvironmentServiceBlockingStub environments;

  @Test
  void podsUseOnlyTheImagesAndRuntimeClassesTheOperatorAllows() throws Exception {
    long before = liveSandboxes();

    // When environments name an image outside the allowed registry, or a RuntimeClass outside the
    // allowed ones (runc: the cluster's plain runtime)
    StatusRuntimeException otherImage =
        createFails(request("registry.corp/tenant-b/agent-base:1.4", ""));
    StatusRuntimeException lookalike = createFails(request("registry.corp/sandboxes.evil/x:1", ""));
    StatusRuntimeException runc = createFails(request("", "runc"));

    // Then they are refused when made, each naming its field and what is allowed
    assertThat(otherImage.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(otherImage.getStatus().getDescription())
        .contains("image", "registry.corp/tenant-b/agent-base:1.4", "registry.corp/sandboxes/");
    assertThat(lookalike.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(runc.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);
    assertThat(runc.getStatus().getDescription()).contains("runtime_class_name", "runc", "gvisor");

    // And an allowed environment cannot be changed to such an image
    Environment stale = environment("registry.corp/sandboxes/python:3.12", "");
    StatusRuntimeException changed =
        catchThrowableOfType(
            StatusRuntimeException.class,
            () ->
                environments.updateEnvironment(
                    UpdateEnvironmentRequest.newBuilder()
                        .setEnvironmentId(stale.getId())
                        .setImage("registry.corp/tenant-b/agent-base:1.4")
                        .build()));
    assertThat(changed.getStatus().getCode()).isEqualTo(Status.Code.INVALID_ARGUMENT);

    // When an environment already names them (made before the operator tightened the policy)
    Fixtures.rewriteEnvironment(
        pool,
        stale.getId(),
        environment ->
            environment.setImage("registry.corp/tenant-b/agent-base:1.4").setRuntimeClassName(""));
    StatusRuntimeException provisioned = provisionFails(stale);

    // Then provisioning fails, says why, and leaves no sandbox and no pod behind
    assertThat(provisioned.getStatus().getCode()).isEqualTo(Status.Code.FAILED_PRECONDITION);
    assertThat(provisioned.getStatus().getDescription())
        .contains("registry.corp/tenant-b/agent-base:1.4", "registry.corp/sandboxes/");
    assertThat(liveSandboxes()).isEqualTo(before);
    assertThat(cluster.pods().inNamespace("corral-sandboxes").list().getItems())
        .noneMatch(pod -> container(pod).getImage().contains("tenant-b"));

    // And an allowed image runs under the default RuntimeClass, pulled afresh; an environment
    // without an image gets the default image, from the node's cache
    Sandbox allowed = provision(environment("registry.corp/sandboxes/python:3.12", ""));
    Pod pod = pod(allowed);
    assertThat(pod.getSpec().getRuntimeClassName()).isEqualTo("gvisor");
    assertThat(container(pod).getImagePullPolicy()).isEqualTo("Always");
    Sandbox plain = provision(environment("", "kata"));
    assertThat(pod(plain).getSpec().getRuntimeClassName()).isEqualTo("kata");
    assertThat(container(pod(plain)).getImagePullPolicy()).isEqualTo("IfNotPresent");
    for (Sandbox sandbox : new Sandbox[] {allowed, plain}) {
      sandboxes.releaseSandbox(
          ReleaseSandboxRequest.newBuilder().setSandboxId(sandbox.getId()).build());
    }
  }

  private static CreateEnvironmentRequest request(String image, String runtimeClass) {
    return CreateEnvironmentRequest.newBuilder()
        .setName("policy")
        .setDriver(SandboxDriver.SANDBOX_DRIVER_KUBERNETES)
        .setImage(image)
        .setRuntimeClassName(runtimeClass)
        .build();
  }

  private Environment environment(String image, String runtimeClass) {
    return environments.createEnvironment(request(image, runtimeClass)).getEnvironment();
  }

  private StatusRuntimeException createFails(CreateEnvironmentRequest request) {
    return catchThrowableOfType(
        StatusRuntimeException.class, () -> environments.createEnvironment(request));
  }

  private Sandbox provision(Environment environment) {
    return sandboxes
        .provision(ProvisionRequest.newBuilder().setEnvironmentId(environment.getId()).build())
        .getSandbox();
  }

  private StatusRuntimeException provisionFails(Environment environment) {
    return catchThrowableOfType(StatusRuntimeException.class, () -> provision(environment));
  }

  private long liveSandboxes() {
    return sandboxes
        .listSandboxes(ListSandboxesRequest.newBuilder().setPageSize(100).build())
        .getSandboxesList()
        .size();
  }

  private Pod pod(Sandbox sandbox) {
    return cluster.pods().inNamespace("corral-sandboxes").withName(sandbox.getHost()).get();
  }

  private static Container container(Pod pod) {
    return pod.getSpec().getContainers().get(0);
  }
}
