package dev.corral.k8s;

import static dev.corral.sandbox.kubernetes.SandboxLabels.CORRAL;
import static dev.corral.sandbox.kubernetes.SandboxLabels.SANDBOX_COMPONENT;
import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.sandbox.driver.SandboxConfig;
import dev.corral.sandbox.kubernetes.SandboxLabels;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.Namespace;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServiceAccount;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.networking.v1.NetworkPolicy;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;
import io.fabric8.kubernetes.api.model.rbac.ClusterRole;
import io.fabric8.kubernetes.api.model.rbac.ClusterRoleBinding;
import io.fabric8.kubernetes.api.model.rbac.Role;
import io.fabric8.kubernetes.api.model.rbac.RoleBinding;
import io.fabric8.kubernetes.client.utils.KubernetesSerialization;
import io.smallrye.config.WithDefault;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.assertj.core.api.AbstractStringAssert;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Parses every manifest of the Kustomize base ({@code k8s/base}) and checks what a deployment on
 * Kubernetes needs; renders the example overlay in Java (its images, replicas and patches, the only
 * Kustomize features it uses) and checks the result.
 */
class ManifestsTest {

  private static final Path K8S = Path.of("k8s", "base");
  private static final Path OVERLAY = Path.of("k8s", "overlays", "example");
  private static final String CPU = "cpu";
  private static final String MEMORY = "memory";
  private static final Base64.Decoder DECODER = Base64.getDecoder();

  /** Prefix of the datasource variables the server reads from the database Secret. */
  private static final String DB = "QUARKUS_DATASOURCE_";

  /** Every object of every manifest, of a known kind or not. */
  private static final List<HasMetadata> resources = new ArrayList<>();

  @BeforeAll
  static void load() throws IOException {
    KubernetesSerialization serialization = new KubernetesSerialization();
    try (Stream<Path> files = Files.list(K8S)) {
      for (Path file :
          files
              .filter(f -> f.toString().endsWith(".yaml"))
              .filter(f -> !f.getFileName().toString().equals("kustomization.yaml"))
              .sorted()
              .toList()) {
        for (String document : Files.readString(file).split("(?m)^---[ \\t]*$")) {
          if (document.lines().allMatch(line -> line.isBlank() || line.strip().startsWith("#"))) {
            continue;
          }
          Object parsed = serialization.unmarshal(document);
          assertThat(parsed).as("a document of %s", file).isInstanceOf(HasMetadata.class);
          resources.add((HasMetadata) parsed);
        }
      }
    }
  }

  @Test
  void everyDocumentIsAKnownKindInADeclaredNamespaceAndUnique() {
    // Given the objects of every manifest
    assertThat(resources).as("objects in %s", K8S.toAbsolutePath()).isNotEmpty();
    // When the namespaces they declare are listed
    List<String> declared = all(Namespace.class).stream().map(ManifestsTest::name).toList();
    // Then each is of a kind the model knows, in a declared namespace, and no key appears twice
    assertThat(resources)
        .as("objects of kinds the model does not know")
        .filteredOn(GenericKubernetesResource.class::isInstance)
        .extracting(ManifestsTest::key)
        .isEmpty();
    assertThat(resources)
        .filteredOn(resource -> !(resource instanceof Namespace))
        .extracting(resource -> resource.getMetadata().getNamespace())
        .as("namespaces of namespaced objects, vs the Namespaces declared")
        .isSubsetOf(declared);
    assertThat(resources)
        .extracting(ManifestsTest::key)
        .as("kind/namespace/name of every object")
        .doesNotHaveDuplicates();
  }

  @Test
  void rbacIsLeastPrivilegeInTheSandboxNamespace() {
    // Given the Role, its RoleBinding and the Deployment's ServiceAccount
    Role role = one(Role.class);
    RoleBinding binding = one(RoleBinding.class);
    String account = deployment().getSpec().getTemplate().getSpec().getServiceAccountName();
    String serverNs = deployment().getMetadata().getNamespace();
    // When the Role's rules are grouped by resource
    Map<String, List<String>> verbs = new HashMap<>();
    for (var rule : role.getRules()) {
      assertThat(rule.getApiGroups()).as("apiGroups of %s", rule).containsOnly("");
      assertThat(rule.getVerbs()).as("verbs of %s", rule).isNotEmpty().doesNotContain("*");
      assertThat(rule.getResources()).as("resources of %s", rule).doesNotContain("secrets", "*");
      rule.getResources()
          .forEach(r -> verbs.computeIfAbsent(r, k -> new ArrayList<>()).addAll(rule.getVerbs()));
    }
    // Then only a Role in the sandbox namespace grants anything: pods and pods/exec
    assertThat(all(ClusterRole.class)).as("ClusterRoles (none allowed)").isEmpty();
    assertThat(all(ClusterRoleBinding.class)).as("ClusterRoleBindings (none allowed)").isEmpty();
    assertThat(role.getMetadata().getNamespace()).as("Role namespace").isEqualTo(sandboxNs());
    assertThat(verbs).as("Role resources").containsOnlyKeys("pods", "pods/exec");
    assertThat(verbs.get("pods"))
        .as("verbs on pods")
        .contains("get", "list", "create", "patch", "delete")
        .isSubsetOf("get", "list", "watch", "create", "update", "patch", "delete");
    assertThat(verbs.get("pods/exec"))
        .as("verbs on pods/exec")
        .contains("create")
        .isSubsetOf("create", "get");
    // And the RoleBinding gives that Role to the Deployment's ServiceAccount only
    assertThat(binding.getMetadata().getNamespace())
        .as("namespace of the RoleBinding")
        .isEqualTo(sandboxNs());
    assertThat(binding.getRoleRef())
        .as("roleRef of the RoleBinding")
        .extracting("kind", "name")
        .containsExactly("Role", role.getMetadata().getName());
    assertThat(binding.getSubjects())
        .as("subjects: only ServiceAccount %s/%s", serverNs, account)
        .singleElement()
        .extracting("kind", "name", "namespace")
        .containsExactly("ServiceAccount", account, serverNs);
  }

  @Test
  void deploymentRunsTwoHealthCheckedReplicasOnExternalPostgres() {
    // Given the Deployment and its pod
    var pod = deployment().getSpec().getTemplate().getSpec();
    String ns = deployment().getMetadata().getNamespace();
    // When its ServiceAccount and the Secrets the server loads are looked up
    List<ServiceAccount> accounts = named(ServiceAccount.class, ns, pod.getServiceAccountName());
    Map<String, String> settings = new HashMap<>();
    server().getEnvFrom().stream()
        .filter(from -> from.getSecretRef() != null)
        .filter(from -> !Boolean.TRUE.equals(from.getSecretRef().getOptional()))
        .forEach(from -> settings.putAll(secret(ns, from.getSecretRef().getName())));
    // Then 2 replicas run as that account, with its token mounted to reach the API
    assertThat(deployment().getSpec().getReplicas()).as("replicas").isEqualTo(2);
    assertThat(accounts).as("ServiceAccount %s", pod.getServiceAccountName()).hasSize(1);
    assertThat(pod.getAutomountServiceAccountToken())
        .as("pod automountServiceAccountToken")
        .isNotEqualTo(false);
    assertThat(accounts.get(0).getAutomountServiceAccountToken())
        .as("ServiceAccount automountServiceAccountToken")
        .isNotEqualTo(false);
    // And every container is probed on /q/health and has cpu and memory requests and limits
    for (Container container : pod.getContainers()) {
      assertThat(
              Stream.of(container.getLivenessProbe(), container.getReadinessProbe())
                  .map(ManifestsTest::httpPath))
          .as("HTTP GET paths of the liveness and readiness probes of %s", container.getName())
          .allSatisfy(path -> assertThat(path).startsWith("/q/health"));
      assertThat(container.getResources()).as("resources of %s", container.getName()).isNotNull();
      assertThat(container.getResources().getRequests())
          .as("requests of %s", container.getName())
          .containsKeys(CPU, MEMORY);
      assertThat(container.getResources().getLimits())
          .as("limits of %s", container.getName())
          .containsKeys(CPU, MEMORY);
    }
    // And the server has the pod driver on, is named after its pod, uses an external PostgreSQL
    assertEnv("CORRAL_SANDBOX_KUBERNETES_ENABLED").isEqualTo("true");
    assertEnv("CORRAL_SANDBOX_DEFAULT_DRIVER").isEqualTo("kubernetes");
    assertEnv("CORRAL_REPLICA_ID").isEqualTo("fieldRef:metadata.name");
    assertEnv("CORRAL_EMBEDDED_POSTGRES_ENABLED").isEqualTo("false");
    assertThat(settings.get(DB + "REACTIVE_URL")).as("reactive URL").startsWith("postgresql://");
    assertThat(settings.get(DB + "JDBC_URL")).as("JDBC URL").startsWith("jdbc:postgresql://");
    assertThat(settings)
        .as("credentials in the database Secret")
        .containsKeys(DB + "USERNAME", DB + "PASSWORD");
  }

  @Test
  void serviceAndDisruptionBudgetSelectTheServerPods() {
    // Given the Deployment's pod labels
    Map<String, String> podLabels = deployment().getSpec().getTemplate().getMetadata().getLabels();
    int replicas = deployment().getSpec().getReplicas();
    // When the Service and the PodDisruptionBudget are read
    Service service = named(Service.class, null, "corral").get(0);
    PodDisruptionBudget budget = one(PodDisruptionBudget.class);
    var budgetSelector = budget.getSpec().getSelector();
    // Then both select those pods, in the Deployment's namespace
    assertThat(service.getSpec().getSelector()).as("Service selector").isNotEmpty();
    assertThat(podLabels)
        .as("pods vs Service")
        .containsAllEntriesOf(service.getSpec().getSelector());
    assertThat(budgetSelector.getMatchExpressions()).as("PDB matchExpressions").isNullOrEmpty();
    assertThat(budgetSelector.getMatchLabels()).as("PDB selector").isNotEmpty();
    assertThat(podLabels).as("pods vs PDB").containsAllEntriesOf(budgetSelector.getMatchLabels());
    assertThat(List.of(service.getMetadata().getNamespace(), budget.getMetadata().getNamespace()))
        .as("namespaces of the Service and the PDB")
        .containsOnly(deployment().getMetadata().getNamespace());
    // And the budget keeps a replica up without blocking every drain
    var min = budget.getSpec().getMinAvailable();
    if (min == null) {
      assertThat(budget.getSpec().getMaxUnavailable()).as("PDB maxUnavailable").isNotNull();
    } else if (min.getIntVal() != null) {
      assertThat(min.getIntVal()).as("PDB minAvailable").isBetween(1, replicas - 1);
    } else {
      assertThat(min.getStrVal()).as("PDB minAvailable percentage").matches("[1-9][0-9]?%");
    }
  }

  @Test
  void sandboxPodsHaveNoNetwork() {
    // Given the NetworkPolicies of the sandbox namespace
    List<NetworkPolicy> policies = named(NetworkPolicy.class, sandboxNs(), null);
    // When looking for one that covers every sandbox pod and allows no traffic
    var denyAll = policies.stream().filter(ManifestsTest::deniesAllSandboxTraffic).findFirst();
    // Then there is one
    assertThat(denyAll)
        .as(
            "a NetworkPolicy in %s selecting all sandbox pods, with policyTypes Ingress and Egress"
                + " and no ingress or egress rules; found %s",
            sandboxNs(), policies.stream().map(NetworkPolicy::getSpec).toList())
        .isPresent();
  }

  @Test
  void sandboxPodsReachOnlyTheEgressProxyOfCorralsPods() {
    // Given the server's egress port, the Service in front of it, and the sandbox namespace's
    // other policies
    var port =
        server().getPorts().stream()
            .filter(p -> "egress".equals(p.getName()))
            .findFirst()
            .orElseThrow(() -> new AssertionError("the server container has no egress port"));
    List<io.fabric8.kubernetes.api.model.Service> services =
        named(io.fabric8.kubernetes.api.model.Service.class, null, "corral-egress");
    List<NetworkPolicy> openings =
        named(NetworkPolicy.class, sandboxNs(), null).stream()
            .filter(policy -> !deniesAllSandboxTraffic(policy))
            .toList();

    // Then the server listens there, and gives pods the Service's address
    assertEnv("CORRAL_EGRESS_LISTEN_PORT").isEqualTo(port.getContainerPort().toString());
    assertThat(services).as("the corral-egress Service").hasSize(1);
    var service = services.get(0);
    assertThat(service.getSpec().getSelector())
        .isEqualTo(deployment().getSpec().getSelector().getMatchLabels());
    assertThat(service.getSpec().getPorts()).hasSize(1);
    assertThat(service.getSpec().getPorts().get(0).getTargetPort().getStrVal()).isEqualTo("egress");
    assertEnv("CORRAL_SANDBOX_KUBERNETES_EGRESS_PROXY")
        .isEqualTo(
            "corral-egress."
                + service.getMetadata().getNamespace()
                + ".svc:"
                + service.getSpec().getPorts().get(0).getPort());

    // And every policy beside deny-all opens only egress to corral's pods, on that port, over TCP
    assertThat(openings).as("policies that open a way out").isNotEmpty();
    for (NetworkPolicy policy : openings) {
      var spec = policy.getSpec();
      assertThat(spec.getPolicyTypes()).as(name(policy)).containsExactly("Egress");
      assertThat(spec.getIngress()).as(name(policy)).isEmpty();
      assertThat(spec.getEgress()).as(name(policy)).isNotEmpty();
      for (var rule : spec.getEgress()) {
        assertThat(rule.getTo()).as(name(policy) + " peers").isNotEmpty();
        for (var peer : rule.getTo()) {
          assertThat(peer.getIpBlock()).as(name(policy) + " ipBlock").isNull();
          assertThat(peer.getNamespaceSelector().getMatchLabels())
              .containsExactly(
                  Map.entry(
                      "kubernetes.io/metadata.name", deployment().getMetadata().getNamespace()));
          assertThat(peer.getPodSelector().getMatchLabels())
              .isEqualTo(deployment().getSpec().getSelector().getMatchLabels());
        }
        assertThat(rule.getPorts()).as(name(policy) + " ports").hasSize(1);
        assertThat(rule.getPorts().get(0).getProtocol()).isEqualTo("TCP");
        assertThat(rule.getPorts().get(0).getPort().getIntVal()).isEqualTo(port.getContainerPort());
      }
    }
  }

  @Test
  void sandboxNamespaceIsTheConfiguredDefaultAndRestricted() throws NoSuchMethodException {
    // Given the default of corral.sandbox.kubernetes.namespace
    var kubernetes = SandboxConfig.Kubernetes.class;
    String configured = kubernetes.getMethod("namespace").getAnnotation(WithDefault.class).value();
    // When the Namespace of that name is looked up
    List<Namespace> namespace = named(Namespace.class, null, configured);
    // Then it holds the sandbox Role, and it enforces the restricted pod security standard
    assertThat(sandboxNs()).as("namespace of the sandbox Role").isEqualTo(configured);
    assertThat(namespace).as("Namespace %s", configured).hasSize(1);
    assertThat(namespace.get(0).getMetadata().getLabels())
        .as("labels of Namespace %s", configured)
        .containsEntry("pod-security.kubernetes.io/enforce", "restricted");
    // And the server neither runs there nor points the driver elsewhere
    assertThat(deployment().getMetadata().getNamespace())
        .as("namespace of the Deployment")
        .isNotEqualTo(configured);
    assertEnv("CORRAL_SANDBOX_KUBERNETES_NAMESPACE").isIn(null, configured);
  }

  /** Whether the policy selects every pod, or every sandbox pod, and allows no traffic at all. */
  private static boolean deniesAllSandboxTraffic(NetworkPolicy policy) {
    var spec = policy.getSpec();
    var selector = spec.getPodSelector();
    var sandboxPods =
        Map.of(SandboxLabels.MANAGED_BY, CORRAL, SandboxLabels.COMPONENT, SANDBOX_COMPONENT);
    return selector != null
        && selector.getMatchExpressions().isEmpty()
        && sandboxPods.entrySet().containsAll(selector.getMatchLabels().entrySet())
        && spec.getPolicyTypes().containsAll(List.of("Ingress", "Egress"))
        && spec.getIngress().isEmpty()
        && spec.getEgress().isEmpty();
  }

  /** The namespace of the (only) Role: where the server manages sandbox pods. */
  private static String sandboxNs() {
    return one(Role.class).getMetadata().getNamespace();
  }

  private static Deployment deployment() {
    return one(Deployment.class);
  }

  /** The server container: the first of the Deployment's pod. */
  private static Container server() {
    return deployment().getSpec().getTemplate().getSpec().getContainers().get(0);
  }

  private static <T extends HasMetadata> List<T> all(Class<T> kind) {
    return resources.stream().filter(kind::isInstance).map(kind::cast).toList();
  }

  @Test
  @SuppressWarnings("unchecked")
  void theBaseListsEveryManifestAndTheExampleOverlayRendersItsImageReplicasAndSecret()
      throws IOException {
    // The base names every manifest it holds.
    com.fasterxml.jackson.databind.ObjectMapper yaml =
        new com.fasterxml.jackson.databind.ObjectMapper(
            new com.fasterxml.jackson.dataformat.yaml.YAMLFactory());
    Map<String, Object> base =
        yaml.readValue(K8S.resolve("kustomization.yaml").toFile(), Map.class);
    List<String> manifests;
    try (Stream<Path> files = Files.list(K8S)) {
      manifests =
          files
              .map(f -> f.getFileName().toString())
              .filter(name -> name.endsWith(".yaml") && !name.equals("kustomization.yaml"))
              .sorted()
              .toList();
    }
    assertThat((List<String>) base.get("resources")).containsExactlyElementsOf(manifests);

    // When the overlay is rendered
    Map<String, Object> overlay =
        yaml.readValue(OVERLAY.resolve("kustomization.yaml").toFile(), Map.class);
    assertThat((List<String>) overlay.get("resources")).containsExactly("../../base");
    Deployment deployment = new KubernetesSerialization().clone(one(Deployment.class));
    for (Map<String, Object> image : (List<Map<String, Object>>) overlay.get("images")) {
      for (Container container : deployment.getSpec().getTemplate().getSpec().getContainers()) {
        if (container.getImage().startsWith(image.get("name") + ":")) {
          container.setImage(image.get("newName") + ":" + image.get("newTag"));
        }
      }
    }
    for (Map<String, Object> replicas : (List<Map<String, Object>>) overlay.get("replicas")) {
      if (deployment.getMetadata().getName().equals(replicas.get("name"))) {
        deployment.getSpec().setReplicas((Integer) replicas.get("count"));
      }
    }
    Secret secret = new KubernetesSerialization().clone(one(Secret.class));
    ConfigMap identity = new KubernetesSerialization().clone(one(ConfigMap.class));
    for (Map<String, Object> patch : (List<Map<String, Object>>) overlay.get("patches")) {
      HasMetadata patched =
          (HasMetadata)
              new KubernetesSerialization()
                  .unmarshal(Files.readString(OVERLAY.resolve((String) patch.get("path"))));
      HasMetadata target = patched instanceof Secret ? secret : identity;
      assertThat(patched.getMetadata().getName()).isEqualTo(target.getMetadata().getName());
      assertThat(patched.getMetadata().getNamespace())
          .isEqualTo(target.getMetadata().getNamespace());
      if (patched instanceof Secret patchedSecret) {
        secret.getStringData().putAll(patchedSecret.getStringData());
      } else {
        identity.getData().putAll(((ConfigMap) patched).getData());
      }
    }

    // Then it runs the overlay's image and replica count against the overlay's database
    assertThat(deployment.getSpec().getTemplate().getSpec().getContainers().get(0).getImage())
        .isEqualTo("registry.example.com/platform/corral:0.1.0");
    assertThat(deployment.getSpec().getReplicas()).isEqualTo(3);
    assertThat(secret.getStringData())
        .containsEntry(
            "QUARKUS_DATASOURCE_REACTIVE_URL", "postgresql://db.example.internal:5432/corral")
        .containsKeys(DB + "JDBC_URL", DB + "USERNAME", DB + "PASSWORD");
    // And accepts the overlay's identity provider's tokens
    assertThat(identity.getData())
        .containsEntry("CORRAL_AUTH_ENABLED", "true")
        .containsEntry("CORRAL_AUTH_OIDC_ENABLED", "true")
        .containsKeys(
            "CORRAL_AUTH_OIDC_ISSUER",
            "CORRAL_AUTH_OIDC_AUDIENCE",
            "CORRAL_AUTH_OIDC_TENANT_CLAIM",
            "CORRAL_AUTH_OIDC_ROLE_CLAIM");
  }

  @Test
  void authenticationIsOnAndTheFirstAdminKeyComesFromASecretNoManifestHolds() {
    String ns = deployment().getMetadata().getNamespace();
    var sources = server().getEnvFrom();
    // The identity settings come from the ConfigMap, with authentication on
    var configMaps = sources.stream().filter(from -> from.getConfigMapRef() != null).toList();
    assertThat(configMaps).hasSize(1);
    List<ConfigMap> identity =
        named(ConfigMap.class, ns, configMaps.get(0).getConfigMapRef().getName());
    assertThat(identity).hasSize(1);
    assertThat(identity.get(0).getData()).containsEntry("CORRAL_AUTH_ENABLED", "true");
    assertThat(identity.get(0).getData()).doesNotContainKey("CORRAL_AUTH_BOOTSTRAP_KEY");
    // The admin key comes from an optional Secret that no manifest of the repository holds
    var adminKey =
        sources.stream()
            .filter(from -> from.getSecretRef() != null)
            .filter(from -> Boolean.TRUE.equals(from.getSecretRef().getOptional()))
            .toList();
    assertThat(adminKey).hasSize(1);
    assertThat(named(Secret.class, ns, adminKey.get(0).getSecretRef().getName())).isEmpty();
    // And without it, the first replica writes its key under a writable CORRAL_HOME
    assertEnv("CORRAL_HOME").startsWith("/tmp/");
  }

  @Test
  void theImageRecipeIsPinnedNonRootAndRunsTheQuarkusApp() throws IOException {
    String dockerfile = Files.readString(Path.of("src", "main", "docker", "Dockerfile.jvm"));
    assertThat(dockerfile).containsPattern("(?m)^FROM eclipse-temurin:17\\.[0-9.]+_[0-9]+-jre");
    assertThat(dockerfile).containsPattern("(?m)^USER [1-9][0-9]*$");
    assertThat(dockerfile)
        .contains("quarkus-run.jar")
        .contains("docker build -f src/main/docker/Dockerfile.jvm");
  }

  private static <T extends HasMetadata> T one(Class<T> kind) {
    List<T> found = all(kind);
    assertThat(found).as("%s manifests", kind.getSimpleName()).hasSize(1);
    return found.get(0);
  }

  /** The objects of a kind with that namespace and name (null: any). */
  private static <T extends HasMetadata> List<T> named(Class<T> kind, String ns, String name) {
    return all(kind).stream()
        .filter(o -> ns == null || ns.equals(o.getMetadata().getNamespace()))
        .filter(o -> name == null || name.equals(name(o)))
        .toList();
  }

  private static String name(HasMetadata resource) {
    return resource.getMetadata().getName();
  }

  private static String key(HasMetadata resource) {
    var metadata = resource.getMetadata();
    return resource.getKind() + "/" + metadata.getNamespace() + "/" + metadata.getName();
  }

  /** The server's variable {@code name}: its value, "fieldRef:PATH", or null if unset. */
  private static String env(String name) {
    for (var env : server().getEnv()) {
      if (env.getName().equals(name)) {
        var from = env.getValueFrom();
        return from != null && from.getFieldRef() != null
            ? "fieldRef:" + from.getFieldRef().getFieldPath()
            : env.getValue();
      }
    }
    return null;
  }

  private static AbstractStringAssert<?> assertEnv(String name) {
    return assertThat(env(name)).as("server variable %s", name);
  }

  private static String httpPath(Probe probe) {
    return probe == null || probe.getHttpGet() == null ? "none" : probe.getHttpGet().getPath();
  }

  /** The entries of Secret namespace/name: data (base64) overlaid with stringData. */
  private static Map<String, String> secret(String namespace, String name) {
    Map<String, String> values = new HashMap<>();
    for (Secret secret : named(Secret.class, namespace, name)) {
      secret.getData().forEach((k, v) -> values.put(k, new String(DECODER.decode(v), UTF_8)));
      values.putAll(secret.getStringData());
    }
    assertThat(values).as("entries of Secret %s/%s", namespace, name).isNotEmpty();
    return values;
  }
}
