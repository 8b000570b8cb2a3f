package dev.corral.harness;

import static dev.corral.testing.SessionLogs.awaitIdle;
import static io.restassured.RestAssured.given;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.StopReasonType;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.InjectFakeAnthropic;
import dev.corral.testing.TestCredentials;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * After a turn with a retried model call and a tool call, /q/metrics shows corral's own figures,
 * with no ids in labels, and every metric the Grafana dashboard in k8s/grafana queries.
 */
@QuarkusTest
@TestProfile(HarnessTestProfile.class)
class MetricsTest {

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @InjectFakeAnthropic FakeAnthropic model;

  private static final Path DASHBOARD = Path.of("k8s/grafana/corral-dashboard.json");
  private static final Pattern METRIC = Pattern.compile("\\b(corral|sql_pool)_[a-z_]+");

  @Test
  void aTurnShowsInTheMetricsWithLowCardinalityLabels() throws Exception {
    // Given a turn that calls a tool
    model.reset();
    model.enqueue(
        Reply.status(529, "overloaded_error", "Overloaded"),
        Reply.toolUse("toolu_m", "bash", "{\"command\":\"echo measured\"}"),
        Reply.text("Done."));
    Session session = Fixtures.startWithTools(agents, sessions, "measure this");
    awaitIdle(sessions, session.getId(), StopReasonType.STOP_REASON_TYPE_END_TURN);

    // When the metrics are scraped (the session gauge refreshes every 15 s; counters at once)
    String[] scraped = new String[1];
    await()
        .atMost(Duration.ofSeconds(20))
        .until(
            () -> {
              scraped[0] =
                  given()
                      .header("authorization", "Bearer " + TestCredentials.ADMIN_KEY)
                      .get("/q/metrics")
                      .then()
                      .statusCode(200)
                      .extract()
                      .asString();
              return scraped[0].contains("corral_tool_calls_total{");
            });
    String metrics = scraped[0];

    // Then
    assertThat(metrics)
        .contains("corral_events_appended_total{type=\"user.message\"}")
        .contains("corral_events_appended_total{type=\"agent.tool_result\"}")
        .contains("corral_append_seconds_bucket")
        .contains("corral_sessions{status=\"idle\"}")
        .contains("corral_streams_open")
        .containsPattern(
            "corral_model_calls_total\\{model=\"claude-test\",outcome=\"ok\",purpose=\"turn\"\\} [1-9]")
        .containsPattern(
            "corral_model_tokens_total\\{kind=\"output\",model=\"claude-test\"\\} [1-9]")
        .contains("corral_model_call_seconds_bucket")
        .containsPattern("corral_tool_calls_total\\{outcome=\"ok\",tool=\"bash\"\\} [1-9]")
        .contains("corral_tool_call_seconds_bucket")
        .containsPattern(
            "corral_sandbox_provisions_total\\{driver=\"local\",outcome=\"ok\"\\} [1-9]")
        .contains("corral_sandbox_provision_seconds_bucket{driver=\"local\"")
        .containsPattern(
            "corral_sandbox_warm_claims_total\\{driver=\"local\",outcome=\"(hit|miss)\"\\} [1-9]")
        .contains("corral_sandboxes{driver=\"local\",state=\"ready\"}")
        .contains("corral_harness_runs")
        .contains("corral_sandbox_warm{driver=\"local\"}")
        .contains("corral_harness_starting")
        .containsPattern("corral_ttft_overhead_seconds_count [1-9]")
        .contains("sql_pool_queue_size")
        .contains("sql_pool_usage_seconds_count");

    // And every metric the Grafana dashboard queries is one the server exposes
    Set<String> used = new TreeSet<>();
    for (JsonNode panel : new ObjectMapper().readTree(DASHBOARD.toFile()).path("panels")) {
      for (JsonNode target : panel.path("targets")) {
        Matcher name = METRIC.matcher(target.path("expr").asText());
        while (name.find()) {
          used.add(name.group());
        }
      }
    }
    assertThat(used).hasSizeGreaterThan(15);
    for (String name : used) {
      assertThat(metrics).as(name).containsPattern("(?m)^" + name + "[{ ]");
    }
    assertThat(metrics)
        .containsPattern("corral_model_retries_total\\{model=\"claude-test\"\\} [1-9]");
    assertThat(metrics).doesNotContain("sesn_").doesNotContain("agent_").doesNotContain("sevt_");
  }
}
