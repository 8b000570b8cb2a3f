package dev.corral.rest;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.testing.TestCredentials;
import io.quarkus.test.junit.QuarkusTest;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.assertj.core.api.SoftAssertions;
import org.junit.jupiter.api.Test;

/**
 * Hostile input to every endpoint of the facade, as a prompt-injected client might send it: the
 * API's field names with values of every wrong type and size, broken query parameters and ids.
 * Every answer is a success or a client error in the API's shape: never a 5xx, never a Java name.
 */
@QuarkusTest
class RestFuzzTest {

  private static final String BASE = "http://localhost:18081";
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
  private static final Set<Integer> CLIENT_ANSWERS = Set.of(200, 400, 404, 409, 413, 429);

  private static final List<String> FIELDS =
      List.of(
          "name",
          "model",
          "system",
          "description",
          "tools",
          "mcp_servers",
          "metadata",
          "version",
          "config",
          "networking",
          "type",
          "allowed_hosts",
          "allowed_ports",
          "agent",
          "environment_id",
          "title",
          "resources",
          "vault_ids",
          "initial_events",
          "events",
          "content",
          "text",
          "tool_use_id",
          "result",
          "custom_tool_use_id",
          "is_error",
          "display_name",
          "auth",
          "token",
          "mcp_server_url",
          "url",
          "mount_path",
          "checkout",
          "authorization_token",
          "corral_budget",
          "skills",
          "setup_commands",
          "resources",
          "input_schema",
          "configs",
          "default_config",
          "permission_policy",
          "refresh",
          "expires_at");

  private final HttpClient http = HttpClient.newHttpClient();
  private final Random random = new Random(20261204);
  private final java.util.Map<Integer, Integer> answers = new java.util.TreeMap<>();

  @Test
  void everyEndpointAnswersHostileInputWithAClientError() throws Exception {
    // Given real ids to aim at
    String agent = create("/v1/agents", "{\"name\":\"fuzz\",\"model\":\"claude-test\"}");
    String environment = create("/v1/environments", "{\"name\":\"fuzz\"}");
    String session = create("/v1/sessions", "{\"agent\":\"" + agent + "\"}");
    String vault = create("/v1/vaults", "{\"display_name\":\"fuzz\"}");
    List<String> posts =
        List.of(
            "/v1/agents",
            "/v1/agents/" + agent,
            "/v1/environments",
            "/v1/environments/" + environment,
            "/v1/sessions",
            "/v1/sessions/" + session + "/events",
            "/v1/sessions/" + session + "/resources",
            "/v1/vaults",
            "/v1/vaults/" + vault,
            "/v1/vaults/" + vault + "/credentials");
    List<String> gets =
        List.of(
            "/v1/agents",
            "/v1/agents/" + agent,
            "/v1/agents/" + agent + "/versions",
            "/v1/environments",
            "/v1/sessions",
            "/v1/sessions/" + session,
            "/v1/sessions/" + session + "/events",
            "/v1/sessions/" + session + "/resources",
            "/v1/vaults",
            "/v1/vaults/" + vault + "/credentials");
    SoftAssertions softly = new SoftAssertions();

    // When each gets hostile bodies, queries and ids
    for (String path : posts) {
      for (int i = 0; i < 25; i++) {
        String body = i % 5 == 4 ? garbage() : hostileObject(0).toString();
        check(softly, "POST " + path + " " + abbreviated(body), send("POST", path, body));
      }
    }
    for (String path : gets) {
      for (String query : hostileQueries()) {
        check(softly, "GET " + path + query, send("GET", path + query, ""));
      }
    }
    for (String id :
        List.of(
            "x",
            "agent_",
            "agent_" + "z".repeat(26),
            "%00",
            "..",
            "sesn_0000000000000000000000000%2F",
            "é")) {
      String encoded = URLEncoder.encode(id, StandardCharsets.UTF_8);
      for (String path :
          List.of("/v1/agents/", "/v1/sessions/", "/v1/environments/", "/v1/vaults/")) {
        check(softly, "GET " + path + id, send("GET", path + encoded, ""));
      }
      check(softly, "stream " + id, send("GET", "/v1/sessions/" + encoded + "/events/stream", ""));
    }

    // Then every answer was a client error or a success, in the API's shape
    softly.assertAll();
    assertThat(answers.getOrDefault(400, 0)).as("answers %s", answers).isGreaterThan(150);
    assertThat(send("GET", "/v1/agents/" + agent, "").statusCode()).isEqualTo(200);
  }

  private void check(SoftAssertions softly, String what, HttpResponse<String> response) {
    answers.merge(response.statusCode(), 1, Integer::sum);
    softly.assertThat(response.statusCode()).as(what).isIn(CLIENT_ANSWERS);
    softly
        .assertThat(response.body())
        .as(what)
        .doesNotContainPattern("Exception|java\\.|dev\\.corral|\\bat [a-z]+\\.[a-z]");
    if (response.statusCode() != 200) {
      try {
        JsonNode body = JSON.readTree(response.body());
        softly.assertThat(body.path("type").asText()).as(what).isEqualTo("error");
        softly.assertThat(body.path("error").path("message").asText()).as(what).isNotBlank();
      } catch (Exception notJson) {
        softly.fail(what + " answered a body that is not JSON: " + abbreviated(response.body()));
      }
    }
  }

  private ObjectNode hostileObject(int depth) {
    ObjectNode node = NODES.objectNode();
    int fields = 1 + random.nextInt(6);
    for (int i = 0; i < fields; i++) {
      node.set(FIELDS.get(random.nextInt(FIELDS.size())), hostileValue(depth));
    }
    return node;
  }

  private JsonNode hostileValue(int depth) {
    switch (random.nextInt(depth > 3 ? 9 : 12)) {
      case 0 -> {
        return NODES.nullNode();
      }
      case 1 -> {
        return NODES.numberNode(random.nextBoolean() ? -1 : Long.MAX_VALUE);
      }
      case 2 -> {
        return NODES.numberNode(1e308);
      }
      case 3 -> {
        return NODES.textNode("");
      }
      case 4 -> {
        return NODES.textNode("x".repeat(random.nextInt(100_000)));
      }
      case 5 -> {
        return NODES.textNode("\u0000\ud800" + "<script>" + "'; DROP TABLE sessions; --");
      }
      case 6 -> {
        return NODES.booleanNode(random.nextBoolean());
      }
      case 7 -> {
        return NODES.textNode(
            List.of("user.message", "agent.message", "limited", "static_bearer", "custom", "allow")
                .get(random.nextInt(6)));
      }
      case 8 -> {
        return NODES.textNode("agent_00000000000000000000000000");
      }
      case 9 -> {
        ArrayNode array = NODES.arrayNode();
        int items = random.nextInt(4);
        for (int i = 0; i < items; i++) {
          array.add(random.nextBoolean() ? hostileObject(depth + 1) : hostileValue(depth + 1));
        }
        return array;
      }
      default -> {
        return hostileObject(depth + 1);
      }
    }
  }

  private String garbage() {
    return List.of(
            "",
            "null",
            "[]",
            "\"text\"",
            "{\"a\":",
            "{\"name\":\"\\ud800\"}",
            "{" + "\"a\":{".repeat(100) + "}".repeat(101),
            "{\"events\":[" + "{\"type\":\"user.message\",\"content\":[]},".repeat(60) + "{}]}",
            "\u0000\u0001binary")
        .get(random.nextInt(9));
  }

  private static List<String> hostileQueries() {
    return List.of(
        "?limit=-1",
        "?limit=abc",
        "?limit=100000",
        "?page=garbage",
        "?page=a99999999999999999999",
        "?page=d1&order=asc",
        "?order=sideways",
        "?include_archived=maybe",
        "?types[]=user.nonsense",
        "?statuses[]=sleeping",
        "?version=abc",
        "?agent_id=nope",
        "?limit=1&page=" + "x".repeat(3000));
  }

  private String create(String path, String body) throws Exception {
    HttpResponse<String> response = send("POST", path, body);
    assertThat(response.statusCode()).as(response.body()).isEqualTo(200);
    return JSON.readTree(response.body()).path("id").asText();
  }

  private HttpResponse<String> send(String method, String path, String body) throws Exception {
    HttpRequest request =
        HttpRequest.newBuilder(URI.create(BASE + path))
            .timeout(Duration.ofSeconds(20))
            .header("x-api-key", TestCredentials.ADMIN_KEY)
            .header("content-type", "application/json")
            .method(
                method,
                body.isEmpty()
                    ? HttpRequest.BodyPublishers.noBody()
                    : HttpRequest.BodyPublishers.ofString(body))
            .build();
    if (path.endsWith("/events/stream")) {
      HttpResponse<java.io.InputStream> streamed =
          http.send(request, HttpResponse.BodyHandlers.ofInputStream());
      if (streamed.statusCode() == 200) {
        streamed.body().close();
        return new Answer(200, "");
      }
      return new Answer(
          streamed.statusCode(),
          new String(streamed.body().readAllBytes(), StandardCharsets.UTF_8));
    }
    return http.send(request, HttpResponse.BodyHandlers.ofString());
  }

  private static String abbreviated(String text) {
    return text.length() > 200 ? text.substring(0, 200) + "…" : text;
  }

  /** A stream's answer, read as far as a test needs. */
  private record Answer(int statusCode, String body) implements HttpResponse<String> {
    @Override
    public HttpRequest request() {
      return null;
    }

    @Override
    public java.util.Optional<HttpResponse<String>> previousResponse() {
      return java.util.Optional.empty();
    }

    @Override
    public java.net.http.HttpHeaders headers() {
      return java.net.http.HttpHeaders.of(java.util.Map.of(), (a, b) -> true);
    }

    @Override
    public java.util.Optional<javax.net.ssl.SSLSession> sslSession() {
      return java.util.Optional.empty();
    }

    @Override
    public URI uri() {
      return null;
    }

    @Override
    public HttpClient.Version version() {
      return HttpClient.Version.HTTP_1_1;
    }
  }
}
