package dev.corral.harness;

import static dev.corral.testing.SessionLogs.log;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import dev.corral.proto.v1.AgentContextCompacted;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.CustomTool;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.proto.v1.TextBlock;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.UserCustomToolResult;
import dev.corral.testing.FakeAnthropic;
import dev.corral.testing.FakeAnthropic.Reply;
import dev.corral.testing.Fixtures;
import dev.corral.testing.HarnessTestProfile;
import dev.corral.testing.InjectFakeAnthropic;
import dev.corral.testing.SessionLogs;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A session driven through many turns past the context window of a small model (8,000 tokens): it
 * never fails, the harness compacts the older history into summaries recorded as events, every
 * request stays under the window, and the log keeps every event.
 */
@QuarkusTest
@TestProfile(HarnessTestProfile.class)
class LongSessionTest {

  private static final int TURNS = 40;

  @GrpcClient("corral")
  SessionServiceGrpc.SessionServiceBlockingStub sessions;

  @GrpcClient("corral")
  AgentServiceGrpc.AgentServiceBlockingStub agents;

  @InjectFakeAnthropic FakeAnthropic model;

  @jakarta.inject.Inject dev.corral.session.EventLog eventLog;

  @jakarta.inject.Inject Leases leases;

  @jakarta.inject.Inject io.vertx.mutiny.sqlclient.Pool pool;

  private final AtomicInteger summaries = new AtomicInteger();

  @BeforeEach
  void answer() {
    model.reset();
    model.fallback(
        request -> {
          if (request.toString().contains("Answer with the summary only.")) {
            return Reply.text(
                "Summary " + summaries.incrementAndGet() + ": the user asked about parts.");
          }
          return Reply.text("Noted. " + "The answer goes on. ".repeat(20));
        });
  }

  @Test
  void aSessionPastItsWindowCompactsAndNeverFails() {
    // Given an agent on a model with an 8,000-token window
    Session session =
        sessionOfSmallModel(CreateAgentRequest.newBuilder().setName("long").setSystem("Be brief."));

    // When 40 turns of about 1,500 bytes each go by (about 15,000 tokens in all)
    for (int turn = 1; turn <= TURNS; turn++) {
      sayAndAwaitAnswer(session.getId(), "part " + turn + ": " + "some detail. ".repeat(110), turn);
    }

    // Then no turn failed, and summaries stood in for the older history
    List<Event> events = log(sessions, session.getId());
    assertThat(events).noneMatch(e -> e.getType().equals("session.error"));
    List<AgentContextCompacted> compactions =
        events.stream()
            .filter(Event::hasAgentContextCompacted)
            .map(Event::getAgentContextCompacted)
            .toList();
    assertThat(compactions).hasSizeGreaterThanOrEqualTo(2).hasSize(summaries.get());
    long previousUpTo = 0;
    for (AgentContextCompacted compaction : compactions) {
      assertThat(compaction.getFromSeq()).isEqualTo(1);
      assertThat(compaction.getUpToSeq()).isGreaterThan(previousUpTo);
      assertThat(compaction.getPostCompactionTokens())
          .isLessThan(compaction.getPreCompactionTokens());
      assertThat(compaction.getSummary()).startsWith("Summary ");
      previousUpTo = compaction.getUpToSeq();
    }
    // every request followed the API's rules and stayed under the window
    assertThat(model.violations()).isEmpty();
    for (FakeAnthropic.Received request : model.requests()) {
      int bytes = request.body().toString().getBytes(StandardCharsets.UTF_8).length;
      assertThat(bytes / ContextBudget.BYTES_PER_TOKEN).isLessThan(HarnessTestProfile.SMALL_WINDOW);
    }
    // between two compactions every turn sends the same cached prefix: system, tools, summary
    java.util.Map<String, java.util.Set<String>> prefixes = new java.util.HashMap<>();
    for (FakeAnthropic.Received request : model.requests()) {
      JsonNode body = request.body();
      JsonNode first = body.path("messages").get(0);
      String text = first.path("content").get(0).path("text").asText();
      if (text.startsWith("[corral] Summary")
          && !body.toString().contains("Answer with the summary only.")) {
        assertThat(first.path("content").get(0).path("cache_control").path("type").asText())
            .isEqualTo("ephemeral");
        prefixes
            .computeIfAbsent(text, key -> new java.util.HashSet<>())
            .add(body.path("system").toString() + body.path("tools") + first);
      }
    }
    assertThat(prefixes).isNotEmpty();
    assertThat(prefixes.values()).allMatch(variants -> variants.size() == 1);
    // the last request sends the latest summary, not the first turns
    JsonNode last = model.requests().get(model.requests().size() - 1).body();
    assertThat(last.toString()).contains("Summary " + summaries.get()).doesNotContain("part 1: ");
    // and the log is whole: every message is there, in order
    assertThat(events.stream().filter(Event::hasUserMessage).map(Fixtures::text))
        .hasSize(TURNS)
        .allMatch(text -> text.startsWith("part "));
    assertThat(events).extracting(Event::getSeq).isSorted().doesNotHaveDuplicates();
  }

  @Test
  void aTurnWhoseResultsAloneOutgrowTheWindowGoesOnWithThemCutShorter() {
    // Given an agent on the 8,000-token model whose client tool the model calls four times at once
    FakeAnthropic.Stream calls = Reply.stream();
    for (int i = 0; i < 4; i++) {
      calls.toolUse("toolu_r" + i, "fetch_report", "{}");
    }
    model.enqueue(calls.stop("tool_use"));
    Session session =
        sessionOfSmallModel(
            CreateAgentRequest.newBuilder()
                .setName("wide")
                .addTools(
                    Tool.newBuilder()
                        .setCustom(
                            CustomTool.newBuilder()
                                .setName("fetch_report")
                                .setDescription("A report")
                                .setInputSchemaJson("{\"type\":\"object\"}"))));
    sessions.emitEvent(Fixtures.emit(session.getId(), "fetch the four reports"));
    await()
        .atMost(Duration.ofSeconds(20))
        .until(
            () ->
                log(sessions, session.getId()).stream()
                        .filter(e -> e.getType().equals("agent.custom_tool_use"))
                        .count()
                    == 4);

    // When the client answers each with 12,000 characters (some 12,000 tokens in all)
    for (Event call : log(sessions, session.getId())) {
      if (call.hasAgentCustomToolUse()) {
        String report = "BEGIN " + "report line. ".repeat(920) + " END";
        sessions.emitEvent(
            EmitEventRequest.newBuilder()
                .setSessionId(session.getId())
                .setEvent(
                    Event.newBuilder()
                        .setUserCustomToolResult(
                            UserCustomToolResult.newBuilder()
                                .setCustomToolUseId(call.getId())
                                .addContent(
                                    ContentBlock.newBuilder()
                                        .setText(TextBlock.newBuilder().setText(report)))))
                .build());
      }
    }

    // Then the turn ends without an error: the model got every result's head and tail, cut so
    // that the request fits the window
    await()
        .atMost(Duration.ofSeconds(20))
        .until(
            () ->
                log(sessions, session.getId()).stream()
                    .anyMatch(e -> e.getType().equals("agent.message")));
    assertThat(log(sessions, session.getId())).noneMatch(e -> e.getType().equals("session.error"));
    assertThat(model.violations()).isEmpty();
    JsonNode last = model.requests().get(model.requests().size() - 1).body();
    int bytes = last.toString().getBytes(StandardCharsets.UTF_8).length;
    assertThat(bytes / ContextBudget.BYTES_PER_TOKEN).isLessThan(HarnessTestProfile.SMALL_WINDOW);
    String sent = last.path("messages").toString();
    assertThat(sent.split("BEGIN report line", -1)).hasSize(5);
    assertThat(sent.split("report line.  END", -1)).hasSize(5);
    assertThat(sent).contains("are left out here");
  }

  @Test
  void aPromptTheApiCountsAsTooLongIsCompactedOnTheNextTry() {
    // Given a session of three turns on the 8,000-token model, well under its window by corral's
    // count
    Session session = sessionOfSmallModel(CreateAgentRequest.newBuilder().setName("dense"));
    for (int turn = 1; turn <= 4; turn++) {
      if (turn == 4) {
        // When the API counts the next request as larger than the window (a denser tokenizer)
        model.enqueue(
            Reply.status(
                400, "invalid_request_error", "prompt is too long: 9000 tokens > 8000 maximum"));
      }
      sayAndAwaitAnswer(
          session.getId(), "part " + turn + ": " + "a dense detail. ".repeat(120), turn);
    }

    // Then the next try compacted the older turns and the turn was answered
    List<Event> events = log(sessions, session.getId());
    assertThat(events.stream().filter(Event::hasAgentContextCompacted)).hasSize(1);
    assertThat(events.stream().filter(e -> e.getType().equals("session.error"))).hasSize(1);
    assertThat(SessionLogs.get(sessions, session.getId()).getStopReason().getType())
        .isEqualTo(dev.corral.proto.v1.StopReasonType.STOP_REASON_TYPE_END_TURN);
    assertThat(model.violations()).isEmpty();
  }

  @Test
  void aFirstMessageThatLeavesLessThanMaxTokensOfTheWindowIsAnsweredWithAShorterReply() {
    // Given a new session on the 8,000-token model: nothing older to compact, no result to cut
    Session session = sessionOfSmallModel(CreateAgentRequest.newBuilder().setName("full"));

    // When its first message takes about 6,300 of the window's tokens, so that the prompt and
    // max_tokens (2,048) together pass the window, and the prompt alone does not
    sayAndAwaitAnswer(session.getId(), "long: " + "a dense detail. ".repeat(1_575), 1);

    // Then it is answered (it was sent with the whole max_tokens, refused at every try, and the
    // message was dropped): the request asked for what the window had left
    JsonNode request = model.requests().get(model.requests().size() - 1).body();
    assertThat(request.path("max_tokens").asLong())
        .isLessThan(HarnessTestProfile.MAX_TOKENS)
        .isGreaterThanOrEqualTo(ContextBudget.MIN_REPLY_TOKENS);
    assertThat(request.path("messages").toString()).contains("long: a dense detail.");
    assertThat(log(sessions, session.getId())).noneMatch(Event::hasSessionError);
    assertThat(model.violations()).isEmpty();
  }

  @Test
  void aMessageLargerThanTheWindowAloneFailsItsOwnTurnOnly() {
    // Given a session on the 8,000-token model that answered one turn
    Session session = sessionOfSmallModel(CreateAgentRequest.newBuilder().setName("flooded"));
    sayAndAwaitAnswer(session.getId(), "first question", 1);

    // When a message alone outgrows the window (nothing older to compact makes room for it)
    sessions.emitEvent(Fixtures.emit(session.getId(), "huge: " + "a dense detail. ".repeat(3000)));
    SessionLogs.awaitIdle(
        sessions,
        session.getId(),
        dev.corral.proto.v1.StopReasonType.STOP_REASON_TYPE_RETRIES_EXHAUSTED);

    // Then its turn gives up saying the API refused the input, and the next message is answered
    // without it
    assertThat(log(sessions, session.getId()))
        .filteredOn(e -> e.hasSessionError() && e.getSessionError().getInputRefused())
        .hasSize(1);
    sayAndAwaitAnswer(session.getId(), "second question", 2);
    JsonNode last = model.requests().get(model.requests().size() - 1).body();
    // (the first turn may be in a summary by now: the harness compacted to make room first)
    assertThat(last.path("messages").toString())
        .contains("second question")
        .doesNotContain("huge:");
  }

  @Test
  void aSummaryCutOffAtTheOutputLimitSaysSo() {
    // Given a model whose summaries run into max_tokens
    model.fallback(
        request -> {
          if (request.toString().contains("Answer with the summary only.")) {
            summaries.incrementAndGet();
            return Reply.stream()
                .text("Summary: the user asked about parts 1 to")
                .stop("max_tokens");
          }
          return Reply.text("Noted.");
        });
    Session session = sessionOfSmallModel(CreateAgentRequest.newBuilder().setName("cut"));

    // When the session outgrows its window
    int turn = 0;
    while (summaries.get() == 0 && turn < TURNS) {
      turn++;
      sayAndAwaitAnswer(session.getId(), "part " + turn + ": " + "some detail. ".repeat(110), turn);
    }

    // Then the summary kept says that it was cut off, and the next turn sends it so
    List<AgentContextCompacted> compactions = compactions(session.getId());
    assertThat(compactions).hasSize(1);
    assertThat(compactions.get(0).getSummary())
        .startsWith("Summary: the user asked about parts 1 to")
        .endsWith(Projection.SUMMARY_CUT_OFF);
    sayAndAwaitAnswer(session.getId(), "one more", turn + 1);
    JsonNode last = model.requests().get(model.requests().size() - 1).body();
    assertThat(last.path("messages").get(0).toString()).contains("was cut off at the model's");
    assertThat(model.violations()).isEmpty();
  }

  @Test
  void aRefusedSummaryLeavesTheHistoryOutWithANoteAndTheSessionGoesOn() {
    // Given a model whose summaries the API's safety classifiers stop part-way (asked again with
    // the same history, they would stop it again, at every later turn)
    model.fallback(
        request -> {
          if (request.toString().contains("Answer with the summary only.")) {
            summaries.incrementAndGet();
            return Reply.stream().text("Summary: the user asked").stop("refusal");
          }
          return Reply.text("Noted.");
        });
    Session session =
        sessionOfSmallModel(CreateAgentRequest.newBuilder().setName("refused summary"));

    // When the session outgrows its window
    int turn = 0;
    while (summaries.get() == 0 && turn < TURNS) {
      turn++;
      sayAndAwaitAnswer(session.getId(), "part " + turn + ": " + "detail. ".repeat(180), turn);
    }

    // Then the history the summary would have stood for is left out with a note in its place,
    // not the partial summary, and the turn was answered
    assertThat(summaries.get()).isEqualTo(1);
    List<AgentContextCompacted> compactions = compactions(session.getId());
    assertThat(compactions).hasSize(1);
    assertThat(compactions.get(0).getSummary()).isEqualTo(Projection.SUMMARY_REFUSED);
    assertThat(SessionLogs.get(sessions, session.getId()).getStopReason().getType())
        .isEqualTo(dev.corral.proto.v1.StopReasonType.STOP_REASON_TYPE_END_TURN);
    // And the next turn sends the note, without asking for a summary again
    sayAndAwaitAnswer(session.getId(), "one more", turn + 1);
    String sent =
        model.requests().get(model.requests().size() - 1).body().path("messages").toString();
    assertThat(sent).contains("could not be summarised").doesNotContain("Summary: the user asked");
    assertThat(summaries.get()).isEqualTo(1);
    assertThat(model.violations()).isEmpty();
  }

  @Test
  void aSummaryCallThatFailedOtherwiseDoesNotUseUpTheSecondAskingOfABlankOne() {
    // Given a model whose first summary call is overloaded, whose second answers blank text and
    // whose third writes the summary
    model.fallback(
        request -> {
          if (request.toString().contains("Answer with the summary only.")) {
            return switch (summaries.incrementAndGet()) {
              case 1 -> Reply.status(529, "overloaded_error", "Overloaded");
              case 2 -> Reply.stream().text(" \n ").stop("end_turn");
              default -> Reply.text("Summary: the user sent parts of a long text.");
            };
          }
          return Reply.text("Noted.");
        });
    Session session = sessionOfSmallModel(CreateAgentRequest.newBuilder().setName("overloaded"));

    // When the session outgrows its window
    int turn = 0;
    while (summaries.get() < 3 && turn < TURNS) {
      turn++;
      sayAndAwaitAnswer(session.getId(), "part " + turn + ": " + "detail. ".repeat(180), turn);
    }

    // Then the blank answer was asked again (the overload had counted as the one more asking,
    // and the history was dropped with a note), and the history is the model's summary
    assertThat(summaries.get()).isEqualTo(3);
    List<AgentContextCompacted> compactions = compactions(session.getId());
    assertThat(compactions).hasSize(1);
    assertThat(compactions.get(0).getSummary()).contains("parts of a long text");
    assertThat(model.violations()).isEmpty();
  }

  @Test
  void aBlankSummaryIsAskedForOnceMoreThenItsHistoryIsLeftOutWithANote() {
    // Given a model that answers every summary request with blank text (history can be written
    // to make it do so), each answer a paid call
    model.fallback(
        request -> {
          if (request.toString().contains("Answer with the summary only.")) {
            summaries.incrementAndGet();
            return Reply.stream().text(" \n ").stop("end_turn");
          }
          return Reply.text("Noted.");
        });
    Session session = sessionOfSmallModel(CreateAgentRequest.newBuilder().setName("blank"));

    // When the session outgrows its window
    int turn = 0;
    while (summaries.get() == 0 && turn < TURNS) {
      turn++;
      sayAndAwaitAnswer(session.getId(), "part " + turn + ": " + "detail. ".repeat(180), turn);
    }

    // Then the summary was asked for twice, not at every retry, the first blank answer's tokens
    // count, and the history is left out with a note
    assertThat(summaries.get()).isEqualTo(2);
    List<Event> log = SessionLogs.log(sessions, session.getId());
    List<Event> failedEnds =
        log.stream()
            .filter(
                event ->
                    event.hasSpanModelRequestEnd() && event.getSpanModelRequestEnd().getIsError())
            .toList();
    assertThat(failedEnds).hasSize(1);
    assertThat(failedEnds.get(0).getSpanModelRequestEnd().getModelUsage().getInputTokens())
        .isPositive();
    List<AgentContextCompacted> compactions = compactions(session.getId());
    assertThat(compactions).hasSize(1);
    assertThat(compactions.get(0).getSummary()).isEqualTo(Projection.SUMMARY_BLANK);
    assertThat(SessionLogs.get(sessions, session.getId()).getStopReason().getType())
        .isEqualTo(dev.corral.proto.v1.StopReasonType.STOP_REASON_TYPE_END_TURN);
    // And the next turn goes on without asking for a summary again
    sayAndAwaitAnswer(session.getId(), "one more", turn + 1);
    assertThat(summaries.get()).isEqualTo(2);
    assertThat(model.violations()).isEmpty();
  }

  @Test
  void aHarnessKilledDuringACompactionResumesWithOneSummary() {
    // Given a long history, and a harness that started to compact it and died
    dev.corral.proto.v1.Agent agent =
        agents
            .createAgent(
                CreateAgentRequest.newBuilder().setName("long").setModel("claude-small").build())
            .getAgent();
    String sessionId =
        sessions
            .createSession(CreateSessionRequest.newBuilder().setAgentId(agent.getId()).build())
            .getSession()
            .getId();
    long epoch =
        leases
            .acquire(sessionId, "dead-replica", 60_000)
            .await()
            .atMost(Duration.ofSeconds(10))
            .orElseThrow()
            .getEpoch();
    List<dev.corral.session.NewEvent> history = new java.util.ArrayList<>();
    history.add(EventsFactory.running());
    for (int turn = 1; turn <= 12; turn++) {
      String span = dev.corral.common.IdKind.EVENT.next();
      history.add(
          dev.corral.session.NewEvent.of(
              Fixtures.userMessage("part " + turn + ": " + "some detail. ".repeat(200))));
      history.add(EventsFactory.spanStart(span, "claude-small"));
      dev.corral.model.ModelResponse.Text text =
          new dev.corral.model.ModelResponse.Text("Noted " + turn + ".");
      history.add(EventsFactory.block(dev.corral.common.IdKind.EVENT.next(), text, agent));
      history.add(
          EventsFactory.spanEnd(
              span,
              new dev.corral.model.ModelResponse(
                  "msg",
                  List.of(text),
                  "end_turn",
                  dev.corral.proto.v1.ModelUsage.getDefaultInstance())));
    }
    history.add(dev.corral.session.NewEvent.of(Fixtures.userMessage("and now, the last question")));
    history.add(
        EventsFactory.spanStart(
            dev.corral.common.IdKind.EVENT.next(), "claude-small", SessionState.COMPACTION));
    eventLog
        .append(new dev.corral.session.AppendRequest(sessionId, history, null, epoch))
        .await()
        .atMost(Duration.ofSeconds(10));

    // When it is replaced (kill -9: its lease just runs out)
    pool.preparedQuery(
            "UPDATE sessions SET lease_expires_at = clock_timestamp() WHERE id = $1 AND lease_epoch = $2")
        .execute(io.vertx.mutiny.sqlclient.Tuple.of(sessionId, epoch))
        .await()
        .atMost(Duration.ofSeconds(10));
    await()
        .atMost(Duration.ofSeconds(20))
        .until(
            () ->
                log(sessions, sessionId).stream().filter(Event::hasAgentMessage).count() == 13
                    && SessionLogs.get(sessions, sessionId).getStatus()
                        == SessionStatus.SESSION_STATUS_IDLE);

    // Then the orphan compaction span was closed (a failed call, to be retried), one summary was
    // made, and the question answered
    List<Event> events = log(sessions, sessionId);
    assertThat(events.stream().filter(Event::hasAgentContextCompacted)).hasSize(1);
    assertThat(summaries.get()).isEqualTo(1);
    assertThat(events.stream().filter(Event::hasSessionError))
        .singleElement()
        .satisfies(
            error -> {
              assertThat(error.getSessionError().getRetryStatus())
                  .isEqualTo(dev.corral.proto.v1.RetryStatus.RETRY_STATUS_RETRYING);
              assertThat(error.getSessionError().getMessage()).contains("harness restarted");
            });
    assertThat(model.violations()).isEmpty();
    JsonNode answering = model.requests().get(model.requests().size() - 1).body();
    assertThat(answering.toString()).contains("Summary 1").contains("and now, the last question");
  }

  /** A new session of a new agent ({@code agent}'s fields) on the 8,000-token model. */
  private Session sessionOfSmallModel(CreateAgentRequest.Builder agent) {
    String agentId = agents.createAgent(agent.setModel("claude-small").build()).getAgent().getId();
    return sessions
        .createSession(CreateSessionRequest.newBuilder().setAgentId(agentId).build())
        .getSession();
  }

  private List<AgentContextCompacted> compactions(String sessionId) {
    return log(sessions, sessionId).stream()
        .filter(Event::hasAgentContextCompacted)
        .map(Event::getAgentContextCompacted)
        .toList();
  }

  /** Sends {@code text} and waits until the session idles with {@code answered} replies. */
  private void sayAndAwaitAnswer(String sessionId, String text, int answered) {
    sessions.emitEvent(Fixtures.emit(sessionId, text));
    await()
        .atMost(Duration.ofSeconds(20))
        .until(
            () ->
                log(sessions, sessionId).stream()
                            .filter(e -> e.getType().equals("agent.message"))
                            .count()
                        == answered
                    && SessionLogs.get(sessions, sessionId).getStatus()
                        == SessionStatus.SESSION_STATUS_IDLE);
  }
}
