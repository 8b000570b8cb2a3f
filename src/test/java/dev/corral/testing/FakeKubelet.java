package dev.corral.testing;

import dev.corral.common.DaemonThreads;
import io.fabric8.kubernetes.client.server.mock.KubernetesMixedDispatcher;
import io.fabric8.mockwebserver.ServerRequest;
import io.fabric8.mockwebserver.ServerResponse;
import io.fabric8.mockwebserver.dsl.HttpMethod;
import io.fabric8.mockwebserver.http.Buffer;
import io.fabric8.mockwebserver.http.Headers;
import io.fabric8.mockwebserver.http.MockResponse;
import io.fabric8.mockwebserver.http.RecordedRequest;
import io.fabric8.mockwebserver.http.Response;
import io.fabric8.mockwebserver.http.WebSocket;
import io.fabric8.mockwebserver.http.WebSocketListener;
import java.io.OutputStream;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The fabric8 mock API server's dispatcher (CRUD store and expectations) plus what a kubelet would
 * do: a created pod becomes Running and ready after {@link #podStartDelayMs}; pods/exec runs the
 * command for real, inside the pod's one container (a bubblewrap sandbox whose pid 1 is the pod's
 * command, entered with nsenter), so execs share its processes, /workspace and /tmp; an exec whose
 * stream closes keeps running, as with a real kubelet; deleting a pod kills everything in it, ends
 * its open execs the way a kubelet does (exit 137) and drops its files.
 */
public class FakeKubelet extends KubernetesMixedDispatcher {

  /** Runs one exec; returns the exit code. Runs on a worker thread, may block. */
  @FunctionalInterface
  public interface ExecHandler {
    int exec(
        String namespace,
        String pod,
        String container,
        List<String> command,
        OutputStream stdout,
        OutputStream stderr)
        throws Exception;
  }

  private static final Pattern EXEC =
      Pattern.compile("^/api/v1/namespaces/([^/]+)/pods/([^/?]+)/exec\\?(.*)$");
  private static final Pattern POD_CREATE =
      Pattern.compile("^/api/v1/namespaces/([^/]+)/pods/?(\\?.*)?$");
  private static final Pattern POD =
      Pattern.compile("^/api/v1/namespaces/([^/]+)/pods/([^/?]+)/?(\\?.*)?$");

  private final ExecutorService workers =
      Executors.newCachedThreadPool(DaemonThreads.named("mock-exec"));

  private static final java.util.concurrent.ExecutorService POD_STARTER =
      Executors.newSingleThreadExecutor(DaemonThreads.named("mock-pod-start"));
  private final ScheduledExecutorService scheduler =
      Executors.newSingleThreadScheduledExecutor(DaemonThreads.named("mock-pod-starter"));
  private final Map<String, Set<WebSocket>> openExecs = new ConcurrentHashMap<>();

  public volatile ExecHandler execHandler = this::runInPodSandbox;
  public volatile long podStartDelayMs = 200; // <0: never becomes ready
  public volatile Integer exitCodeOnPodDelete =
      137; // null: just close the socket without a status frame

  /**
   * Whether reads of one pod are refused (403, as by a broken role binding): the exec API reads the
   * pod first, so execs are refused too.
   */
  public volatile boolean podReadsFail;

  /** An image no registry serves (null: none): its pods wait in ImagePullBackOff for ever. */
  public volatile String unpullableImage;

  /** RuntimeClasses the cluster has (null: any); a pod of another is refused, as admission does. */
  public volatile Set<String> runtimeClasses;

  public FakeKubelet(Map<ServerRequest, Queue<ServerResponse>> responses) {
    super(responses);
  }

  @Override
  public MockResponse dispatch(RecordedRequest request) {
    final String path = request.getPath();
    Matcher m = EXEC.matcher(path);
    if (request.method() == HttpMethod.GET && m.matches()) {
      return exec(m.group(1), m.group(2), m.group(3));
    }
    if (podReadsFail && request.method() == HttpMethod.GET && POD.matcher(path).matches()) {
      return new MockResponse()
          .setResponseCode(403)
          .setBody(
              "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                  + "\"message\":\"pods is forbidden\",\"reason\":\"Forbidden\",\"code\":403}");
    }
    Set<String> known = runtimeClasses;
    if (known != null
        && request.method() == HttpMethod.POST
        && POD_CREATE.matcher(path).matches()) {
      String body = new String(request.getBody().getBytes(), StandardCharsets.UTF_8);
      Matcher runtime = Pattern.compile("\"runtimeClassName\"\\s*:\\s*\"([^\"]*)\"").matcher(body);
      if (runtime.find() && !known.contains(runtime.group(1))) {
        return new MockResponse()
            .setResponseCode(403)
            .setBody(
                "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
                    + "\"message\":\"pods is forbidden: pod rejected: RuntimeClass \\\""
                    + runtime.group(1)
                    + "\\\" not found\",\"reason\":\"Forbidden\",\"code\":403}");
      }
    }
    String unpullable = unpullableImage;
    boolean cannotPull =
        unpullable != null
            && request.method() == HttpMethod.POST
            && POD_CREATE.matcher(path).matches()
            // read before the CRUD store consumes the body
            && new String(request.getBody().getBytes(), StandardCharsets.UTF_8)
                .contains("\"image\":\"" + unpullable + "\"");
    final MockResponse response = super.dispatch(request); // CRUD or server.expect() expectations
    if (request.method() == HttpMethod.POST
        && response.code() == 201
        && (m = POD_CREATE.matcher(path)).matches()) {
      final String ns = m.group(1);
      final String name = extractName(response);
      if (cannotPull && name != null) {
        scheduler.schedule(
            () -> markWaiting(ns, name, "ImagePullBackOff", "Back-off pulling image"),
            200,
            TimeUnit.MILLISECONDS);
      } else if (podStartDelayMs >= 0 && name != null) {
        scheduler.schedule(() -> markRunning(ns, name), podStartDelayMs, TimeUnit.MILLISECONDS);
      }
    } else if (request.method() == HttpMethod.DELETE && (m = POD_CREATE.matcher(path)).matches()) {
      String namespace = m.group(1) + "/";
      containers.keySet().stream()
          .filter(key -> key.startsWith(namespace))
          .toList()
          .forEach(this::stopContainer);
    } else if (request.method() == HttpMethod.DELETE && (m = POD.matcher(path)).matches()) {
      stopContainer(m.group(1) + "/" + m.group(2));
      deletePodFiles(m.group(1) + "/" + m.group(2));
      Set<WebSocket> sockets = openExecs.remove(m.group(1) + "/" + m.group(2));
      if (sockets != null) {
        sockets.forEach(
            ws -> {
              if (exitCodeOnPodDelete != null) {
                ws.send(frame(3, statusJson(exitCodeOnPodDelete)));
              }
              ws.close(1000, "pod deleted");
            });
      }
    }
    return response;
  }

  private MockResponse exec(String ns, String pod, String query) {
    final List<String> command = new ArrayList<>();
    String container = null;
    for (String kv : query.split("&")) {
      int eq = kv.indexOf('=');
      String k = eq < 0 ? kv : kv.substring(0, eq);
      String v = eq < 0 ? "" : URLDecoder.decode(kv.substring(eq + 1), StandardCharsets.UTF_8);
      if (k.equals("command")) {
        command.add(v);
      } else if (k.equals("container")) {
        container = v;
      }
    }
    if (!podExists(ns, pod)) {
      return new MockResponse()
          .setResponseCode(404)
          .setBody(
              "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"reason\":\"NotFound\",\"code\":404}");
    }
    final String c = container;
    final String key = ns + "/" + pod;
    return new MockResponse()
        .setResponseCode(101)
        .withWebSocketUpgrade(
            new WebSocketListener() {
              private volatile java.util.concurrent.Future<?> task;

              @Override
              public void onOpen(
                  WebSocket ws, Response response) { // Vert.x event loop: never block here
                openExecs.computeIfAbsent(key, k -> ConcurrentHashMap.newKeySet()).add(ws);
                task =
                    workers.submit(
                        () -> {
                          int code;
                          try {
                            code =
                                execHandler.exec(
                                    ns, pod, c, command, channel(ws, 1), channel(ws, 2));
                          } catch (InterruptedException e) {
                            return; // socket closed / pod deleted
                          } catch (Exception e) {
                            ws.send(frame(2, String.valueOf(e)));
                            code = 126;
                          }
                          Set<WebSocket> set = openExecs.get(key);
                          if (set != null && set.remove(ws)) { // not already closed by a pod delete
                            ws.send(frame(3, statusJson(code)));
                            ws.close(1000, "");
                          }
                        });
              }

              @Override
              public void onClosed(WebSocket ws, int code, String reason) {
                Set<WebSocket> set = openExecs.get(key);
                if (set != null) {
                  set.remove(ws);
                }
                if (task != null) {
                  task.cancel(true); // interrupts the handler (e.g. kills local bash)
                }
              }
            });
  }

  /** Exec streams open now. */
  public int openExecCount() {
    return openExecs.values().stream().mapToInt(Set::size).sum();
  }

  /**
   * Closes every open exec stream without a status frame, as a connection that breaks on the way (a
   * load balancer's idle timeout) does; what each exec runs goes on, as in a real pod.
   */
  public void breakExecs() {
    for (String key : List.copyOf(openExecs.keySet())) {
      Set<WebSocket> sockets = openExecs.remove(key);
      if (sockets != null) {
        sockets.forEach(ws -> ws.close(1001, "the connection broke"));
      }
    }
  }

  private boolean podExists(String ns, String pod) {
    return super.dispatch(
                new RecordedRequest(
                    "HTTP/1.1",
                    HttpMethod.GET,
                    "/api/v1/namespaces/" + ns + "/pods/" + pod,
                    Headers.builder().build(),
                    new Buffer()))
            .code()
        == 200;
  }

  /** The pod stays Pending, its container waiting for {@code reason}, as a kubelet reports. */
  private void markWaiting(String ns, String name, String reason, String message) {
    patchStatus(
        ns,
        name,
        "{\"status\":{\"phase\":\"Pending\",\"containerStatuses\":[{\"name\":\"sandbox\","
            + "\"ready\":false,\"started\":false,\"restartCount\":0,\"image\":\"x\",\"imageID\":\"\","
            + "\"state\":{\"waiting\":{\"reason\":\""
            + reason
            + "\",\"message\":\""
            + message
            + "\"}}}]}}");
  }

  private void markRunning(String ns, String name) {
    String now = Instant.now().toString();
    String patch =
        "{\"status\":{\"phase\":\"Running\",\"startTime\":\""
            + now
            + "\","
            + "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"},{\"type\":\"ContainersReady\",\"status\":\"True\"}],"
            + "\"containerStatuses\":[{\"name\":\"sandbox\",\"ready\":true,\"started\":true,\"restartCount\":0,"
            + "\"image\":\"x\",\"imageID\":\"\",\"state\":{\"running\":{\"startedAt\":\""
            + now
            + "\"}}}]}}";
    patchStatus(ns, name, patch);
  }

  private void patchStatus(String ns, String name, String patch) {
    // JSON merge patch on the /status subresource, straight into the CRUD store (emits MODIFIED to
    // watchers)
    super.dispatch(
        new RecordedRequest(
            "HTTP/1.1",
            HttpMethod.PATCH,
            "/api/v1/namespaces/" + ns + "/pods/" + name + "/status",
            Headers.builder().add("Content-Type", "application/merge-patch+json").build(),
            new Buffer(patch.getBytes(StandardCharsets.UTF_8))));
  }

  private static String extractName(MockResponse created) {
    try {
      return new com.fasterxml.jackson.databind.ObjectMapper()
          .readTree(created.getBody().readUtf8())
          .path("metadata")
          .path("name")
          .asText(null);
    } catch (Exception e) {
      return null;
    }
  }

  static byte[] frame(int channel, String s) {
    byte[] b = s.getBytes(StandardCharsets.UTF_8);
    byte[] out = new byte[b.length + 1];
    out[0] = (byte) channel;
    System.arraycopy(b, 0, out, 1, b.length);
    return out;
  }

  static String statusJson(int code) {
    return code == 0
        ? "{\"metadata\":{},\"status\":\"Success\"}"
        : "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"command terminated with non-zero exit code: "
            + code
            + "\",\"reason\":\"NonZeroExitCode\",\"details\":{\"causes\":[{\"reason\":\"ExitCode\",\"message\":\""
            + code
            + "\"}]}}";
  }

  private static OutputStream channel(WebSocket ws, int ch) {
    return new OutputStream() {
      @Override
      public void write(int b) {
        write(new byte[] {(byte) b}, 0, 1);
      }

      @Override
      public void write(byte[] b, int off, int len) {
        if (len == 0) {
          return; // an empty frame is ignored by the client anyway
        }
        byte[] out = new byte[len + 1];
        out[0] = (byte) ch;
        System.arraycopy(b, off, out, 1, len);
        ws.send(out);
      }
    };
  }

  private final Path root = createRoot();

  /** How many execs were answered (a test of the warm pool counts setup runs with it). */
  public final java.util.concurrent.atomic.AtomicInteger execs =
      new java.util.concurrent.atomic.AtomicInteger();

  /** Each pod's container: a bubblewrap sandbox whose pid 1 is the pod's command. */
  private final Map<String, Process> containers = new ConcurrentHashMap<>();

  /**
   * Runs the exec's command in the pod's container, entered with nsenter: like a kubelet, every
   * exec of a pod shares its namespaces, /workspace and /tmp, and an exec whose stream closes keeps
   * running (only deleting the pod ends what runs in it).
   */
  public int runInPodSandbox(
      String ns,
      String pod,
      String container,
      List<String> command,
      OutputStream stdout,
      OutputStream stderr)
      throws Exception {
    execs.incrementAndGet();
    long pid1 = container(ns + "/" + pod);
    List<String> argv =
        new ArrayList<>(
            List.of("/usr/bin/nsenter", "-t", Long.toString(pid1), "-a", "-r", "-w", "--"));
    argv.addAll(command);
    ProcessBuilder builder = new ProcessBuilder(argv);
    builder.environment().clear();
    builder.environment().put("PATH", "/usr/local/bin:/usr/bin:/bin");
    builder.environment().put("HOME", "/workspace");
    Process p = builder.start();
    p.getOutputStream().close();
    Thread out = pump(p.getInputStream(), stdout);
    Thread err = pump(p.getErrorStream(), stderr);
    // Interrupted when the stream closes: the process goes on, as in a real pod.
    int code = p.waitFor();
    out.join();
    err.join();
    return code;
  }

  /** The host pid of the pod's pid 1, starting its container at its first exec. */
  private long container(String key) throws Exception {
    Process running = containers.computeIfAbsent(key, this::startContainer);
    for (int i = 0; i < 500; i++) {
      // pid 1 is ready once bubblewrap set up its namespaces and became the pod's command
      var pid1 =
          running
              .toHandle()
              .children()
              .filter(child -> !child.info().command().orElse("bwrap").endsWith("bwrap"))
              .findFirst();
      if (pid1.isPresent()) {
        return pid1.get().pid();
      }
      if (!running.isAlive()) {
        throw new IllegalStateException("the container of " + key + " ended");
      }
      Thread.sleep(10);
    }
    throw new IllegalStateException("the container of " + key + " did not start");
  }

  private Process startContainer(String key) {
    try {
      Path podRoot = root.resolve(key.replace('/', '_'));
      Path workspace = podRoot.resolve("workspace");
      Path tmp = podRoot.resolve("tmp");
      Files.createDirectories(workspace);
      Files.createDirectories(tmp);
      List<String> argv =
          new ArrayList<>(
              List.of(
                  "/usr/bin/bwrap",
                  "--unshare-all",
                  "--die-with-parent",
                  "--as-pid-1",
                  "--ro-bind",
                  "/usr",
                  "/usr",
                  "--ro-bind",
                  "/etc",
                  "/etc"));
      for (String top : List.of("bin", "lib", "lib64", "sbin")) {
        Path link = Path.of("/", top);
        if (Files.isSymbolicLink(link)) {
          argv.addAll(List.of("--symlink", Files.readSymbolicLink(link).toString(), "/" + top));
        } else if (Files.isDirectory(link)) {
          argv.addAll(List.of("--ro-bind", "/" + top, "/" + top));
        }
      }
      argv.addAll(
          List.of(
              "--proc",
              "/proc",
              "--dev",
              "/dev",
              "--bind",
              workspace.toString(),
              "/workspace",
              "--bind",
              tmp.toString(),
              "/tmp",
              "--chdir",
              "/workspace",
              "--clearenv",
              "--setenv",
              "PATH",
              "/usr/bin:/bin",
              "--setenv",
              "HOME",
              "/workspace",
              "--",
              "/bin/sh",
              "-c",
              "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"));
      // from one thread that never ends: --die-with-parent kills the pod when the thread that
      // started it ends (a pooled thread idle past its keep-alive), as corral's Spawner says
      ProcessBuilder builder = new ProcessBuilder(argv).redirectErrorStream(true);
      return POD_STARTER.submit(builder::start).get();
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    } catch (java.util.concurrent.ExecutionException e) {
      throw new IllegalStateException(e.getCause());
    }
  }

  /** Ends a deleted pod's container: every process in it, its execs included. */
  private void stopContainer(String key) {
    Process running = containers.remove(key);
    if (running != null) {
      running.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
      running.destroyForcibly();
    }
  }

  private void deletePodFiles(String key) {
    Path podRoot = root.resolve(key.replace('/', '_'));
    if (!Files.exists(podRoot)) {
      return;
    }
    try (var paths = Files.walk(podRoot)) {
      paths.sorted(java.util.Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
    } catch (java.io.IOException e) {
      // left for the JVM's temp directory clean-up
    }
  }

  private static Path createRoot() {
    try {
      Path root = Files.createTempDirectory("fake-kubelet-");
      root.toFile().deleteOnExit();
      return root;
    } catch (java.io.IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private static Thread pump(java.io.InputStream in, OutputStream os) {
    Thread t =
        new Thread(
            () -> {
              try {
                in.transferTo(os);
              } catch (Exception ignored) {
              }
            },
            "mock-exec-pump");
    t.setDaemon(true);
    t.start();
    return t;
  }
}
