package dev.corral.sandbox.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.corral.proto.v1.Environment;
import dev.corral.proto.v1.SandboxResources;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.client.utils.KubernetesSerialization;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Golden files for the pod of a sandbox: {@code SandboxPodFactoryTest/<scenario>/in.yaml} (the
 * inputs) must derive exactly {@code out.yaml}. After an intended change, regenerate them with
 * {@code mvn test -Dtest=SandboxPodFactoryTest -Dcorral.golden.update=true} and review the diff.
 * Whatever the files say, every derived pod must also be hardened.
 */
class SandboxPodFactoryTest {

  private static final Path ROOT = Path.of("src/test/resources/SandboxPodFactoryTest");
  private static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
  private static final KubernetesSerialization KUBERNETES = new KubernetesSerialization();

  static Stream<String> scenarios() throws IOException {
    try (Stream<Path> directories = Files.list(ROOT)) {
      return directories.map(path -> path.getFileName().toString()).sorted().toList().stream();
    }
  }

  @ParameterizedTest
  @MethodSource("scenarios")
  void derivesTheGoldenPod(String scenario) throws IOException {
    // Given
    JsonNode in = YAML.readTree(ROOT.resolve(scenario).resolve("in.yaml").toFile());

    // When
    Pod pod = derive(in);
    String yaml = KUBERNETES.asYaml(pod);

    // Then
    Path golden = ROOT.resolve(scenario).resolve("out.yaml");
    if (Boolean.getBoolean("corral.golden.update")) {
      Files.writeString(golden, yaml);
    }
    assertThat(golden).as("golden file of " + scenario).exists();
    assertThat(yaml).isEqualTo(Files.readString(golden));
    assertThat(derive(in)).as("the same inputs derive the same pod").isEqualTo(pod);
  }

  @ParameterizedTest
  @MethodSource("scenarios")
  void everyDerivedPodIsHardened(String scenario) throws IOException {
    // Given
    JsonNode in = YAML.readTree(ROOT.resolve(scenario).resolve("in.yaml").toFile());

    // When
    Pod pod = derive(in);

    // Then
    var spec = pod.getSpec();
    assertThat(spec.getAutomountServiceAccountToken()).isFalse();
    assertThat(spec.getEnableServiceLinks()).isFalse();
    assertThat(spec.getSecurityContext().getRunAsNonRoot()).isTrue();
    assertThat(spec.getSecurityContext().getRunAsUser()).isPositive();
    assertThat(spec.getSecurityContext().getSeccompProfile().getType()).isEqualTo("RuntimeDefault");
    assertThat(spec.getContainers()).hasSize(1);
    Container container = spec.getContainers().get(0);
    assertThat(container.getSecurityContext().getAllowPrivilegeEscalation()).isFalse();
    assertThat(container.getSecurityContext().getPrivileged()).isFalse();
    assertThat(container.getSecurityContext().getReadOnlyRootFilesystem()).isTrue();
    assertThat(container.getSecurityContext().getCapabilities().getDrop()).containsExactly("ALL");
    assertThat(container.getSecurityContext().getCapabilities().getAdd()).isNullOrEmpty();
    assertThat(container.getEnvFrom()).isNullOrEmpty();
    assertThat(container.getEnv()).allMatch(env -> env.getValueFrom() == null);
    assertThat(container.getResources().getLimits()).containsKeys("cpu", "memory");
    assertThat(container.getResources().getRequests())
        .isEqualTo(container.getResources().getLimits());
    assertThat(container.getVolumeMounts())
        .anyMatch(mount -> mount.getMountPath().equals("/workspace"));
    assertThat(spec.getVolumes())
        .allMatch(
            volume ->
                volume.getEmptyDir() != null
                    && volume.getEmptyDir().getSizeLimit() != null
                    // a tmpfs, whose size the kernel enforces at each write (a disk emptyDir's
                    // limit is only checked by eviction, after the node's disk filled)
                    && "Memory".equals(volume.getEmptyDir().getMedium()));
    assertThat(spec.getRuntimeClassName())
        .isEqualTo(in.path("environment").path("runtimeClassName").asText(null));
    assertThat(pod.getMetadata().getLabels())
        .containsEntry(SandboxLabels.MANAGED_BY, SandboxLabels.CORRAL)
        .containsKey(SandboxLabels.SPEC);
    if ("sandbox".equals(in.path("kind").asText())) {
      assertThat(pod.getMetadata().getLabels())
          .containsEntry(SandboxLabels.SANDBOX, in.path("sandboxId").asText())
          .doesNotContainKey(SandboxLabels.POOL);
    } else {
      assertThat(pod.getMetadata().getLabels())
          .containsEntry(SandboxLabels.POOL, "warm")
          .doesNotContainKeys(SandboxLabels.SANDBOX, SandboxLabels.SESSION);
    }
  }

  @ParameterizedTest
  @MethodSource("scenarios")
  void theSpecHashChangesWithWhatThePodIsMadeOfAndNothingElse(String scenario) throws IOException {
    // Given
    JsonNode in = YAML.readTree(ROOT.resolve(scenario).resolve("in.yaml").toFile());
    SandboxPodFactory.PodSpec spec = spec(in);

    // When
    String hash = SandboxPodFactory.specHash(spec);
    String renamed =
        hashOf(spec, "other-name", spec.environment(), spec.image(), spec.runtimeClassName());
    String moreSetup =
        hashOf(
            spec,
            spec.name(),
            spec.environment().toBuilder().addSetupCommands("true").build(),
            spec.image(),
            spec.runtimeClassName());
    String otherImage =
        hashOf(
            spec, spec.name(), spec.environment(), spec.image() + "-next", spec.runtimeClassName());
    String otherRuntime =
        hashOf(
            spec, spec.name(), spec.environment(), spec.image(), spec.runtimeClassName() + "-next");

    // Then
    assertThat(renamed).isEqualTo(hash);
    assertThat(List.of(moreSetup, otherImage, otherRuntime)).doesNotContain(hash);
  }

  /** The hash of {@code spec} with these parts changed. */
  private static String hashOf(
      SandboxPodFactory.PodSpec spec,
      String name,
      Environment environment,
      String image,
      String runtimeClassName) {
    return SandboxPodFactory.specHash(
        new SandboxPodFactory.PodSpec(
            spec.namespace(),
            name,
            environment,
            spec.resources(),
            image,
            spec.pullAlways(),
            runtimeClassName,
            spec.runAsUser()));
  }

  private static Pod derive(JsonNode in) {
    SandboxPodFactory.PodSpec spec = spec(in);
    return "warm".equals(in.path("kind").asText())
        ? SandboxPodFactory.warm(spec)
        : SandboxPodFactory.forSandbox(
            spec, in.path("sandboxId").asText(), in.path("sessionId").asText(""));
  }

  private static SandboxPodFactory.PodSpec spec(JsonNode in) {
    JsonNode environment = in.path("environment");
    Environment.Builder built =
        Environment.newBuilder()
            .setId(environment.path("id").asText(""))
            .setRuntimeClassName(environment.path("runtimeClassName").asText(""));
    environment.path("setupCommands").forEach(command -> built.addSetupCommands(command.asText()));
    JsonNode resources = in.path("resources");
    return new SandboxPodFactory.PodSpec(
        in.path("namespace").asText(),
        in.path("name").asText(),
        built.build(),
        SandboxResources.newBuilder()
            .setCpuMillis(resources.path("cpuMillis").asInt())
            .setMemoryBytes(resources.path("memoryBytes").asLong())
            .setDiskBytes(resources.path("diskBytes").asLong())
            .setCallTimeoutMs(resources.path("callTimeoutMs").asLong())
            .setLifetimeSeconds(resources.path("lifetimeSeconds").asLong())
            .setMaxProcesses(resources.path("maxProcesses").asInt())
            .build(),
        in.path("image").asText(),
        in.path("pullAlways").asBoolean(),
        environment.path("runtimeClassName").asText(""),
        in.path("runAsUser").asLong());
  }
}
