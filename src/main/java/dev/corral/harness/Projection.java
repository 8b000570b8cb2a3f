package dev.corral.harness;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.ImageBlock;
import dev.corral.proto.v1.TextBlock;
import dev.corral.proto.v1.Tool;
import dev.corral.tool.BuiltInTool;
import dev.corral.tool.OfferedTools;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Builds a Messages API request from the folded session: the agent's system prompt and tools (the
 * stable prefix, with prompt-cache breakpoints), and the conversation projected from events.
 *
 * <p>Consecutive model-side events form one assistant message; everything between two assistant
 * messages forms one user message, tool results first (the API requires them to lead), then user
 * text and images in the order they arrived.
 */
final class Projection {

  private static final ObjectMapper JSON = new ObjectMapper();

  private Projection() {}

  static ObjectNode request(SessionState state, int maxTokens, int thinkingBudget) {
    return request(state, List.of(), maxTokens, thinkingBudget);
  }

  /** The request of a turn that offers the model {@code mcp} too (filtered by the agent). */
  static ObjectNode request(
      SessionState state, List<OfferedTools.Tool> mcp, int maxTokens, int thinkingBudget) {
    SessionState.Compaction compaction = state.compaction();
    return request(
        state.session().getAgent(),
        mcp,
        compaction == null ? null : summaryMessage(compaction.upToSeq(), compaction.summary()),
        state.context(),
        maxTokens,
        thinkingBudget);
  }

  /**
   * The request of a turn: the agent's system prompt and tools, then {@code summary} (a user
   * message standing for compacted history, or null), then the messages of {@code events}.
   */
  static ObjectNode request(
      Agent agent, ObjectNode summary, List<Event> events, int maxTokens, int thinkingBudget) {
    return request(agent, List.of(), summary, events, maxTokens, thinkingBudget);
  }

  static ObjectNode request(
      Agent agent,
      List<OfferedTools.Tool> mcp,
      ObjectNode summary,
      List<Event> events,
      int maxTokens,
      int thinkingBudget) {
    ObjectNode request = prefix(agent, mcp, maxTokens, thinkingBudget);
    ArrayNode messages = JSON.createArrayNode();
    if (summary != null) {
      // The summary is the stable prefix until the next compaction: cached once, read each turn.
      cached((ObjectNode) summary.get("content").get(0));
      messages.add(summary);
    }
    append(messages, messages(events));
    keepLatestImages(messages);
    cacheLast(messages);
    request.set("messages", messages);
    defineCalledTools(request);
    thinkingOnlyIfTheLoopBeganWithIt(request);
    return request;
  }

  /**
   * With thinking on, the API wants a tool loop under way (the last user turn answers calls) to
   * have begun with thinking: the loop is one assistant turn, every assistant message since the
   * last user turn that answers no call, and the model thinks at its start only. A loop begun
   * without thinking (thinking was turned on meanwhile, by a restart with another budget) goes on
   * without it until it ends; the next turn thinks.
   */
  private static void thinkingOnlyIfTheLoopBeganWithIt(ObjectNode request) {
    JsonNode messages = request.path("messages");
    int size = messages.size();
    if (!request.has("thinking") || size < 2 || !answersCalls(messages.get(size - 1))) {
      return;
    }
    int loopStart = size - 2;
    while (loopStart >= 2 && answersCalls(messages.get(loopStart - 1))) {
      loopStart -= 2;
    }
    String first = messages.get(loopStart).path("content").path(0).path("type").asText();
    if (!first.equals("thinking") && !first.equals("redacted_thinking")) {
      request.remove("thinking");
    }
  }

  /** A user message that answers calls: its tool results come first. */
  private static boolean answersCalls(JsonNode message) {
    return message.path("role").asText().equals("user")
        && message.path("content").path(0).path("type").asText().equals("tool_result");
  }

  /**
   * The request that asks the model to summarise the context before {@code cut} (an index into
   * {@link SessionState#context()}, where an assistant turn starts): the same system prompt and
   * tools as a turn's (so the cached prefix is reused), no tool use, and the instruction at the end
   * of the last user turn (a user turn of its own if the part ends on a reply).
   */
  static ObjectNode compactionRequest(
      SessionState state, int cut, int maxTokens, int thinkingBudget) {
    return compactionRequest(state, List.of(), cut, maxTokens, thinkingBudget);
  }

  static ObjectNode compactionRequest(
      SessionState state, List<OfferedTools.Tool> mcp, int cut, int maxTokens, int thinkingBudget) {
    SessionState.Compaction earlier = state.compaction();
    ObjectNode request = prefix(state.session().getAgent(), mcp, maxTokens, thinkingBudget);
    ArrayNode messages = JSON.createArrayNode();
    if (earlier != null) {
      ObjectNode summary = summaryMessage(earlier.upToSeq(), earlier.summary());
      cached((ObjectNode) summary.get("content").get(0));
      messages.add(summary);
    }
    append(messages, messages(state.context().subList(0, cut)));
    keepLatestImages(messages);
    JsonNode last = messages.get(messages.size() - 1);
    if (!"user".equals(last.path("role").asText())) {
      // the instruction in an assistant turn would be a prefill, which thinking refuses
      ObjectNode turn = messages.addObject().put("role", "user");
      turn.putArray("content");
      last = turn;
    }
    ((ArrayNode) last.get("content"))
        .addObject()
        .put("type", "text")
        .put("text", SUMMARY_INSTRUCTION);
    cacheLast(messages);
    request.set("messages", messages);
    // after the placeholders of called tools: they are tools the summary must not call either
    defineCalledTools(request);
    if (request.has("tools")) {
      request.putObject("tool_choice").put("type", "none");
    }
    thinkingOnlyIfTheLoopBeganWithIt(request);
    return request;
  }

  /**
   * Appends {@code more} to {@code messages}, its first message joining the last one of {@code
   * messages} when both are the user's (the summary, then history that starts with a user turn):
   * roles must alternate.
   */
  private static void append(ArrayNode messages, ArrayNode more) {
    int from = 0;
    if (!messages.isEmpty()
        && !more.isEmpty()
        && "user".equals(messages.get(messages.size() - 1).path("role").asText())
        && "user".equals(more.get(0).path("role").asText())) {
      ArrayNode last = (ArrayNode) messages.get(messages.size() - 1).get("content");
      last.addAll((ArrayNode) more.get(0).get("content"));
      from = 1;
    }
    for (int i = from; i < more.size(); i++) {
      messages.add(more.get(i));
    }
  }

  /**
   * Images one request sends at most: the latest. The API takes 100, and past 20 only images of at
   * most 2000 pixels a side, so a session that gathered more would fail every later turn.
   */
  static final int MAX_IMAGES = dev.corral.session.EventRules.MAX_IMAGES;

  /** Turns every image of {@code messages} but the latest {@link #MAX_IMAGES} into a note. */
  private static void keepLatestImages(ArrayNode messages) {
    List<ObjectNode> images = new ArrayList<>();
    messages.forEach(message -> collectImages(message.path("content"), images));
    for (int i = 0; i < images.size() - MAX_IMAGES; i++) {
      images
          .get(i)
          .removeAll()
          .put("type", "text")
          .put(
              "text",
              "[corral: an image was here; only the latest "
                  + MAX_IMAGES
                  + " images of a session are sent. It stays in the session's log.]");
    }
  }

  private static void collectImages(JsonNode blocks, List<ObjectNode> images) {
    for (JsonNode block : blocks) {
      if ("image".equals(block.path("type").asText())) {
        images.add((ObjectNode) block);
      } else if ("tool_result".equals(block.path("type").asText())) {
        collectImages(block.path("content"), images);
      }
    }
  }

  static final String SUMMARY_INSTRUCTION =
      "[corral] The conversation is about to outgrow your context window. Summarize everything"
          + " above for yourself: you will continue this session from your summary and the most"
          + " recent turns only (the original events stay in the session's log). Keep the user's"
          + " goals, constraints and preferences, decisions made and why, facts learned, the"
          + " files, commands and results that matter, the state of the work and what remains to"
          + " do. Answer with the summary only.";

  /** Ends a summary that the model's output limit cut off. */
  static final String SUMMARY_CUT_OFF =
      "[corral] This summary was cut off at the model's output limit (max_tokens): what it would"
          + " have said next is missing. Every original event is still in the session's log.";

  /** Stands for history whose summary the model's safety classifiers stopped. */
  static final String SUMMARY_REFUSED =
      "[corral] The earlier part of this session could not be summarised: the reply to the"
          + " summary request was refused (stop_reason refusal), so what it held is left out of"
          + " your context. Every original event is still in the session's log.";

  /** Stands for history the model answered no summary of, twice. */
  static final String SUMMARY_BLANK =
      "[corral] The earlier part of this session could not be summarised: the summary request was"
          + " answered with no text, again when asked once more, so what it held is left out of"
          + " your context. Every original event is still in the session's log.";

  /** The user message that stands for history compacted up to {@code upToSeq}. */
  static ObjectNode summaryMessage(long upToSeq, String summary) {
    ObjectNode message = JSON.createObjectNode().put("role", "user");
    message
        .putArray("content")
        .addObject()
        .put("type", "text")
        .put(
            "text",
            "[corral] Summary of this session's events up to seq "
                + upToSeq
                + ", compacted to fit the context window:\n\n"
                + summary);
    return message;
  }

  /** The bytes of an event's blocks as a request carries them, for size estimates. */
  static long bytesOf(Event event) {
    List<ObjectNode> blocks =
        switch (event.getPayloadCase()) {
          case USER_MESSAGE -> {
            List<ObjectNode> content = new ArrayList<>();
            event.getUserMessage().getContentList().forEach(block -> content.add(content(block)));
            yield content;
          }
          case AGENT_TOOL_RESULT ->
              List.of(toolResult("", event.getAgentToolResult().getContentList(), false));
          case USER_CUSTOM_TOOL_RESULT ->
              List.of(toolResult("", event.getUserCustomToolResult().getContentList(), false));
          case AGENT_MCP_TOOL_RESULT ->
              List.of(toolResult("", event.getAgentMcpToolResult().getContentList(), false));
          default -> assistantBlocks(event, new HashMap<>());
        };
    long bytes = 0;
    for (ObjectNode block : blocks) {
      bytes +=
          block.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8).length
              + ContextBudget.imageAdjustment(block);
    }
    return bytes;
  }

  private static ObjectNode prefix(
      Agent agent, List<OfferedTools.Tool> mcp, int maxTokens, int thinkingBudget) {
    ObjectNode request = JSON.createObjectNode();
    request.put("model", agent.getModel());
    request.put("max_tokens", maxTokens);
    if (!agent.getSystem().isEmpty()) {
      ArrayNode system = request.putArray("system");
      cached(system.addObject().put("type", "text").put("text", agent.getSystem()));
    }
    ArrayNode tools = tools(agent, mcp);
    if (!tools.isEmpty()) {
      cached((ObjectNode) tools.get(tools.size() - 1));
      request.set("tools", tools);
    }
    if (thinkingBudget > 0) {
      request.putObject("thinking").put("type", "enabled").put("budget_tokens", thinkingBudget);
    }
    return request;
  }

  /**
   * Defines every tool a tool_use of the history names that the request does not define (a tool the
   * model called though it was not offered, or whose MCP server did not list it now): the API
   * refuses a request whose history calls a tool it does not define. Such a definition says the
   * tool is unavailable.
   */
  private static void defineCalledTools(ObjectNode request) {
    Set<String> defined = new HashSet<>();
    request.path("tools").forEach(tool -> defined.add(tool.path("name").asText()));
    java.util.Set<String> missing = new java.util.TreeSet<>();
    for (JsonNode message : request.path("messages")) {
      for (JsonNode block : message.path("content")) {
        if ("tool_use".equals(block.path("type").asText())
            && !defined.contains(block.path("name").asText())) {
          missing.add(block.path("name").asText());
        }
      }
    }
    if (missing.isEmpty()) {
      return;
    }
    ArrayNode tools =
        request.has("tools") ? (ArrayNode) request.get("tools") : request.putArray("tools");
    for (String name : missing) {
      ObjectNode tool =
          JSON.createObjectNode()
              .put("name", name)
              .put("description", "[unavailable: this tool is not offered now]");
      tool.putObject("input_schema").put("type", "object");
      tools.insert(0, tool); // before the cached prefix's breakpoint, which stays last
    }
  }

  private static void cacheLast(ArrayNode messages) {
    if (!messages.isEmpty()) {
      ArrayNode lastContent = (ArrayNode) messages.get(messages.size() - 1).get("content");
      cached((ObjectNode) lastContent.get(lastContent.size() - 1));
    }
  }

  /** The tools the agent enables, as the API describes them. */
  static ArrayNode tools(Agent agent) {
    return tools(agent, List.of());
  }

  /**
   * The agent's built-in and custom tools, then the MCP tools of {@code mcp} its MCP toolsets
   * enable, under {@code mcp__<server>__<tool>}.
   */
  static ArrayNode tools(Agent agent, List<OfferedTools.Tool> mcp) {
    ArrayNode tools = ownTools(agent);
    // enabled() offers each model name once; no agent's own tool is named mcp__ (AgentRules)
    for (OfferedTools.Tool tool : McpNames.enabled(agent, mcp)) {
      JsonNode schema = parse(tool.inputSchemaJson());
      if (schema instanceof ObjectNode object && !object.has("type")) {
        object.put("type", "object");
      }
      tools
          .addObject()
          .put("name", McpNames.modelName(tool.server(), tool.name()))
          .put("description", tool.description())
          .set("input_schema", schema);
    }
    return tools;
  }

  private static ArrayNode ownTools(Agent agent) {
    ArrayNode tools = JSON.createArrayNode();
    // one tool per name, the first: an agent stored before its names were checked against the
    // toolset's may hold two, and the Messages API refuses a request that does
    Set<String> named = new HashSet<>();
    for (Tool tool : agent.getToolsList()) {
      if (tool.hasToolset()) {
        for (BuiltInTool builtIn : BuiltInTool.values()) {
          if (ToolPolicy.enabled(tool.getToolset(), builtIn.toolName())
              && named.add(builtIn.toolName())) {
            tools
                .addObject()
                .put("name", builtIn.toolName())
                .put("description", builtIn.description())
                .set("input_schema", builtIn.inputSchema());
          }
        }
      } else if (tool.hasCustom() && named.add(tool.getCustom().getName())) {
        ObjectNode custom =
            tools
                .addObject()
                .put("name", tool.getCustom().getName())
                .put("description", tool.getCustom().getDescription());
        custom.set("input_schema", parse(tool.getCustom().getInputSchemaJson()));
      }
    }
    return tools;
  }

  static ArrayNode messages(List<Event> conversation) {
    ArrayNode messages = JSON.createArrayNode();
    List<ObjectNode> assistant = new ArrayList<>();
    List<ObjectNode> results = new ArrayList<>();
    List<ObjectNode> userContent = new ArrayList<>();
    Map<String, String> callIds = new HashMap<>();
    for (Event event : conversation) {
      switch (event.getPayloadCase()) {
        case AGENT_THINKING,
            AGENT_MESSAGE,
            AGENT_TOOL_USE,
            AGENT_CUSTOM_TOOL_USE,
            AGENT_MCP_TOOL_USE -> {
          List<ObjectNode> blocks = assistantBlocks(event, callIds);
          if (!blocks.isEmpty()) { // a reply of blank text alone is no turn
            flushUser(messages, results, userContent);
            if (assistant.isEmpty()) {
              followAssistant(messages, assistant);
            }
            assistant.addAll(blocks);
          }
        }
        case AGENT_MCP_TOOL_RESULT -> {
          flushAssistant(messages, assistant);
          var result = event.getAgentMcpToolResult();
          addResult(
              messages,
              callIds.get(result.getMcpToolUseId()),
              result.getContentList(),
              result.getIsError(),
              event,
              results,
              userContent);
        }
        case USER_MESSAGE -> {
          flushAssistant(messages, assistant);
          event.getUserMessage().getContentList().forEach(block -> userContent.add(content(block)));
        }
        case AGENT_TOOL_RESULT -> {
          flushAssistant(messages, assistant);
          var result = event.getAgentToolResult();
          addResult(
              messages,
              callIds.get(result.getToolUseId()),
              result.getContentList(),
              result.getIsError(),
              event,
              results,
              userContent);
        }
        case USER_CUSTOM_TOOL_RESULT -> {
          flushAssistant(messages, assistant);
          var result = event.getUserCustomToolResult();
          addResult(
              messages,
              callIds.get(result.getCustomToolUseId()),
              result.getContentList(),
              result.getIsError(),
              event,
              results,
              userContent);
        }
        default -> {}
      }
    }
    flushAssistant(messages, assistant);
    flushUser(messages, results, userContent);
    return messages;
  }

  /**
   * The result of call {@code callId} (null: no call of the history asked for it, and the API
   * refuses an orphan result) as a {@code tool_result} of the user turn after its call, or, when
   * the conversation went on after its call before it was recorded (a log an outside harness wrote
   * out of order), as text: the API takes a result only in the turn right after its call.
   */
  private static void addResult(
      ArrayNode messages,
      String callId,
      List<ContentBlock> content,
      boolean isError,
      Event event,
      List<ObjectNode> results,
      List<ObjectNode> userContent) {
    if (callId == null) {
      return;
    }
    List<ObjectNode> after = new ArrayList<>(); // an error result's images, after the results
    ObjectNode result = trimmed(toolResult(callId, content, isError, after), event);
    if (unanswered(messages, results).contains(callId)) {
      results.add(result);
      userContent.addAll(after);
      return;
    }
    userContent.add(
        JSON.createObjectNode()
            .put("type", "text")
            .put(
                "text",
                "[corral: the "
                    + (isError ? "error " : "")
                    + "result of tool call "
                    + callId
                    + ", recorded after the conversation went on, follows]"));
    result.path("content").forEach(block -> userContent.add((ObjectNode) block));
    userContent.addAll(after);
  }

  /** The calls of the last message, if the assistant's, that {@code results} does not answer. */
  private static List<String> unanswered(ArrayNode messages, List<ObjectNode> results) {
    JsonNode last = messages.isEmpty() ? null : messages.get(messages.size() - 1);
    if (last == null || !last.path("role").asText().equals("assistant")) {
      return List.of();
    }
    Set<String> answered = new HashSet<>();
    results.forEach(result -> answered.add(result.path("tool_use_id").asText()));
    List<String> open = new ArrayList<>();
    for (JsonNode block : last.path("content")) {
      String id = block.path("id").asText();
      if (block.path("type").asText().equals("tool_use") && !answered.contains(id)) {
        open.add(id);
      }
    }
    return open;
  }

  private static List<ObjectNode> assistantBlocks(Event event, Map<String, String> callIds) {
    ObjectNode block = JSON.createObjectNode();
    switch (event.getPayloadCase()) {
      case AGENT_THINKING -> {
        var thinking = event.getAgentThinking();
        if (!thinking.getRedactedData().isEmpty()) {
          block.put("type", "redacted_thinking").put("data", thinking.getRedactedData());
        } else if (thinking.getSignature().isEmpty()) {
          // cut off before its signature (a reply stopped at max_tokens): the API refuses it back
          return List.of();
        } else {
          block
              .put("type", "thinking")
              .put("thinking", thinking.getThinking())
              .put("signature", thinking.getSignature());
        }
        return List.of(block);
      }
      case AGENT_MESSAGE -> {
        List<ObjectNode> blocks = new ArrayList<>();
        // the API refuses a text block of whitespace alone (a reply may hold one: an empty text,
        // or a block type corral does not know)
        event.getAgentMessage().getContentList().stream()
            .filter(
                content ->
                    !content.hasText()
                        || !dev.corral.common.InputRules.blank(content.getText().getText()))
            .forEach(content -> blocks.add(content(content)));
        return blocks;
      }
      case AGENT_TOOL_USE -> {
        var use = event.getAgentToolUse();
        callIds.put(event.getId(), use.getCallId());
        block.put("type", "tool_use").put("id", use.getCallId()).put("name", use.getName());
        block.set("input", parse(use.getInputJson()));
        return List.of(block);
      }
      case AGENT_CUSTOM_TOOL_USE -> {
        var use = event.getAgentCustomToolUse();
        callIds.put(event.getId(), use.getCallId());
        block.put("type", "tool_use").put("id", use.getCallId()).put("name", use.getName());
        block.set("input", parse(use.getInputJson()));
        return List.of(block);
      }
      case AGENT_MCP_TOOL_USE -> {
        var use = event.getAgentMcpToolUse();
        callIds.put(event.getId(), use.getCallId());
        block
            .put("type", "tool_use")
            .put("id", use.getCallId())
            .put("name", McpNames.modelName(use.getMcpServerName(), use.getName()));
        block.set("input", parse(use.getInputJson()));
        return List.of(block);
      }
      default -> {
        return List.of();
      }
    }
  }

  /** A tool result's text beyond this many characters is sent trimmed (stored whole). */
  static final int MAX_RESULT_CHARS = 100_000;

  private static final int KEPT_HEAD_CHARS = 60_000;
  private static final int KEPT_TAIL_CHARS = 20_000;

  /**
   * The result with each text block over {@link #MAX_RESULT_CHARS} cut to its head and tail, and a
   * note saying what was left out and where the whole of it is.
   */
  private static ObjectNode trimmed(ObjectNode result, Event event) {
    for (JsonNode block : result.path("content")) {
      String text = block.path("text").asText(null);
      if (text != null && text.length() > MAX_RESULT_CHARS) {
        ((ObjectNode) block).put("text", cut(text, KEPT_HEAD_CHARS, KEPT_TAIL_CHARS, event));
      }
    }
    return result;
  }

  /**
   * {@code text}'s first {@code head} and last {@code tail} characters (never half of a surrogate
   * pair, which no JSON parser takes alone) around a note of what is left out and where it is.
   */
  static String cut(String text, int head, int tail, Event event) {
    int headEnd = dev.corral.common.Json.cut(text, head).length();
    int tailStart = text.length() - tail;
    if (Character.isLowSurrogate(text.charAt(tailStart))) {
      tailStart++;
    }
    return text.substring(0, headEnd)
        + "\n\n[corral: this result has "
        + text.length()
        + " characters; the "
        + (tailStart - headEnd)
        + " after the first "
        + headEnd
        + " are left out here. The whole result is event "
        + event.getId()
        + " (seq "
        + event.getSeq()
        + ") of this session's log. To see the rest of a command's output, run it"
        + " again writing to a file, then read the file in parts.]\n\n"
        + text.substring(tailStart);
  }

  /** The fewest characters {@link #fit} leaves of a tool result's text. */
  static final int MIN_KEPT_CHARS = 2_000;

  /**
   * Shrinks {@code request} (built from {@code events}) to about {@code maxTokens} by cutting the
   * text of its largest tool results, all to the same length, to their head and tail: for a turn
   * whose own tool results outgrow the window, where no compaction can help (the turn cannot be
   * split). No result is cut below {@link #MIN_KEPT_CHARS}, so a request of other large content may
   * stay over. The events stay whole in the log.
   *
   * @return whether any result was cut
   */
  static boolean fit(ObjectNode request, List<Event> events, long maxTokens) {
    long excess = (ContextBudget.estimate(request) - maxTokens) * ContextBudget.BYTES_PER_TOKEN;
    if (excess <= 0) {
      return false;
    }
    Map<String, Event> resultOfCall = resultsByCallId(events);
    List<ObjectNode> texts = new ArrayList<>();
    List<Event> sources = new ArrayList<>();
    for (JsonNode message : request.path("messages")) {
      for (JsonNode block : message.path("content")) {
        Event source = resultOfCall.get(block.path("tool_use_id").asText());
        if (!"tool_result".equals(block.path("type").asText()) || source == null) {
          continue;
        }
        for (JsonNode content : block.path("content")) {
          if (content.path("text").asText("").length() > MIN_KEPT_CHARS) {
            texts.add((ObjectNode) content);
            sources.add(source);
          }
        }
      }
    }
    int keep = keptLength(texts, excess);
    boolean cut = false;
    for (int i = 0; i < texts.size(); i++) {
      String text = texts.get(i).get("text").asText();
      if (text.length() > keep) {
        texts.get(i).put("text", cut(text, keep * 3 / 4, keep / 4, sources.get(i)));
        cut = true;
      }
    }
    return cut;
  }

  /** What a note of {@link #cut} adds to the text it shortens, at most. */
  private static final int NOTE_CHARS = 400;

  /**
   * The longest length that, with every text over it cut to it, takes {@code excess} characters
   * off; at least {@link #MIN_KEPT_CHARS}.
   */
  private static int keptLength(List<ObjectNode> texts, long excess) {
    int low = MIN_KEPT_CHARS;
    int high = 0;
    for (ObjectNode text : texts) {
      high = Math.max(high, text.get("text").asText().length());
    }
    while (low < high) {
      int middle = (int) (((long) low + high + 1) / 2);
      long saved = 0;
      for (ObjectNode text : texts) {
        int length = text.get("text").asText().length();
        saved += length > middle ? length - middle - NOTE_CHARS : 0;
      }
      if (saved >= excess) {
        low = middle;
      } else {
        high = middle - 1;
      }
    }
    return low;
  }

  /** The call id of a tool use event (built-in, custom or MCP); null for any other event. */
  private static String callIdOf(Event event) {
    return switch (event.getPayloadCase()) {
      case AGENT_TOOL_USE -> event.getAgentToolUse().getCallId();
      case AGENT_CUSTOM_TOOL_USE -> event.getAgentCustomToolUse().getCallId();
      case AGENT_MCP_TOOL_USE -> event.getAgentMcpToolUse().getCallId();
      default -> null;
    };
  }

  /** The result event of each call id of {@code events}. */
  private static Map<String, Event> resultsByCallId(List<Event> events) {
    Map<String, String> callIds = new HashMap<>();
    Map<String, Event> results = new HashMap<>();
    for (Event event : events) {
      String callId = callIdOf(event);
      if (callId != null) {
        callIds.put(event.getId(), callId);
        continue;
      }
      String useId = SessionState.answeredCall(event);
      if (useId != null && callIds.containsKey(useId)) {
        results.put(callIds.get(useId), event);
      }
    }
    return results;
  }

  private static ObjectNode toolResult(String callId, List<ContentBlock> content, boolean isError) {
    return toolResult(callId, content, isError, new ArrayList<>());
  }

  /**
   * A {@code tool_result} block. The API takes only text in an error result ("all content must be
   * type 'text' if 'is_error' is true"): an error result's images go to {@code after}, each after a
   * note naming its call, for the same user message after every result; the result says so.
   */
  private static ObjectNode toolResult(
      String callId, List<ContentBlock> content, boolean isError, List<ObjectNode> after) {
    ObjectNode result =
        JSON.createObjectNode().put("type", "tool_result").put("tool_use_id", callId);
    ArrayNode blocks = result.putArray("content");
    int moved = 0;
    for (ContentBlock block : content) {
      // the API refuses a text block of whitespace alone (a command may print only that)
      if (block.hasText() && dev.corral.common.InputRules.blank(block.getText().getText())) {
        continue;
      }
      if (isError && !block.hasText()) {
        moved++;
        String note = "[corral: image " + moved + " of the error result of tool call " + callId;
        blocks.addObject().put("type", "text").put("text", note + " follows the tool results]");
        after.add(JSON.createObjectNode().put("type", "text").put("text", note + "]"));
        after.add(content(block));
        continue;
      }
      blocks.add(content(block));
    }
    if (blocks.isEmpty()) {
      blocks
          .addObject()
          .put("type", "text")
          .put("text", isError ? "(error with no output)" : "(no output)");
    }
    if (isError) {
      result.put("is_error", true);
    }
    return result;
  }

  private static ObjectNode content(ContentBlock block) {
    ObjectNode node = JSON.createObjectNode();
    if (block.hasImage()) {
      ImageBlock image = block.getImage();
      node.put("type", "image");
      ObjectNode source = node.putObject("source");
      if (image.hasData()) {
        source
            .put("type", "base64")
            .put("media_type", image.getMediaType())
            .put("data", Base64.getEncoder().encodeToString(image.getData().toByteArray()));
      } else {
        source.put("type", "url").put("url", image.getUrl());
      }
      return node;
    }
    return node.put("type", "text").put("text", block.getText().getText());
  }

  private static void flushAssistant(ArrayNode messages, List<ObjectNode> blocks) {
    // The API refuses an assistant message that ends in a thinking block (a reply of thinking and
    // blank text, or stopped right after its thinking): what was thought and never said goes.
    while (!blocks.isEmpty()
        && blocks.get(blocks.size() - 1).path("type").asText().endsWith("thinking")) {
      blocks.remove(blocks.size() - 1);
    }
    if (blocks.isEmpty()) {
      return;
    }
    ObjectNode message = messages.addObject().put("role", "assistant");
    message.putArray("content").addAll(blocks);
    blocks.clear();
  }

  /**
   * Makes room for a reply that follows an assistant message with nothing of the user's between
   * them (a result between them whose call is not in the context, say, which is not sent): the
   * earlier message's open calls get their results, so that the roles alternate; one without calls
   * takes the reply into itself.
   */
  private static void followAssistant(ArrayNode messages, List<ObjectNode> assistant) {
    JsonNode last = messages.isEmpty() ? null : messages.get(messages.size() - 1);
    if (last == null || !last.path("role").asText().equals("assistant")) {
      return;
    }
    List<ObjectNode> results = new ArrayList<>();
    answerOpenCalls(messages, results);
    if (!results.isEmpty()) {
      flushUser(messages, results, new ArrayList<>());
      return;
    }
    messages.remove(messages.size() - 1);
    last.path("content").forEach(block -> assistant.add((ObjectNode) block));
  }

  private static void flushUser(
      ArrayNode messages, List<ObjectNode> results, List<ObjectNode> content) {
    if (results.isEmpty() && content.isEmpty()) {
      return;
    }
    answerOpenCalls(messages, results);
    JsonNode last = messages.isEmpty() ? null : messages.get(messages.size() - 1);
    if (results.isEmpty() && last != null && last.path("role").asText().equals("user")) {
      // the reply between them said nothing: one user turn, so that the roles alternate
      ((ArrayNode) last.path("content")).addAll(content);
      content.clear();
      return;
    }
    ObjectNode message = messages.addObject().put("role", "user");
    ArrayNode blocks = message.putArray("content");
    blocks.addAll(results);
    blocks.addAll(content);
    results.clear();
    content.clear();
  }

  /**
   * Adds to {@code results} an error result for each call of the last (assistant) message that they
   * do not answer.
   */
  private static void answerOpenCalls(ArrayNode messages, List<ObjectNode> results) {
    // a call the conversation went on from without its result (a log an outside harness wrote out
    // of order): the API takes no turn after a call but its results
    for (String callId : unanswered(messages, results)) {
      results.add(
          toolResult(
              callId,
              List.of(
                  ContentBlock.newBuilder()
                      .setText(
                          TextBlock.newBuilder()
                              .setText(
                                  "corral: no result of this call was recorded before the"
                                      + " conversation went on"))
                      .build()),
              true));
    }
  }

  private static void cached(ObjectNode block) {
    block.putObject("cache_control").put("type", "ephemeral");
  }

  /**
   * Reads a tool's input or schema keeping every number as written (a double would turn 1e999 into
   * Infinity, which is no JSON number).
   */
  private static JsonNode parse(String json) {
    try {
      return EXACT.readTree(json);
    } catch (java.io.IOException | NumberFormatException | ArithmeticException e) {
      return JSON.createObjectNode();
    }
  }

  private static final ObjectMapper EXACT =
      com.fasterxml.jackson.databind.json.JsonMapper.builder()
          .enable(com.fasterxml.jackson.databind.DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
          .disable(
              com.fasterxml.jackson.databind.cfg.JsonNodeFeature.STRIP_TRAILING_BIGDECIMAL_ZEROES)
          .build();
}
