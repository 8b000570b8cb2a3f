package dev.corral.rest;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.corral.proto.v1.ApiKeyServiceGrpc;
import dev.corral.proto.v1.CreateApiKeyRequest;
import dev.corral.proto.v1.CreateApiKeyResponse;
import dev.corral.proto.v1.GetCredentialRequest;
import dev.corral.proto.v1.RevokeApiKeyRequest;
import dev.corral.proto.v1.Role;
import dev.corral.proto.v1.VaultServiceGrpc;
import dev.corral.testing.TestCredentials;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The facade at its edges, over plain HTTP as any client sends it: a stream that resumes from
 * {@code Last-Event-ID} with nothing lost or repeated, headers that go out before any event,
 * endpoints corral does not have, bodies that are too large or not JSON, roles, and a repository
 * token given the API's way that ends up in the vault and nowhere else.
 */
@QuarkusTest
class RestEdgesTest {

  @jakarta.inject.Inject dev.corral.session.EventTail tail;

  private static final String BASE = "http://localhost:18081";
  private static final ObjectMapper JSON = new ObjectMapper();

  private final HttpClient http =
      HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

  @GrpcClient("corral")
  ApiKeyServiceGrpc.ApiKeyServiceBlockingStub keys;

  @GrpcClient("corral")
  VaultServiceGrpc.VaultServiceBlockingStub vault;

  @Test
  void aStreamResumesAfterTheLastEventIdWithNothingLostOrRepeated() throws Exception {
    // Given a session (no harness runs here: only the messages are appended)
    String session = session();
    SseReader first = SseReader.open(http, session, null);
    send(session, "one", "two", "three");
    List<Sse> seen = first.take(3);
    first.close();

    // When more is appended while no one listens, and the client comes back with its last id
    send(session, "four", "five");
    SseReader resumed = SseReader.open(http, session, seen.get(2).id());
    List<Sse> after = resumed.take(2);
    // and a plain stream opened now sees only what comes next
    SseReader live = SseReader.open(http, session, null);
    send(session, "six");
    List<Sse> next = live.take(1);
    List<Sse> resumedNext = resumed.take(1);
    resumed.close();
    live.close();

    // Then every event came once, in order, named and numbered
    assertThat(seen).extracting(Sse::text).containsExactly("one", "two", "three");
    assertThat(seen).extracting(Sse::event).containsOnly("user.message");
    assertThat(after).extracting(Sse::text).containsExactly("four", "five");
    assertThat(Long.parseLong(after.get(0).id())).isEqualTo(Long.parseLong(seen.get(2).id()) + 1);
    assertThat(next).extracting(Sse::text).containsExactly("six");
    assertThat(resumedNext).extracting(Sse::text).containsExactly("six");
  }

  @Test
  void theStreamsHeadersGoOutBeforeAnyEvent() throws Exception {
    String session = session();
    long begin = System.nanoTime();
    HttpResponse<InputStream> response =
        http.sendAsync(streamRequest(session, null), HttpResponse.BodyHandlers.ofInputStream())
            .get(5, TimeUnit.SECONDS);
    assertThat(response.statusCode()).isEqualTo(200);
    assertThat(response.headers().firstValue("content-type").orElse(""))
        .startsWith("text/event-stream");
    assertThat(Duration.ofNanos(System.nanoTime() - begin)).isLessThan(Duration.ofSeconds(5));
    response.body().close();
  }

  @Test
  void aStreamNamesWhereItStartsSoThatAReconnectBeforeItsFirstEventLosesNothing() throws Exception {
    // Given a session with two events
    String session = session();
    send(session, "one", "two");

    // When a stream is opened with no cursor, and nothing more is appended
    HttpResponse<InputStream> response =
        http.sendAsync(streamRequest(session, null), HttpResponse.BodyHandlers.ofInputStream())
            .get(5, TimeUnit.SECONDS);
    List<String> before = new ArrayList<>();
    String id =
        assertTimeoutPreemptively(
            Duration.ofSeconds(10),
            () -> {
              try (BufferedReader body =
                  new BufferedReader(
                      new InputStreamReader(response.body(), StandardCharsets.UTF_8))) {
                for (String line = body.readLine(); line != null; line = body.readLine()) {
                  if (line.startsWith("id: ")) {
                    return line.substring(4);
                  }
                  before.add(line);
                }
                return null;
              }
            });

    // Then before any event it gives its cursor, the session's last seq, as the last event id,
    // which an EventSource sends back as Last-Event-ID when it reconnects
    assertThat(id).isEqualTo("2");
    assertThat(before).noneMatch(line -> line.startsWith("event:") || line.startsWith("data:"));
  }

  @Test
  void endpointsCorralLacksAndBadRequestsGetTheApisErrorShape() throws Exception {
    for (String[] call :
        new String[][] {
          {"GET", "/v1/nonsense"},
          {"DELETE", "/v1/agents/agent_00000000000000000000000000"},
          {"POST", "/v1/sessions/sesn_00000000000000000000000000/threads"},
          {"GET", "/v1/files"}
        }) {
      HttpResponse<String> response = call(call[0], call[1], "", TestCredentials.ADMIN_KEY);
      JsonNode body = JSON.readTree(response.body());
      assertThat(response.statusCode()).as(call[1]).isEqualTo(404);
      assertThat(response.headers().firstValue("content-type").orElse("")).contains("json");
      assertThat(body.path("type").asText()).isEqualTo("error");
      assertThat(body.path("error").path("type").asText()).isEqualTo("not_found_error");
      assertThat(body.path("error").path("message").asText())
          .contains(call[0] + " " + call[1])
          .contains("compatibility");
    }
    // a method the API never uses, on a path corral serves: 405 naming the methods it takes
    for (String[] call :
        new String[][] {
          {"PUT", "/v1/agents/agent_00000000000000000000000000", "GET, POST"},
          {"PATCH", "/v1/sessions/sesn_00000000000000000000000000", "DELETE, GET"},
          {"PUT", "/v1/agents", "GET, POST"}
        }) {
      HttpResponse<String> response = call(call[0], call[1], "{}", TestCredentials.ADMIN_KEY);
      JsonNode body = JSON.readTree(response.body());
      assertThat(response.statusCode()).as(call[0] + " " + call[1]).isEqualTo(405);
      assertThat(response.headers().firstValue("allow").orElse("")).isEqualTo(call[2]);
      assertThat(body.path("type").asText()).isEqualTo("error");
      assertThat(body.path("error").path("type").asText()).isEqualTo("invalid_request_error");
      assertThat(body.path("error").path("message").asText()).contains(call[0] + " is not allowed");
    }
    HttpResponse<String> notJson = call("POST", "/v1/agents", "{nope", TestCredentials.ADMIN_KEY);
    assertThat(notJson.statusCode()).isEqualTo(400);
    assertThat(notJson.body()).contains("invalid_request_error").contains("not valid JSON");
    HttpResponse<String> deep =
        call("POST", "/v1/agents", "[".repeat(200) + "]".repeat(200), TestCredentials.ADMIN_KEY);
    assertThat(deep.statusCode()).isEqualTo(400);
    HttpResponse<String> huge =
        call(
            "POST",
            "/v1/agents",
            "{\"name\":\"" + "x".repeat(5 << 20) + "\"}",
            TestCredentials.ADMIN_KEY);
    assertThat(huge.statusCode()).isEqualTo(413);
    assertThat(huge.body()).contains("request_too_large");
    // the API's web tools, which corral lacks, may be turned off as the SDKs do, and only that
    String webOff =
        "{\"type\":\"web_search\",\"name\":\"web_search\",\"enabled\":false},"
            + "{\"type\":\"web_fetch\",\"enabled\":false}";
    HttpResponse<String> withoutWeb =
        call(
            "POST",
            "/v1/agents",
            "{\"name\":\"a\",\"model\":\"m\",\"tools\":[{\"type\":\"agent_toolset_20260401\","
                + "\"configs\":["
                + webOff
                + ",{\"name\":\"bash\",\"enabled\":false}]}]}",
            TestCredentials.ADMIN_KEY);
    assertThat(withoutWeb.statusCode()).as(withoutWeb.body()).isEqualTo(200);
    assertThat(withoutWeb.body()).doesNotContain("web_").contains("bash");
    HttpResponse<String> withWeb =
        call(
            "POST",
            "/v1/agents",
            "{\"name\":\"a\",\"model\":\"m\",\"tools\":[{\"type\":\"agent_toolset_20260401\","
                + "\"configs\":[{\"type\":\"web_fetch\",\"enabled\":true}]}]}",
            TestCredentials.ADMIN_KEY);
    assertThat(withWeb.statusCode()).isEqualTo(400);
    assertThat(JSON.readTree(withWeb.body()).path("error").path("message").asText())
        .contains("tools[0].configs[0]")
        .contains("web_fetch");
    HttpResponse<String> badField =
        call(
            "POST",
            "/v1/agents",
            "{\"name\":\"a\",\"model\":\"m\",\"tools\":[{\"type\":\"web_browser\"}]}",
            TestCredentials.ADMIN_KEY);
    assertThat(badField.statusCode()).isEqualTo(400);
    assertThat(JSON.readTree(badField.body()).path("error").path("message").asText())
        .contains("tools[0].type");
    HttpResponse<String> nulInTitle =
        call(
            "POST",
            "/v1/sessions",
            "{\"agent\":\"" + agent() + "\",\"title\":\"a\\u0000b\"}",
            TestCredentials.ADMIN_KEY);
    assertThat(nulInTitle.statusCode()).as(nulInTitle.body()).isEqualTo(400);
    assertThat(JSON.readTree(nulInTitle.body()).path("error").path("message").asText())
        .contains("title")
        .contains("NUL");
    HttpResponse<String> nulInMetadata =
        call(
            "POST",
            "/v1/sessions",
            "{\"agent\":\"" + agent() + "\",\"metadata\":{\"k\":\"\\u0000\"}}",
            TestCredentials.ADMIN_KEY);
    assertThat(nulInMetadata.statusCode()).as(nulInMetadata.body()).isEqualTo(400);
    assertThat(JSON.readTree(nulInMetadata.body()).path("error").path("message").asText())
        .contains("metadata.k");
    for (HttpResponse<String> response :
        List.of(notJson, deep, huge, badField, nulInTitle, nulInMetadata)) {
      assertThat(response.body()).doesNotContainPattern("Exception|java\\.|dev\\.corral");
    }
  }

  @Test
  void aRepositoryWithALongUrlTakesItsTokenLikeAnyOther() throws Exception {
    // A URL may be 2,048 characters; the name of the credential its token is kept in, 256
    String url = "https://github.com/acme/" + "a".repeat(300) + ".git";
    HttpResponse<String> created =
        call(
            "POST",
            "/v1/sessions",
            "{\"agent\":\""
                + agent()
                + "\",\"resources\":[{\"type\":\"github_repository\",\"url\":\""
                + url
                + "\",\"mount_path\":\"/workspace/app\",\"authorization_token\":\"ghp_long\"}]}",
            TestCredentials.ADMIN_KEY);
    assertThat(created.statusCode()).as(created.body()).isEqualTo(200);
    assertThat(JSON.readTree(created.body()).path("resources").get(0).path("url").asText())
        .isEqualTo(url);
  }

  @Test
  void aListFilterCorralCannotApplyIsRefusedNamingItNotIgnored() throws Exception {
    // A list that ignored a filter would answer more than was asked for: a cleanup script that
    // deletes what "sessions created before X" lists would delete every session
    String session = "sesn_00000000000000000000000000";
    for (String path :
        List.of(
            "/v1/sessions?created_at[lte]=2025-01-01T00:00:00Z",
            "/v1/sessions?agent_version=3",
            "/v1/sessions?memory_store_id=x",
            "/v1/sessions?order=asc",
            "/v1/agents?created_at[gte]=2025-01-01T00:00:00Z",
            "/v1/sessions/" + session + "/events?created_at[gt]=2025-01-01T00:00:00Z")) {
      HttpResponse<String> response = call("GET", path, "", TestCredentials.ADMIN_KEY);
      assertThat(response.statusCode()).as(path).isEqualTo(400);
      String parameter = path.substring(path.indexOf('?') + 1, path.indexOf('='));
      assertThat(JSON.readTree(response.body()).path("error").path("message").asText())
          .as(path)
          .contains(parameter);
    }
    // and the filters it applies still work
    assertThat(
            call("GET", "/v1/sessions?order=desc&limit=1", "", TestCredentials.ADMIN_KEY)
                .statusCode())
        .isEqualTo(200);
  }

  /**
   * docs/compatibility.md is checked against the server: every endpoint it marks "not yet" answers
   * the API's 404 naming it, and every endpoint it marks supported is served (a client error for
   * these made-up ids and empty bodies, never "does not implement").
   */
  @Test
  void theCompatibilityTableSaysWhatTheServerDoes() throws Exception {
    Pattern endpoint = Pattern.compile("`(GET|POST|DELETE) (/v1/[^`…]*)`");
    int supported = 0;
    int missing = 0;
    for (String line : Files.readAllLines(Path.of("docs/compatibility.md"))) {
      String[] cells = line.split("\\|");
      if (cells.length < 4 || !cells[1].contains("`")) {
        continue;
      }
      boolean notYet = cells[cells.length - 1].contains("**not yet");
      Matcher found = endpoint.matcher(cells[1]);
      while (found.find()) {
        String method = found.group(1);
        String path = found.group(2).replaceAll("\\{[a-z]+\\}", "made_up_1");
        HttpResponse<String> response = call(method, path, "", TestCredentials.ADMIN_KEY);
        String message = JSON.readTree(response.body()).path("error").path("message").asText("");
        if (notYet) {
          missing++;
          assertThat(response.statusCode()).as(method + " " + path).isEqualTo(404);
          assertThat(message).as(method + " " + path).contains("does not implement " + method);
        } else {
          supported++;
          assertThat(response.statusCode()).as(method + " " + path).isBetween(200, 499);
          assertThat(message).as(method + " " + path).doesNotContain("does not implement");
        }
      }
    }
    assertThat(supported).isGreaterThanOrEqualTo(30);
    assertThat(missing).isGreaterThanOrEqualTo(5);
  }

  @Test
  void aStreamEndsWithAnErrorOnceItsKeyIsRevoked() throws Exception {
    // Given a stream opened with a viewer's key, which gets the session's events
    CreateApiKeyResponse viewer =
        keys.createApiKey(
            CreateApiKeyRequest.newBuilder()
                .setName("streaming viewer")
                .setRole(Role.ROLE_VIEWER)
                .setTenantId("default")
                .build());
    String session = session();
    SseReader stream = SseReader.open(http, session, null, viewer.getKey());
    send(session, "before");
    assertThat(stream.take(1)).extracting(Sse::text).containsExactly("before");

    // When the key is revoked
    keys.revokeApiKey(
        RevokeApiKeyRequest.newBuilder().setApiKeyId(viewer.getApiKey().getId()).build());

    // Then the stream ends with an authentication error within the re-check interval
    List<Sse> last = stream.take(1);
    assertThat(last).extracting(Sse::event).containsExactly("error");
    assertThat(last.get(0).data().path("error").path("type").asText())
        .isEqualTo("authentication_error");
    await().atMost(Duration.ofSeconds(5)).until(stream::ended);
    stream.close();
  }

  @Test
  void archivingASessionEndsItAndItsStreamsAndDeletingOneSaysSoInTheApisShape() throws Exception {
    // Given a session with a stream open on it
    String session = session();
    SseReader stream = SseReader.open(http, session, null);
    send(session, "hello");
    assertThat(stream.take(1)).extracting(Sse::text).containsExactly("hello");

    // When it is archived (twice: the second changes nothing)
    HttpResponse<String> archived =
        call("POST", "/v1/sessions/" + session + "/archive", "", TestCredentials.ADMIN_KEY);
    HttpResponse<String> again =
        call("POST", "/v1/sessions/" + session + "/archive", "", TestCredentials.ADMIN_KEY);

    // Then it is terminated and read-only, and its stream got the end and ended
    assertThat(archived.statusCode()).as(archived.body()).isEqualTo(200);
    assertThat(JSON.readTree(archived.body()).path("status").asText()).isEqualTo("terminated");
    assertThat(JSON.readTree(archived.body()).path("archived_at").isTextual()).isTrue();
    assertThat(again.statusCode()).isEqualTo(200);
    List<Sse> end = stream.take(1);
    assertThat(end).extracting(Sse::event).containsExactly("session.status_terminated");
    await().atMost(Duration.ofSeconds(5)).until(stream::ended);
    HttpResponse<String> late =
        call(
            "POST",
            "/v1/sessions/" + session + "/events",
            "{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\","
                + "\"text\":\"late\"}]}]}",
            TestCredentials.ADMIN_KEY);
    assertThat(late.statusCode()).isEqualTo(409);
    // and a stream opened on it from the start replays its log to that end, then ends
    SseReader replay = SseReader.open(http, session, "0");
    assertThat(replay.take(2))
        .extracting(Sse::event)
        .containsExactly("user.message", "session.status_terminated");
    await().atMost(Duration.ofSeconds(5)).until(replay::ended);
    // while a stream opened on it plainly, or by an EventSource reconnecting after the end, gets
    // 204 (no reconnecting) instead of a stream that never ends
    HttpResponse<String> plain =
        http.send(streamRequest(session, null), HttpResponse.BodyHandlers.ofString());
    HttpResponse<String> reconnect =
        http.send(streamRequest(session, end.get(0).id()), HttpResponse.BodyHandlers.ofString());
    assertThat(plain.statusCode()).isEqualTo(204);
    assertThat(reconnect.statusCode()).isEqualTo(204);

    // And a stream of a session that is deleted ends with session.deleted, with an id and time
    String other = session();
    SseReader watching = SseReader.open(http, other, null);
    assertThat(call("DELETE", "/v1/sessions/" + other, "", TestCredentials.ADMIN_KEY).statusCode())
        .isEqualTo(200);
    List<Sse> deleted = watching.take(1);
    assertThat(deleted).extracting(Sse::event).containsExactly("session.deleted");
    assertThat(deleted.get(0).data().path("id").asText()).startsWith("sevt_");
    assertThat(deleted.get(0).data().path("processed_at").asText()).isNotEmpty();
    await().atMost(Duration.ofSeconds(5)).until(watching::ended);
  }

  @Test
  void aStreamWhoseClientStopsReadingReadsNoMoreOfTheLogThanTheConnectionHolds() throws Exception {
    // Given a session whose log (25 MiB) is far more than a connection's buffers hold
    String session = session();
    String text = "y".repeat(64 * 1024);
    StringBuilder batch = new StringBuilder("{\"events\":[");
    for (int i = 0; i < 10; i++) {
      batch.append(i == 0 ? "" : ",");
      batch.append("{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"");
      batch.append(text).append("\"}]}");
    }
    batch.append("]}");
    for (int i = 0; i < 40; i++) {
      HttpResponse<String> sent =
          call(
              "POST",
              "/v1/sessions/" + session + "/events",
              batch.toString(),
              TestCredentials.ADMIN_KEY);
      assertThat(sent.statusCode()).as(sent.body()).isEqualTo(200);
    }
    long readBefore = tail.eventsRead();

    // When a client opens its stream from the start, reads its first bytes and stops reading
    try (java.net.Socket socket = new java.net.Socket()) {
      socket.setReceiveBufferSize(16 * 1024);
      socket.connect(new java.net.InetSocketAddress("localhost", 18081));
      socket
          .getOutputStream()
          .write(
              ("GET /v1/sessions/"
                      + session
                      + "/events/stream?after_seq=0 HTTP/1.1\r\nhost: localhost\r\nx-api-key: "
                      + TestCredentials.ADMIN_KEY
                      + "\r\n\r\n")
                  .getBytes(StandardCharsets.US_ASCII));
      String head = new String(socket.getInputStream().readNBytes(4096), StandardCharsets.US_ASCII);
      assertThat(head).startsWith("HTTP/1.1 200");
      await().pollDelay(Duration.ofSeconds(1)).until(() -> true);

      // Then corral read what the connection holds (the kernel's send buffer, at most 4 MiB here,
      // and Vert.x's write queue) and a page or two, not the whole log
      long readWhileStalled = tail.eventsRead() - readBefore;
      assertThat(readWhileStalled * 64 * 1024).isLessThanOrEqualTo(8L << 20);
    }
  }

  @Test
  void anAgentUpdateClearsWhatIsSentAsNullAndRefusesToClearWhatAnAgentNeeds() throws Exception {
    // Given an agent with a system prompt, a description and a tool list
    JsonNode agent =
        JSON.readTree(
            call(
                    "POST",
                    "/v1/agents",
                    "{\"name\":\"clearable\",\"model\":\"claude-test\",\"system\":\"Be terse.\","
                        + "\"description\":\"d\",\"tools\":[{\"type\":\"agent_toolset_20260401\"}]}",
                    TestCredentials.ADMIN_KEY)
                .body());
    String path = "/v1/agents/" + agent.path("id").asText();

    // When name, model or a version below 1 is sent, the update is refused naming the field
    for (String[] refused :
        new String[][] {
          {"{\"version\":1,\"name\":null}", "name"},
          {"{\"version\":1,\"model\":null}", "model"},
          {"{\"version\":0,\"system\":\"x\"}", "version"},
          {"{\"version\":-3,\"system\":\"x\"}", "version"}
        }) {
      HttpResponse<String> answer = call("POST", path, refused[0], TestCredentials.ADMIN_KEY);
      assertThat(answer.statusCode()).as(refused[0]).isEqualTo(400);
      assertThat(answer.body()).as(refused[0]).contains(refused[1]);
    }

    // And null clears system, description and tools
    HttpResponse<String> cleared =
        call(
            "POST",
            path,
            "{\"version\":1,\"system\":null,\"description\":null,\"tools\":null}",
            TestCredentials.ADMIN_KEY);
    assertThat(cleared.statusCode()).as(cleared.body()).isEqualTo(200);
    JsonNode updated = JSON.readTree(cleared.body());
    assertThat(updated.path("version").asInt()).isEqualTo(2);
    assertThat(updated.path("system").asText("")).isEmpty();
    assertThat(updated.path("description").asText("")).isEmpty();
    assertThat(updated.path("tools")).isEmpty();
    assertThat(updated.path("name").asText()).isEqualTo("clearable");
  }

  @Test
  void anAgentShowsTheToolPermissionsTheHarnessApplies() throws Exception {
    // Given an agent with an MCP toolset configured nowhere, and a built-in toolset that asks by
    // default, with bash named only to enable it
    HttpResponse<String> created =
        call(
            "POST",
            "/v1/agents",
            "{\"name\":\"policies\",\"model\":\"claude-test\","
                + "\"mcp_servers\":[{\"type\":\"url\",\"name\":\"gh\","
                + "\"url\":\"https://mcp.example.com/mcp\"}],"
                + "\"tools\":[{\"type\":\"mcp_toolset\",\"mcp_server_name\":\"gh\","
                + "\"configs\":[{\"name\":\"search\"}]},"
                + "{\"type\":\"agent_toolset_20260401\",\"default_config\":"
                + "{\"enabled\":false,\"permission_policy\":{\"type\":\"always_ask\"}},"
                + "\"configs\":[{\"name\":\"bash\",\"enabled\":true},{\"name\":\"read\"}]}]}",
            TestCredentials.ADMIN_KEY);
    assertThat(created.statusCode()).as(created.body()).isEqualTo(200);
    JsonNode tools = JSON.readTree(created.body()).path("tools");

    // Then the MCP tools are always allowed, as they run (the API's default), and bash asks, as
    // its toolset's default says; read stays disabled with it
    JsonNode mcp = tools.get(0);
    assertThat(mcp.path("default_config").path("permission_policy").path("type").asText())
        .isEqualTo("always_allow");
    assertThat(mcp.path("configs").get(0).path("permission_policy").path("type").asText())
        .isEqualTo("always_allow");
    JsonNode builtIn = tools.get(1);
    JsonNode bash = builtIn.path("configs").get(0);
    assertThat(bash.path("enabled").asBoolean()).isTrue();
    assertThat(bash.path("permission_policy").path("type").asText()).isEqualTo("always_ask");
    JsonNode read = builtIn.path("configs").get(1);
    assertThat(read.path("enabled").asBoolean()).isFalse();
    assertThat(read.path("permission_policy").path("type").asText()).isEqualTo("always_ask");
  }

  @Test
  void aBodyIsReadAsStrictlyAsTheGrpcApiReadsJson() throws Exception {
    // A key twice, something after the object, and half of a surrogate pair are each refused,
    // naming what is wrong, rather than read as something the client did not send
    for (String[] refused :
        new String[][] {
          {"{\"name\":\"a\",\"name\":\"b\",\"model\":\"claude-test\"}", "appears twice"},
          {"{\"name\":\"a\",\"model\":\"claude-test\"}{\"name\":\"b\"}", "follows the value"},
          {"{\"name\":\"a\\ud800b\",\"model\":\"claude-test\"}", "name: holds half"},
          {
            "{\"name\":\"a\",\"model\":\"claude-test\",\"metadata\":{\"k\":\"v\\udc00\"}}",
            "metadata.k: holds half"
          }
        }) {
      HttpResponse<String> answer =
          call("POST", "/v1/agents", refused[0], TestCredentials.ADMIN_KEY);
      assertThat(answer.statusCode()).as(refused[0]).isEqualTo(400);
      assertThat(answer.body()).as(refused[0]).contains(refused[1]);
    }
    // while a whole pair (an emoji as escapes) is text like any other
    HttpResponse<String> emoji =
        call(
            "POST",
            "/v1/agents",
            "{\"name\":\"a\\ud83d\\ude00\",\"model\":\"claude-test\"}",
            TestCredentials.ADMIN_KEY);
    assertThat(emoji.statusCode()).as(emoji.body()).isEqualTo(200);
    assertThat(JSON.readTree(emoji.body()).path("name").asText()).isEqualTo("a\uD83D\uDE00");
  }

  @Test
  void anOAuthCredentialsAccessTokenIsRotatedAloneAndKeepsItsRefresh() throws Exception {
    // Given an mcp_oauth credential that corral can refresh
    String vault =
        JSON.readTree(
                call(
                        "POST",
                        "/v1/vaults",
                        "{\"display_name\":\"oauth\"}",
                        TestCredentials.ADMIN_KEY)
                    .body())
            .path("id")
            .asText();
    HttpResponse<String> created =
        call(
            "POST",
            "/v1/vaults/" + vault + "/credentials",
            "{\"auth\":{\"type\":\"mcp_oauth\",\"mcp_server_url\":\"https://mcp.example.com/o\","
                + "\"access_token\":\"at-old\",\"refresh\":{\"refresh_token\":\"rt\","
                + "\"token_endpoint\":\"https://auth.example.com/token\",\"client_id\":\"c\","
                + "\"resource\":null}}}",
            TestCredentials.ADMIN_KEY);
    assertThat(created.statusCode()).as(created.body()).isEqualTo(200);
    String path =
        "/v1/vaults/" + vault + "/credentials/" + JSON.readTree(created.body()).path("id").asText();

    // When a client sends a new access token alone
    HttpResponse<String> rotated =
        call(
            "POST",
            path,
            "{\"auth\":{\"type\":\"mcp_oauth\",\"access_token\":\"at-new\"}}",
            TestCredentials.ADMIN_KEY);

    // Then it is taken, and the credential still refreshes as before
    assertThat(rotated.statusCode()).as(rotated.body()).isEqualTo(200);
    JsonNode refresh = JSON.readTree(rotated.body()).path("auth").path("refresh");
    assertThat(refresh.path("token_endpoint").asText()).isEqualTo("https://auth.example.com/token");
    assertThat(refresh.path("client_id").asText()).isEqualTo("c");
    assertThat(rotated.body()).doesNotContain("at-new").doesNotContain("\"rt\"");

    // And a refresh token alone (as the SDKs' update params allow) is taken too
    HttpResponse<String> refreshed =
        call(
            "POST",
            path,
            "{\"auth\":{\"type\":\"mcp_oauth\",\"refresh\":{\"refresh_token\":\"rt2\"}}}",
            TestCredentials.ADMIN_KEY);
    assertThat(refreshed.statusCode()).as(refreshed.body()).isEqualTo(200);
    assertThat(
            JSON.readTree(refreshed.body()).path("auth").path("refresh").path("client_id").asText())
        .isEqualTo("c");

    // But not a new token endpoint, nor a resource indicator corral would not send
    for (String refused :
        List.of(
            "{\"token_endpoint\":\"https://other.example.com/token\"}",
            "{\"refresh_token\":\"rt3\",\"resource\":\"https://mcp.example.com/\"}")) {
      HttpResponse<String> answer =
          call(
              "POST",
              path,
              "{\"auth\":{\"type\":\"mcp_oauth\",\"refresh\":" + refused + "}}",
              TestCredentials.ADMIN_KEY);
      assertThat(answer.statusCode()).as(refused + " " + answer.body()).isBetween(400, 409);
    }
  }

  @Test
  void aRefusedFieldIsNamedAsTheRestClientSentIt() throws Exception {
    String vault =
        JSON.readTree(
                call(
                        "POST",
                        "/v1/vaults",
                        "{\"display_name\":\"names\"}",
                        TestCredentials.ADMIN_KEY)
                    .body())
            .path("id")
            .asText();

    // a bearer token with a line break, a refresh endpoint that is no URL, a resource too small
    HttpResponse<String> token =
        call(
            "POST",
            "/v1/vaults/" + vault + "/credentials",
            "{\"auth\":{\"type\":\"static_bearer\",\"mcp_server_url\":\"https://mcp.example.com/m\","
                + "\"token\":\"a\\nb\"}}",
            TestCredentials.ADMIN_KEY);
    HttpResponse<String> endpoint =
        call(
            "POST",
            "/v1/vaults/" + vault + "/credentials",
            "{\"auth\":{\"type\":\"mcp_oauth\",\"mcp_server_url\":\"https://mcp.example.com/o\","
                + "\"access_token\":\"at\",\"refresh\":{\"refresh_token\":\"rt\","
                + "\"token_endpoint\":\"ftp://auth.example.com/token\",\"client_id\":\"c\"}}}",
            TestCredentials.ADMIN_KEY);
    HttpResponse<String> memory =
        call(
            "POST",
            "/v1/environments",
            "{\"name\":\"small\",\"config\":{\"type\":\"cloud\","
                + "\"resources\":{\"memory_bytes\":1024}}}",
            TestCredentials.ADMIN_KEY);

    // a custom tool whose schema is no object schema, and a toolset config naming no tool, in an
    // agent's create and in its update
    String badSchema =
        "\"tools\":[{\"type\":\"custom\",\"name\":\"t\",\"description\":\"d\","
            + "\"input_schema\":{\"type\":\"string\"}}]";
    HttpResponse<String> schema =
        call(
            "POST",
            "/v1/agents",
            "{\"name\":\"n\",\"model\":\"claude-test\"," + badSchema + "}",
            TestCredentials.ADMIN_KEY);
    String agent = agent();
    HttpResponse<String> updatedSchema =
        call("POST", "/v1/agents/" + agent, "{" + badSchema + "}", TestCredentials.ADMIN_KEY);
    HttpResponse<String> config =
        call(
            "POST",
            "/v1/agents",
            "{\"name\":\"n\",\"model\":\"claude-test\",\"tools\":[{\"type\":"
                + "\"agent_toolset_20260401\",\"configs\":[{\"name\":\"nope\"}]}]}",
            TestCredentials.ADMIN_KEY);

    assertThat(schema.statusCode()).as(schema.body()).isEqualTo(400);
    assertThat(message(schema)).startsWith("tools[0].input_schema: ").doesNotContain("custom");
    assertRefusedNaming(updatedSchema, "tools[0].input_schema: ");
    assertThat(config.statusCode()).as(config.body()).isEqualTo(400);
    assertThat(message(config)).startsWith("tools[0].configs[0]").doesNotContain("toolset.");
    assertThat(token.statusCode()).isEqualTo(400);
    assertThat(message(token)).startsWith("auth.token: ").doesNotContain("static_header");
    assertThat(endpoint.statusCode()).isEqualTo(400);
    assertThat(message(endpoint)).startsWith("auth.refresh.token_endpoint: ");
    assertThat(memory.statusCode()).isEqualTo(400);
    assertThat(message(memory)).startsWith("config.resources.memory_bytes: ");
  }

  @Test
  void aMistakeIsNamedAsTheClientSentItNotAsTheGrpcRequestItBecomes() throws Exception {
    String vault = vault();
    String credential = bearerCredential(vault);
    String environment =
        JSON.readTree(
                call("POST", "/v1/environments", "{\"name\":\"kept\"}", TestCredentials.ADMIN_KEY)
                    .body())
            .path("id")
            .asText();

    // a cursor that is none, in every list
    for (String list :
        List.of(
            "/v1/agents",
            "/v1/agents/" + agent() + "/versions",
            "/v1/environments",
            "/v1/sessions",
            "/v1/vaults",
            "/v1/vaults/" + vault + "/credentials")) {
      assertRefusedNaming(
          call("GET", list + "?page=garbage", "", TestCredentials.ADMIN_KEY), "page:");
    }
    // a session's agent, as an id or as an object, and its budget
    assertRefusedNaming(
        call("POST", "/v1/sessions", "{\"agent\":\"nope\"}", TestCredentials.ADMIN_KEY), "agent:");
    assertRefusedNaming(
        call(
            "POST",
            "/v1/sessions",
            "{\"agent\":{\"type\":\"agent\",\"id\":\"nope\"}}",
            TestCredentials.ADMIN_KEY),
        "agent.id:");
    assertRefusedNaming(
        call(
            "POST",
            "/v1/sessions",
            "{\"agent\":\"" + agent() + "\",\"corral_budget\":{\"max_tokens\":-1}}",
            TestCredentials.ADMIN_KEY),
        "corral_budget.max_tokens:");
    // a credential's metadata
    assertRefusedNaming(
        call(
            "POST",
            "/v1/vaults/" + vault + "/credentials/" + credential,
            "{\"metadata\":{\"k\":\"" + "v".repeat(513) + "\"}}",
            TestCredentials.ADMIN_KEY),
        "metadata[k]:");
    // an environment's name, which cannot be cleared
    assertRefusedNaming(
        call(
            "POST",
            "/v1/environments/" + environment,
            "{\"name\":null}",
            TestCredentials.ADMIN_KEY),
        "name:");
    assertThat(
            JSON.readTree(
                    call("GET", "/v1/environments/" + environment, "", TestCredentials.ADMIN_KEY)
                        .body())
                .path("name")
                .asText())
        .isEqualTo("kept");
  }

  @jakarta.inject.Inject io.vertx.mutiny.sqlclient.Pool pool;

  @Test
  void twoMetadataPatchesOfACredentialAtOnceBothHold() throws Exception {
    // Given a credential whose row another transaction holds, so that two updates wait for it
    String vault = vault();
    String credential = bearerCredential(vault);
    String path = "/v1/vaults/" + vault + "/credentials/" + credential;
    var hold = dev.corral.testing.SessionRows.lockRow(pool, "credentials", credential);
    CompletableFuture<HttpResponse<String>> first;
    CompletableFuture<HttpResponse<String>> second;
    try {
      // When two clients patch different keys of its metadata at once
      first =
          CompletableFuture.supplyAsync(
              () -> uncheckedCall("POST", path, "{\"metadata\":{\"a\":\"1\"}}"));
      second =
          CompletableFuture.supplyAsync(
              () -> uncheckedCall("POST", path, "{\"metadata\":{\"b\":\"2\"}}"));
      await()
          .atMost(Duration.ofSeconds(10))
          .until(() -> dev.corral.testing.SessionRows.statementsWaitingForALock(pool) >= 2);
    } finally {
      dev.corral.testing.SessionRows.rollback(hold);
    }

    // Then both hold: each patch applies to the metadata as the other left it
    assertThat(first.get(20, TimeUnit.SECONDS).statusCode()).isEqualTo(200);
    assertThat(second.get(20, TimeUnit.SECONDS).statusCode()).isEqualTo(200);
    JsonNode metadata =
        JSON.readTree(call("GET", path, "", TestCredentials.ADMIN_KEY).body()).path("metadata");
    assertThat(metadata.path("a").asText()).isEqualTo("1");
    assertThat(metadata.path("b").asText()).isEqualTo("2");
  }

  private HttpResponse<String> uncheckedCall(String method, String path, String body) {
    try {
      return call(method, path, body, TestCredentials.ADMIN_KEY);
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  @Test
  void aBodyThatIsNotJsonIsTheClientsMistakeAndChangesNothing() throws Exception {
    String agent = agent();
    String path = "/v1/agents/" + agent;
    // a form body the web layer cannot decode, and a multipart form (whose parts never reach the
    // body the routes read)
    HttpResponse<String> form =
        typed(path, "name=%zz&model=%", "application/x-www-form-urlencoded");
    HttpResponse<String> multipart =
        typed(
            path,
            "--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nrenamed\r\n--b--\r\n",
            "multipart/form-data; boundary=b");

    assertThat(form.statusCode()).as(form.body()).isEqualTo(400);
    assertThat(JSON.readTree(form.body()).path("error").path("type").asText())
        .isEqualTo("invalid_request_error");
    assertRefusedNaming(multipart, "body:");
    JsonNode kept = JSON.readTree(call("GET", path, "", TestCredentials.ADMIN_KEY).body());
    assertThat(kept.path("name").asText()).isEqualTo("edges");
    assertThat(kept.path("version").asInt()).isEqualTo(1);
    // while JSON sent as a form (curl -d's default type) is read as JSON
    HttpResponse<String> curl =
        typed(path, "{\"name\":\"100% renamed\"}", "application/x-www-form-urlencoded");
    assertThat(curl.statusCode()).as(curl.body()).isEqualTo(200);
    assertThat(JSON.readTree(curl.body()).path("name").asText()).isEqualTo("100% renamed");
  }

  private HttpResponse<String> typed(String path, String body, String contentType)
      throws Exception {
    return http.send(
        HttpRequest.newBuilder(URI.create(BASE + path))
            .timeout(Duration.ofSeconds(20))
            .POST(HttpRequest.BodyPublishers.ofString(body))
            .header("x-api-key", TestCredentials.ADMIN_KEY)
            .header("content-type", contentType)
            .build(),
        HttpResponse.BodyHandlers.ofString());
  }

  /** A 400 whose message starts with the field it names. */
  private static void assertRefusedNaming(HttpResponse<String> response, String field)
      throws Exception {
    assertThat(response.statusCode()).as(response.body()).isEqualTo(400);
    assertThat(message(response)).startsWith(field);
  }

  private static String message(HttpResponse<String> response) throws Exception {
    return JSON.readTree(response.body()).path("error").path("message").asText();
  }

  @Test
  void anEventFilterMayNameTheApisTypesThatCorralNeverAppends() throws Exception {
    // Given a session with two messages
    String session = session();
    send(session, "one", "two");
    String events = "/v1/sessions/" + session + "/events";

    // When its events are listed by types the API has and corral never appends, with and without
    // one it does
    HttpResponse<String> none =
        call("GET", events + "?types[]=session.updated", "", TestCredentials.ADMIN_KEY);
    HttpResponse<String> some =
        call(
            "GET",
            events + "?types[]=user.message&types[]=span.outcome_evaluation_end",
            "",
            TestCredentials.ADMIN_KEY);
    HttpResponse<String> unknown =
        call(
            "GET",
            "/v1/sessions/sesn_00000000000000000000000000/events?types[]=session.updated",
            "",
            TestCredentials.ADMIN_KEY);
    HttpResponse<String> badLimit =
        call("GET", events + "?types[]=session.updated&limit=0", "", TestCredentials.ADMIN_KEY);

    // Then those match nothing, the rest filters as before, and an unknown session is still 404
    assertThat(none.statusCode()).as(none.body()).isEqualTo(200);
    assertThat(JSON.readTree(none.body()).path("data")).isEmpty();
    assertThat(JSON.readTree(none.body()).path("next_page").isNull()).isTrue();
    assertThat(some.statusCode()).as(some.body()).isEqualTo(200);
    assertThat(JSON.readTree(some.body()).path("data")).hasSize(2);
    assertThat(unknown.statusCode()).isEqualTo(404);
    assertThat(badLimit.statusCode()).as(badLimit.body()).isEqualTo(400);

    // And every type the Anthropic SDK has a name for may be asked for
    for (java.lang.reflect.Field field :
        com.anthropic.models.beta.sessions.events.BetaManagedAgentsSessionEventType.class
            .getFields()) {
      if (field.getType()
          != com.anthropic.models.beta.sessions.events.BetaManagedAgentsSessionEventType.class) {
        continue;
      }
      String type =
          ((com.anthropic.models.beta.sessions.events.BetaManagedAgentsSessionEventType)
                  field.get(null))
              .asString();
      HttpResponse<String> listed =
          call("GET", events + "?types[]=" + type, "", TestCredentials.ADMIN_KEY);
      assertThat(listed.statusCode()).as(type + ": " + listed.body()).isEqualTo(200);
    }
    // and an unknown one is named by its place among those the client sent
    HttpResponse<String> third =
        call(
            "GET",
            events + "?types[]=session.updated&types[]=user.message&types[]=user.nonsense",
            "",
            TestCredentials.ADMIN_KEY);
    assertThat(third.statusCode()).isEqualTo(400);
    assertThat(message(third)).startsWith("types[2]");
  }

  @Test
  void aCursorBeforeTheFirstEventIsRefusedNotReadAsAnEmptyPage() throws Exception {
    // Given a session with events
    String session = session();
    send(session, "one");

    // When its events are listed, newest first, from a cursor before seq 1
    HttpResponse<String> before =
        call(
            "GET",
            "/v1/sessions/" + session + "/events?order=desc&page=d0",
            "",
            TestCredentials.ADMIN_KEY);

    // Then the cursor is refused, by the name of the REST parameter
    assertThat(before.statusCode()).as(before.body()).isEqualTo(400);
    assertThat(before.body()).contains("page").doesNotContain("before_seq");
  }

  @Test
  void anEnvironmentUpdateWithAVersionBelowOneIsRefusedNotAppliedBlind() throws Exception {
    // Given an environment at version 2
    JsonNode environment =
        JSON.readTree(
            call("POST", "/v1/environments", "{\"name\":\"versioned\"}", TestCredentials.ADMIN_KEY)
                .body());
    String path = "/v1/environments/" + environment.path("id").asText();
    assertThat(
            call("POST", path, "{\"version\":1,\"name\":\"v2\"}", TestCredentials.ADMIN_KEY)
                .statusCode())
        .isEqualTo(200);

    // When an update names version 0 or -1, it is refused naming the field, as for agents
    for (String refused :
        List.of("{\"version\":0,\"name\":\"x\"}", "{\"version\":-1,\"name\":\"x\"}")) {
      HttpResponse<String> answer = call("POST", path, refused, TestCredentials.ADMIN_KEY);
      assertThat(answer.statusCode()).as(refused).isEqualTo(400);
      assertThat(answer.body()).as(refused).contains("version");
    }

    // Then it is unchanged
    JsonNode now = JSON.readTree(call("GET", path, "", TestCredentials.ADMIN_KEY).body());
    assertThat(now.path("name").asText()).isEqualTo("v2");
  }

  @Test
  void anEnvironmentUpdateClearsWhatItSetsToNullAndDeletesMetadataSetToEmpty() throws Exception {
    // Given an environment with a description and two metadata keys
    JsonNode environment =
        JSON.readTree(
            call(
                    "POST",
                    "/v1/environments",
                    "{\"name\":\"patched\",\"description\":\"d\",\"metadata\":{\"a\":\"1\",\"b\":\"2\"}}",
                    TestCredentials.ADMIN_KEY)
                .body());
    String path = "/v1/environments/" + environment.path("id").asText();

    // When an update sets the description to null and one key to "" (as the SDKs document)
    HttpResponse<String> updated =
        call(
            "POST",
            path,
            "{\"description\":null,\"metadata\":{\"a\":\"\"}}",
            TestCredentials.ADMIN_KEY);

    // Then both are gone, and the other key stays
    assertThat(updated.statusCode()).as(updated.body()).isEqualTo(200);
    JsonNode now = JSON.readTree(call("GET", path, "", TestCredentials.ADMIN_KEY).body());
    assertThat(now.path("description").asText("")).isEmpty();
    assertThat(now.path("metadata").has("a")).isFalse();
    assertThat(now.path("metadata").path("b").asText()).isEqualTo("2");
  }

  @Test
  void requestsThatCannotBeHonouredAreClientErrorsNamingWhy() throws Exception {
    String session = session();
    send(session, "one");

    // A bad percent-escape in the query (a client's raw URL; java.net.URI refuses to build one)
    // is a client error, never an internal one
    for (String target :
        List.of(
            "/v1/agents?limit=%zz",
            "/v1/sessions?statuses[]=%",
            "/v1/sessions/" + session + "/events/stream?event_deltas[]=%G1")) {
      String answer = rawGet(target);
      // (Quarkus refuses some of these itself, with an empty 400, before any route runs)
      assertThat(answer).as(target).startsWith("HTTP/1.1 400");
      assertThat(answer).doesNotContain("Exception").doesNotContain("internal error");
    }

    // A stream resumed past the session's last event would skip everything up to it silently
    HttpResponse<String> past =
        http.send(streamRequest(session, "500"), HttpResponse.BodyHandlers.ofString());
    assertThat(past.statusCode()).isEqualTo(400);
    assertThat(past.body()).contains("Last-Event-ID").contains("past the session's last event");

    // A thread id on any sent event is refused, not dropped
    HttpResponse<String> threaded =
        call(
            "POST",
            "/v1/sessions/" + session + "/events",
            "{\"events\":[{\"type\":\"user.tool_confirmation\",\"tool_use_id\":\"sevt_x\","
                + "\"result\":\"allow\",\"session_thread_id\":\"sthr_x\"}]}",
            TestCredentials.ADMIN_KEY);
    assertThat(threaded.statusCode()).isEqualTo(400);
    assertThat(threaded.body()).contains("session_thread_id");

    // A confirmation's result is allow or deny, as the API spells them: ALLOW is not taken
    HttpResponse<String> shouted =
        call(
            "POST",
            "/v1/sessions/" + session + "/events",
            "{\"events\":[{\"type\":\"user.tool_confirmation\","
                + "\"tool_use_id\":\"sevt_aaaaaaaaaaaaaaaaaaaaaaaaaa\",\"result\":\"ALLOW\"}]}",
            TestCredentials.ADMIN_KEY);
    assertRefusedNaming(shouted, "events[0].result:");

    // Two answers to one call in one request are the client's mistake (400 naming the second),
    // not a call someone else answered first (409): nothing is appended
    HttpResponse<String> twice =
        call(
            "POST",
            "/v1/sessions/" + session + "/events",
            "{\"events\":["
                + "{\"type\":\"user.custom_tool_result\",\"custom_tool_use_id\":\"sevt_aaaaaaaaaaaaaaaaaaaaaaaaaa\","
                + "\"content\":[{\"type\":\"text\",\"text\":\"a\"}]},"
                + "{\"type\":\"user.custom_tool_result\",\"custom_tool_use_id\":\"sevt_aaaaaaaaaaaaaaaaaaaaaaaaaa\","
                + "\"content\":[{\"type\":\"text\",\"text\":\"b\"}]}]}",
            TestCredentials.ADMIN_KEY);
    assertRefusedNaming(twice, "events[1].custom_tool_use_id");

    // An answer to a call the session does not have is named by its place, as the client sent it
    HttpResponse<String> unanswerable =
        call(
            "POST",
            "/v1/sessions/" + session + "/events",
            "{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\","
                + "\"text\":\"hi\"}]},"
                + "{\"type\":\"user.custom_tool_result\",\"custom_tool_use_id\":\"sevt_aaaaaaaaaaaaaaaaaaaaaaaaaa\","
                + "\"content\":[{\"type\":\"text\",\"text\":\"a\"}]}]}",
            TestCredentials.ADMIN_KEY);
    assertRefusedNaming(unanswerable, "events[1].custom_tool_use_id");

    // An event over the size limit fails the same way every time: too large (as the API says of
    // a body too large), not a rate limit, and the SDKs must not retry it
    HttpResponse<String> big =
        call(
            "POST",
            "/v1/sessions/" + session + "/events",
            "{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\","
                + "\"text\":\""
                + "x".repeat(300_000)
                + "\"}]}]}",
            TestCredentials.ADMIN_KEY);
    assertThat(big.statusCode()).isEqualTo(413);
    assertThat(big.body()).contains("request_too_large").contains("events[0]");
    assertThat(big.headers().firstValue("x-should-retry")).hasValue("false");
  }

  @Test
  void anImageByUrlIsTakenInTheShapeTheApiGivesIt() throws Exception {
    String session = session();
    // When a user message carries an image by URL, with no media type (the API's shape has none)
    HttpResponse<String> sent =
        call(
            "POST",
            "/v1/sessions/" + session + "/events",
            "{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":\"image\","
                + "\"source\":{\"type\":\"url\",\"url\":\"https://images.example.com/a.png\"}}]}]}",
            TestCredentials.ADMIN_KEY);

    // Then it is logged, and read back in that shape
    assertThat(sent.statusCode()).as(sent.body()).isEqualTo(200);
    HttpResponse<String> events =
        call("GET", "/v1/sessions/" + session + "/events", "", TestCredentials.ADMIN_KEY);
    assertThat(events.statusCode()).as(events.body()).isEqualTo(200);
    com.fasterxml.jackson.databind.JsonNode source =
        JSON.readTree(events.body()).path("data").get(0).path("content").get(0).path("source");
    assertThat(source.path("type").asText()).isEqualTo("url");
    assertThat(source.path("url").asText()).isEqualTo("https://images.example.com/a.png");

    // And an inline image still needs its media type
    HttpResponse<String> inline =
        call(
            "POST",
            "/v1/sessions/" + session + "/events",
            "{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":\"image\","
                + "\"source\":{\"type\":\"base64\",\"media_type\":\"\",\"data\":\"iVBORw0KGgo=\"}}]}]}",
            TestCredentials.ADMIN_KEY);
    assertThat(inline.statusCode()).isEqualTo(400);
    assertThat(inline.body()).contains("media_type");
  }

  /** A GET sent over a socket as given, so that the target may be what URI refuses. */
  private static String rawGet(String target) throws Exception {
    try (java.net.Socket socket = new java.net.Socket("localhost", 18081)) {
      socket.setSoTimeout(10_000);
      socket
          .getOutputStream()
          .write(
              ("GET "
                      + target
                      + " HTTP/1.1\r\nHost: localhost\r\nx-api-key: "
                      + TestCredentials.ADMIN_KEY
                      + "\r\nConnection: close\r\n\r\n")
                  .getBytes(StandardCharsets.US_ASCII));
      return new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  @Test
  void rolesAndCredentialsAreTheGrpcOnes() throws Exception {
    String viewer =
        keys.createApiKey(
                CreateApiKeyRequest.newBuilder()
                    .setName("rest viewer")
                    .setRole(Role.ROLE_VIEWER)
                    .setTenantId("default")
                    .build())
            .getKey();
    HttpResponse<String> read = call("GET", "/v1/agents", "", viewer);
    HttpResponse<String> write =
        call("POST", "/v1/agents", "{\"name\":\"n\",\"model\":\"m\"}", viewer);
    HttpResponse<String> none = call("GET", "/v1/agents", "", null);
    HttpRequest bearer =
        HttpRequest.newBuilder(URI.create(BASE + "/v1/agents"))
            .header("authorization", "Bearer " + TestCredentials.ADMIN_KEY)
            .build();

    assertThat(read.statusCode()).isEqualTo(200);
    assertThat(write.statusCode()).isEqualTo(403);
    assertThat(write.body()).contains("permission_error").contains("member");
    assertThat(none.statusCode()).isEqualTo(401);
    assertThat(none.body()).contains("authentication_error");
    assertThat(http.send(bearer, HttpResponse.BodyHandlers.ofString()).statusCode()).isEqualTo(200);
  }

  @Test
  void aResourceAddedWithATokenIsCheckedBeforeTheTokenIsStored() throws Exception {
    String session = session();
    // When a repository that is no https URL is added with a token
    HttpResponse<String> added =
        call(
            "POST",
            "/v1/sessions/" + session + "/resources",
            "{\"type\":\"github_repository\",\"url\":\"ftp://github.com/acme/app.git\","
                + "\"authorization_token\":\"ghp_never_stored\"}",
            TestCredentials.ADMIN_KEY);

    // Then the error names the resource's url, not a field of a credential the client never sent
    assertThat(added.statusCode()).as(added.body()).isEqualTo(400);
    assertThat(added.body()).contains("resource.url").doesNotContain("basic.hosts");
  }

  @Test
  void aRepositoryTokensFaultsNameTheResourcesFieldsAsTheClientSentThem() throws Exception {
    String agent = agent();
    // When a session is asked for with a repository whose token is empty, or whose credential id
    // is no credential's
    HttpResponse<String> emptyToken =
        call(
            "POST",
            "/v1/sessions",
            "{\"agent\":\""
                + agent
                + "\",\"resources\":[{\"type\":\"github_repository\","
                + "\"url\":\"https://github.com/acme/app.git\",\"authorization_token\":\"\"}]}",
            TestCredentials.ADMIN_KEY);
    HttpResponse<String> badCredential =
        call(
            "POST",
            "/v1/sessions",
            "{\"agent\":\""
                + agent
                + "\",\"resources\":[{\"type\":\"github_repository\","
                + "\"url\":\"https://github.com/acme/app.git\",\"credential_id\":\"cred_x\"}]}",
            TestCredentials.ADMIN_KEY);

    // Then each error names the field of the resource the client sent, not a vault credential's
    // or the gRPC resource's
    assertRefusedNaming(emptyToken, "resources[0].authorization_token");
    assertRefusedNaming(badCredential, "resources[0].credential_id");
  }

  @Test
  void aFieldsOwnFaultIsToldBeforeAnUnknownAgentOrVault() throws Exception {
    // When an agent or a vault that does not exist is given a field no request may hold
    HttpResponse<String> agentUpdate =
        call(
            "POST",
            "/v1/agents/" + dev.corral.common.IdKind.AGENT.next(),
            "{\"name\":\"\"}",
            TestCredentials.ADMIN_KEY);
    HttpResponse<String> credential =
        call(
            "POST",
            "/v1/vaults/" + dev.corral.common.IdKind.VAULT.next() + "/credentials",
            "{\"display_name\":\"\",\"auth\":{\"type\":\"static_bearer\","
                + "\"mcp_server_url\":\"https://mcp.example.com/mcp\",\"token\":\"t\"}}",
            TestCredentials.ADMIN_KEY);
    StringBuilder seventeen = new StringBuilder("{\"metadata\":{");
    for (int i = 0; i < 17; i++) {
      seventeen.append(i == 0 ? "" : ",").append("\"k").append(i).append("\":\"v\"");
    }
    HttpResponse<String> vaultUpdate =
        call(
            "POST",
            "/v1/vaults/" + dev.corral.common.IdKind.VAULT.next(),
            seventeen.append("}}").toString(),
            TestCredentials.ADMIN_KEY);
    // or a credential is asked for under a vault id that is none
    HttpResponse<String> underBadVault =
        call(
            "GET",
            "/v1/vaults/not-a-vault/credentials/" + dev.corral.common.IdKind.CREDENTIAL.next(),
            "",
            TestCredentials.ADMIN_KEY);

    // Then the field's fault is told (as gRPC tells it), not that the target is unknown
    assertRefusedNaming(agentUpdate, "name");
    assertRefusedNaming(credential, "display_name");
    assertRefusedNaming(vaultUpdate, "metadata");
    assertRefusedNaming(underBadVault, "vault_id");
  }

  @Test
  void anAgentRunsAsCorralsServiceAccountAndAnAwsRoleIsRefused() throws Exception {
    HttpResponse<String> aws =
        call(
            "POST",
            "/v1/agents",
            "{\"name\":\"a\",\"model\":\"claude-test\",\"execution_identity\":"
                + "{\"type\":\"aws_role\",\"role_arn\":\"arn:aws:iam::1:role/r\"}}",
            TestCredentials.ADMIN_KEY);
    HttpResponse<String> service =
        call(
            "POST",
            "/v1/agents",
            "{\"name\":\"a\",\"model\":\"claude-test\",\"execution_identity\":"
                + "{\"type\":\"service_account\"}}",
            TestCredentials.ADMIN_KEY);

    assertRefusedNaming(aws, "execution_identity.type");
    assertThat(service.statusCode()).as(service.body()).isEqualTo(200);
    assertThat(JSON.readTree(service.body()).path("execution_identity").path("type").asText())
        .isEqualTo("service_account");
  }

  @Test
  void aCredentialWithoutADisplayNameIsNamedAfterItsServerCutToFit() throws Exception {
    // Given a vault, and an MCP server URL longer than a credential's name may be
    String vaultId = vault();
    String url = "https://mcp.example.com/" + "p".repeat(300);

    // When a bearer credential is made for it without a display name
    HttpResponse<String> created =
        call(
            "POST",
            "/v1/vaults/" + vaultId + "/credentials",
            "{\"auth\":{\"type\":\"static_bearer\",\"mcp_server_url\":\""
                + url
                + "\",\"token\":\"t\"}}",
            TestCredentials.ADMIN_KEY);
    // and another with a token longer than a header value may hold
    HttpResponse<String> tooLong =
        call(
            "POST",
            "/v1/vaults/" + vaultId + "/credentials",
            "{\"auth\":{\"type\":\"static_bearer\",\"mcp_server_url\":"
                + "\"https://other.example.com/mcp\",\"token\":\""
                + "t".repeat(8186)
                + "\"}}",
            TestCredentials.ADMIN_KEY);

    // Then the first is made, named after the URL's first characters
    assertThat(created.statusCode()).as(created.body()).isEqualTo(200);
    String name = JSON.readTree(created.body()).path("display_name").asText();
    assertThat(name).startsWith("https://mcp.example.com/ppp").endsWith("\u2026");
    assertThat(name.codePointCount(0, name.length())).isEqualTo(256);
    // and the second is refused naming the token and the token's own length
    assertThat(tooLong.statusCode()).as(tooLong.body()).isEqualTo(400);
    assertThat(message(tooLong)).startsWith("auth.token").contains("has 8186 characters");
  }

  @Test
  void aSessionsResourcesArePagedAsEveryOtherList() throws Exception {
    // Given a session with three repositories
    StringBuilder resources = new StringBuilder();
    for (String name : List.of("a", "b", "c")) {
      resources
          .append(resources.length() == 0 ? "" : ",")
          .append("{\"type\":\"github_repository\",\"url\":\"https://github.com/acme/")
          .append(name)
          .append(".git\",\"mount_path\":\"/workspace/")
          .append(name)
          .append("\"}");
    }
    HttpResponse<String> created =
        call(
            "POST",
            "/v1/sessions",
            "{\"agent\":\"" + agent() + "\",\"resources\":[" + resources + "]}",
            TestCredentials.ADMIN_KEY);
    assertThat(created.statusCode()).as(created.body()).isEqualTo(200);
    String path =
        "/v1/sessions/" + JSON.readTree(created.body()).path("id").asText() + "/resources";

    // When they are listed two at a time
    JsonNode first =
        JSON.readTree(call("GET", path + "?limit=2", "", TestCredentials.ADMIN_KEY).body());
    JsonNode second =
        JSON.readTree(
            call(
                    "GET",
                    path + "?limit=2&page=" + first.path("next_page").asText(),
                    "",
                    TestCredentials.ADMIN_KEY)
                .body());

    // Then the pages hold them in order, the last says there is no more, and a limit or cursor
    // that is none is refused
    assertThat(first.path("data").findValuesAsText("mount_path"))
        .containsExactly("/workspace/a", "/workspace/b");
    assertThat(second.path("data").findValuesAsText("mount_path")).containsExactly("/workspace/c");
    assertThat(second.path("next_page").isNull()).isTrue();
    assertThat(call("GET", path + "?limit=0", "", TestCredentials.ADMIN_KEY).statusCode())
        .isEqualTo(400);
    assertThat(call("GET", path + "?page=nonsense", "", TestCredentials.ADMIN_KEY).statusCode())
        .isEqualTo(400);
  }

  @Test
  void aRepositoryTokenGivenTheApisWayGoesIntoTheVaultAndNowhereElse() throws Exception {
    // Given a session created with a GitHub repository and its token
    String token = "ghp_" + UUID.randomUUID().toString().replace("-", "");
    String agent = agent();
    HttpResponse<String> created =
        call(
            "POST",
            "/v1/sessions",
            "{\"agent\":\""
                + agent
                + "\",\"resources\":[{\"type\":\"github_repository\","
                + "\"url\":\"https://github.com/acme/app.git\",\"mount_path\":\"/workspace/app\","
                + "\"checkout\":{\"type\":\"branch\",\"name\":\"main\"},"
                + "\"authorization_token\":\""
                + token
                + "\"}]}",
            TestCredentials.ADMIN_KEY);
    JsonNode session = JSON.readTree(created.body());
    JsonNode resource = session.path("resources").get(0);
    String sessionId = session.path("id").asText();

    // Then the session names a vault credential bound to the host, and shows no token
    assertThat(created.statusCode()).as(created.body()).isEqualTo(200);
    assertThat(resource.path("type").asText()).isEqualTo("github_repository");
    assertThat(resource.path("mount_path").asText()).isEqualTo("/workspace/app");
    assertThat(resource.path("checkout").path("name").asText()).isEqualTo("main");
    var credential =
        vault
            .getCredential(
                GetCredentialRequest.newBuilder()
                    .setCredentialId(resource.path("credential_id").asText())
                    .build())
            .getCredential();
    assertThat(credential.getBasic().getHostsList()).containsExactly("github.com");
    assertThat(credential.getBasic().getUsername()).isEqualTo("x-access-token");
    String listed =
        call("GET", "/v1/sessions/" + sessionId + "/resources", "", TestCredentials.ADMIN_KEY)
            .body();
    String fetched = call("GET", "/v1/sessions/" + sessionId, "", TestCredentials.ADMIN_KEY).body();
    assertThat(created.body() + listed + fetched + credential).doesNotContain(token);
    assertThat(JSON.readTree(listed).path("data")).hasSize(1);

    // And a resource is removed like one
    HttpResponse<String> removed =
        call(
            "DELETE",
            "/v1/sessions/" + sessionId + "/resources/" + resource.path("id").asText(),
            "",
            TestCredentials.ADMIN_KEY);
    assertThat(JSON.readTree(removed.body()).path("type").asText())
        .isEqualTo("session_resource_deleted");
    assertThat(
            JSON.readTree(
                    call(
                            "GET",
                            "/v1/sessions/" + sessionId + "/resources",
                            "",
                            TestCredentials.ADMIN_KEY)
                        .body())
                .path("data"))
        .isEmpty();
    // and the credential made from its token goes with it
    assertThat(credentialExists(credential.getId())).isFalse();

    // And when a session holding a token's credential and a vault's own is deleted, the token's
    // credential goes with it and the vault's stays
    String kept =
        vault
            .createCredential(
                dev.corral.proto.v1.CreateCredentialRequest.newBuilder()
                    .setName("kept")
                    .setBasic(
                        dev.corral.proto.v1.BasicAuth.newBuilder()
                            .addHosts("github.com")
                            .setUsername("x-access-token")
                            .setPassword("ghp_kept"))
                    .build())
            .getCredential()
            .getId();
    JsonNode second =
        JSON.readTree(
            call(
                    "POST",
                    "/v1/sessions",
                    "{\"agent\":\""
                        + agent
                        + "\",\"resources\":[{\"type\":\"github_repository\","
                        + "\"url\":\"https://github.com/acme/app.git\",\"authorization_token\":\""
                        + token
                        + "\"},{\"type\":\"github_repository\",\"url\":\"https://github.com/acme/lib.git\","
                        + "\"mount_path\":\"/workspace/lib\",\"credential_id\":\""
                        + kept
                        + "\"}]}",
                    TestCredentials.ADMIN_KEY)
                .body());
    String made = second.path("resources").get(0).path("credential_id").asText();
    assertThat(credentialExists(made)).isTrue();
    // (a session that names that token's credential by id, deleted, takes nothing with it)
    JsonNode borrower =
        JSON.readTree(
            call(
                    "POST",
                    "/v1/sessions",
                    "{\"agent\":\""
                        + agent
                        + "\",\"resources\":[{\"type\":\"github_repository\","
                        + "\"url\":\"https://github.com/acme/app.git\",\"credential_id\":\""
                        + made
                        + "\"}]}",
                    TestCredentials.ADMIN_KEY)
                .body());
    assertThat(
            call(
                    "DELETE",
                    "/v1/sessions/" + borrower.path("id").asText(),
                    "",
                    TestCredentials.ADMIN_KEY)
                .statusCode())
        .isEqualTo(200);
    assertThat(credentialExists(made)).isTrue();
    assertThat(
            call(
                    "DELETE",
                    "/v1/sessions/" + second.path("id").asText(),
                    "",
                    TestCredentials.ADMIN_KEY)
                .statusCode())
        .isEqualTo(200);
    assertThat(credentialExists(made)).isFalse();
    assertThat(credentialExists(kept)).isTrue();
  }

  private boolean credentialExists(String id) {
    try {
      vault.getCredential(GetCredentialRequest.newBuilder().setCredentialId(id).build());
      return true;
    } catch (io.grpc.StatusRuntimeException e) {
      assertThat(e.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.NOT_FOUND);
      return false;
    }
  }

  @Test
  void metadataPatchesOfAVaultAtOnceLoseNoKey() throws Exception {
    // Given a vault
    String vault =
        JSON.readTree(
                call(
                        "POST",
                        "/v1/vaults",
                        "{\"display_name\":\"patched\",\"metadata\":{\"keep\":\"me\"}}",
                        TestCredentials.ADMIN_KEY)
                    .body())
            .path("id")
            .asText();

    // When fifteen clients each add a key of their own at once (16 pairs is the most metadata
    // holds)
    int clients = 15;
    var threads = java.util.concurrent.Executors.newFixedThreadPool(clients);
    var start = new java.util.concurrent.CountDownLatch(1);
    List<java.util.concurrent.Future<HttpResponse<String>>> statuses = new java.util.ArrayList<>();
    for (int i = 0; i < clients; i++) {
      String body = "{\"metadata\":{\"k" + i + "\":\"v" + i + "\"}}";
      statuses.add(
          threads.submit(
              () -> {
                start.await();
                return call("POST", "/v1/vaults/" + vault, body, TestCredentials.ADMIN_KEY);
              }));
    }
    start.countDown();
    for (var status : statuses) {
      HttpResponse<String> response = status.get(30, TimeUnit.SECONDS);
      assertThat(response.statusCode()).as(response.body()).isEqualTo(200);
    }
    threads.shutdown();

    // Then the vault holds every key, the first one too
    JsonNode metadata =
        JSON.readTree(call("GET", "/v1/vaults/" + vault, "", TestCredentials.ADMIN_KEY).body())
            .path("metadata");
    assertThat(metadata.path("keep").asText()).isEqualTo("me");
    for (int i = 0; i < clients; i++) {
      assertThat(metadata.path("k" + i).asText()).as(metadata.toString()).isEqualTo("v" + i);
    }
  }

  @Test
  void aSixtyFourBitFieldTakesASixtyFourBitNumber() throws Exception {
    // Given a budget past 2^31 tokens (a long session of a million-token context) and a memory
    // limit past 2^31 bytes
    long tokens = 5_000_000_000L;
    HttpResponse<String> created =
        call(
            "POST",
            "/v1/sessions",
            "{\"agent\":\"" + agent() + "\",\"corral_budget\":{\"max_tokens\":" + tokens + "}}",
            TestCredentials.ADMIN_KEY);
    HttpResponse<String> environment =
        call(
            "POST",
            "/v1/environments",
            "{\"name\":\"big\",\"config\":{\"type\":\"cloud\",\"resources\":{\"memory_bytes\":"
                + (3L << 30)
                + "}}}",
            TestCredentials.ADMIN_KEY);

    // Then each is taken as sent, and one past 64 bits is refused naming the field
    assertThat(created.statusCode()).as(created.body()).isEqualTo(200);
    assertThat(JSON.readTree(created.body()).path("corral_budget").path("max_tokens").asLong())
        .isEqualTo(tokens);
    assertThat(environment.statusCode()).as(environment.body()).isEqualTo(200);
    HttpResponse<String> past =
        call(
            "POST",
            "/v1/sessions",
            "{\"agent\":\"" + agent() + "\",\"corral_budget\":{\"max_tokens\":1e30}}",
            TestCredentials.ADMIN_KEY);
    assertThat(past.statusCode()).isEqualTo(400);
    assertThat(JSON.readTree(past.body()).path("error").path("message").asText())
        .contains("corral_budget.max_tokens");
  }

  // --- helpers
  // ------------------------------------------------------------------------------------

  private String vault() throws Exception {
    return JSON.readTree(
            call("POST", "/v1/vaults", "{\"display_name\":\"v\"}", TestCredentials.ADMIN_KEY)
                .body())
        .path("id")
        .asText();
  }

  /** A bearer credential for an MCP server, in {@code vault}. */
  private String bearerCredential(String vault) throws Exception {
    return JSON.readTree(
            call(
                    "POST",
                    "/v1/vaults/" + vault + "/credentials",
                    "{\"auth\":{\"type\":\"static_bearer\","
                        + "\"mcp_server_url\":\"https://mcp.example.com/mcp\",\"token\":\"t\"}}",
                    TestCredentials.ADMIN_KEY)
                .body())
        .path("id")
        .asText();
  }

  private String agent() throws Exception {
    return JSON.readTree(
            call(
                    "POST",
                    "/v1/agents",
                    "{\"name\":\"edges\",\"model\":\"claude-test\"}",
                    TestCredentials.ADMIN_KEY)
                .body())
        .path("id")
        .asText();
  }

  private String session() throws Exception {
    HttpResponse<String> created =
        call("POST", "/v1/sessions", "{\"agent\":\"" + agent() + "\"}", TestCredentials.ADMIN_KEY);
    assertThat(created.statusCode()).as(created.body()).isEqualTo(200);
    return JSON.readTree(created.body()).path("id").asText();
  }

  private void send(String session, String... texts) throws Exception {
    for (String text : texts) {
      HttpResponse<String> sent =
          call(
              "POST",
              "/v1/sessions/" + session + "/events",
              "{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\""
                  + text
                  + "\"}]}]}",
              TestCredentials.ADMIN_KEY);
      assertThat(sent.statusCode()).as(sent.body()).isEqualTo(200);
    }
  }

  private HttpResponse<String> call(String method, String path, String body, String key)
      throws Exception {
    HttpRequest.Builder request =
        HttpRequest.newBuilder(URI.create(BASE + path))
            .timeout(Duration.ofSeconds(20))
            .method(
                method,
                body.isEmpty()
                    ? HttpRequest.BodyPublishers.noBody()
                    : HttpRequest.BodyPublishers.ofString(body));
    if (key != null) {
      request.header("x-api-key", key);
    }
    if (!body.isEmpty()) {
      request.header("content-type", "application/json");
    }
    return http.send(request.build(), HttpResponse.BodyHandlers.ofString());
  }

  private static HttpRequest streamRequest(String session, String lastEventId) {
    return streamRequest(session, lastEventId, TestCredentials.ADMIN_KEY);
  }

  private static HttpRequest streamRequest(String session, String lastEventId, String key) {
    HttpRequest.Builder request =
        HttpRequest.newBuilder(URI.create(BASE + "/v1/sessions/" + session + "/events/stream"))
            .header("x-api-key", key)
            .header("accept", "text/event-stream");
    if (lastEventId != null) {
      request.header("Last-Event-ID", lastEventId);
    }
    return request.build();
  }

  /** One Server-Sent Event: its name, id, the text of its first content block, and its data. */
  record Sse(String event, String id, String text, JsonNode data) {}

  /** Reads a stream's events on a thread of its own. */
  static final class SseReader implements AutoCloseable {
    private final InputStream body;
    private final List<Sse> events = new ArrayList<>();
    private final CompletableFuture<Void> reader;
    private int taken;

    private SseReader(InputStream body) {
      this.body = body;
      this.reader = CompletableFuture.runAsync(this::read);
    }

    static SseReader open(HttpClient http, String session, String lastEventId) throws Exception {
      return open(http, session, lastEventId, TestCredentials.ADMIN_KEY);
    }

    static SseReader open(HttpClient http, String session, String lastEventId, String key)
        throws Exception {
      HttpResponse<InputStream> response =
          http.sendAsync(
                  streamRequest(session, lastEventId, key),
                  HttpResponse.BodyHandlers.ofInputStream())
              .get(10, TimeUnit.SECONDS);
      assertThat(response.statusCode()).isEqualTo(200);
      return new SseReader(response.body());
    }

    private void read() {
      try (BufferedReader lines =
          new BufferedReader(new InputStreamReader(body, StandardCharsets.UTF_8))) {
        String event = null;
        String id = null;
        String data = null;
        for (String line = lines.readLine(); line != null; line = lines.readLine()) {
          if (line.isEmpty()) {
            if (event != null && data != null) {
              JsonNode json = JSON.readTree(data);
              synchronized (events) {
                events.add(
                    new Sse(
                        event, id, json.path("content").path(0).path("text").asText(null), json));
                events.notifyAll();
              }
            }
            event = null;
            id = null;
            data = null;
          } else if (line.startsWith("event: ")) {
            event = line.substring(7);
          } else if (line.startsWith("id: ")) {
            id = line.substring(4);
          } else if (line.startsWith("data: ")) {
            data = line.substring(6);
          }
        }
      } catch (java.io.IOException closed) {
        // the test closed the stream
      }
    }

    List<Sse> take(int count) throws InterruptedException {
      long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
      synchronized (events) {
        while (events.size() < taken + count && System.nanoTime() < deadline) {
          events.wait(100);
        }
        List<Sse> slice =
            new ArrayList<>(events.subList(taken, Math.min(events.size(), taken + count)));
        taken += slice.size();
        return slice;
      }
    }

    /** Whether the server ended the stream (or the test closed it). */
    boolean ended() {
      return reader.isDone();
    }

    @Override
    public void close() throws Exception {
      body.close();
      reader.cancel(true);
    }
  }
}
