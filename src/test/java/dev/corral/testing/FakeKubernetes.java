package dev.corral.testing;

import io.fabric8.kubernetes.client.NamespacedKubernetesClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.fabric8.mockwebserver.MockWebServer;
import io.fabric8.mockwebserver.ServerRequest;
import io.fabric8.mockwebserver.ServerResponse;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager.TestInjector.AnnotatedAndMatchesType;
import io.quarkus.test.kubernetes.client.AbstractKubernetesTestResource;
import java.lang.annotation.Annotation;
import java.net.InetAddress;
import java.util.HashMap;
import java.util.Map;
import java.util.Queue;

/**
 * A fabric8 mock Kubernetes API server in CRUD mode with a {@link FakeKubelet}, for
 * {@code @WithTestResource(FakeKubernetes.class)}: corral's kubernetes driver is enabled and points
 * at it. Fields marked {@link InjectFakeKubernetes} receive the server, the kubelet and a client.
 */
public class FakeKubernetes
    extends AbstractKubernetesTestResource<KubernetesMockServer, NamespacedKubernetesClient> {

  private FakeKubelet dispatcher;
  private NamespacedKubernetesClient client;

  @Override
  public Map<String, String> start() {
    Map<String, String> config = new HashMap<>(super.start());
    config.put("corral.sandbox.kubernetes.enabled", "true");
    config.put("corral.sandbox.default-driver", "kubernetes");
    // The mock server refuses request lines over 4 KiB (HTTP 414), as a strict proxy might.
    config.put("corral.sandbox.kubernetes.exec-argument-bytes", "1000");
    // Tests run reconciler passes themselves.
    config.put("corral.sandbox.reconcile-interval", "1h");
    config.put("corral.sandbox.kubernetes.ready-timeout", "20s");
    config.put("quarkus.log.category.\"io.fabric8.mockwebserver\".level", "WARN");
    return config;
  }

  @Override
  protected KubernetesMockServer createServer() {
    Map<ServerRequest, Queue<ServerResponse>> responses = new HashMap<>();
    dispatcher = new FakeKubelet(responses);
    return new KubernetesMockServer(
        new io.fabric8.mockwebserver.Context(),
        new MockWebServer(),
        responses,
        dispatcher,
        useHttps());
  }

  @Override
  protected void initServer() {
    server.init(InetAddress.getLoopbackAddress(), 0);
    client = server.createClient();
  }

  @Override
  protected NamespacedKubernetesClient getClient() {
    return client;
  }

  @Override
  public void stop() {
    if (client != null) {
      client.close();
    }
    if (server != null) {
      server.destroy();
    }
  }

  @Override
  public void inject(TestInjector testInjector) {
    testInjector.injectIntoFields(
        server,
        new AnnotatedAndMatchesType(InjectFakeKubernetes.class, KubernetesMockServer.class));
    testInjector.injectIntoFields(
        dispatcher, new AnnotatedAndMatchesType(InjectFakeKubernetes.class, FakeKubelet.class));
    testInjector.injectIntoFields(
        client,
        new AnnotatedAndMatchesType(InjectFakeKubernetes.class, NamespacedKubernetesClient.class));
  }

  @Override
  protected Class<?> getInjectedClass() {
    return KubernetesMockServer.class;
  }

  @Override
  protected Class<? extends Annotation> getInjectionAnnotation() {
    return InjectFakeKubernetes.class;
  }
}
