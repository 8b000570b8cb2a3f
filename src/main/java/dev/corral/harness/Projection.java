package dev.corral.harness;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.proto.v1.Agent;
import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.ImageBlock;
import dev.corral.proto.v1.Tool;
import dev.corral.tool.BuiltInTool;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

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
    Agent agent = state.session().getAgent();
    ObjectNode request = JSON.createObjectNode();
    request.put("model", agent.getModel());
    request.put("max_tokens", maxTokens);
    if (!agent.getSystem().isEmpty()) {
      ArrayNode system = request.putArray("system");
      cached(system.addObject().put("type", "text").put("text", agent.getSystem()));
    }
    ArrayNode tools = tools(agent);
    if (!tools.isEmpty()) {
      cached((ObjectNode) tools.get(tools.size() - 1));
      request.set("tools", tools);
    }
    if (thinkingBudget > 0) {
      request.putObject("thinking").put("type", "enabled").put("budget_tokens", thinkingBudget);
    }
    ArrayNode messages = messages(state.conversation());
    if (!messages.isEmpty()) {
      ArrayNode lastContent = (ArrayNode) messages.get(messages.size() - 1).get("content");
      cached((ObjectNode) lastContent.get(lastContent.size() - 1));
    }
    request.set("messages", messages);
    return request;
  }

  /** The tools the agent enables, as the API describes them. */
  static ArrayNode tools(Agent agent) {
    ArrayNode tools = JSON.createArrayNode();
    for (Tool tool : agent.getToolsList()) {
      if (tool.hasToolset()) {
        for (BuiltInTool builtIn : BuiltInTool.values()) {
          if (ToolPolicy.enabled(tool.getToolset(), builtIn.toolName())) {
            tools
                .addObject()
                .put("name", builtIn.toolName())
                .put("description", builtIn.description())
                .set("input_schema", builtIn.inputSchema());
          }
        }
      } else if (tool.hasCustom()) {
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
        case AGENT_THINKING, AGENT_MESSAGE, AGENT_TOOL_USE, AGENT_CUSTOM_TOOL_USE -> {
          flushUser(messages, results, userContent);
          assistant.addAll(assistantBlocks(event, callIds));
        }
        case USER_MESSAGE -> {
          flushAssistant(messages, assistant);
          event.getUserMessage().getContentList().forEach(block -> userContent.add(content(block)));
        }
        case AGENT_TOOL_RESULT -> {
          flushAssistant(messages, assistant);
          var result = event.getAgentToolResult();
          results.add(
              toolResult(
                  callIds.get(result.getToolUseId()),
                  result.getContentList(),
                  result.getIsError()));
        }
        case USER_CUSTOM_TOOL_RESULT -> {
          flushAssistant(messages, assistant);
          var result = event.getUserCustomToolResult();
          results.add(
              toolResult(
                  callIds.get(result.getCustomToolUseId()),
                  result.getContentList(),
                  result.getIsError()));
        }
        default -> {}
      }
    }
    flushAssistant(messages, assistant);
    flushUser(messages, results, userContent);
    return messages;
  }

  private static List<ObjectNode> assistantBlocks(Event event, Map<String, String> callIds) {
    ObjectNode block = JSON.createObjectNode();
    switch (event.getPayloadCase()) {
      case AGENT_THINKING -> {
        var thinking = event.getAgentThinking();
        if (!thinking.getRedactedData().isEmpty()) {
          block.put("type", "redacted_thinking").put("data", thinking.getRedactedData());
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
        event.getAgentMessage().getContentList().forEach(content -> blocks.add(content(content)));
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
      default -> {
        return List.of();
      }
    }
  }

  private static ObjectNode toolResult(String callId, List<ContentBlock> content, boolean isError) {
    ObjectNode result =
        JSON.createObjectNode().put("type", "tool_result").put("tool_use_id", callId);
    ArrayNode blocks = result.putArray("content");
    content.forEach(block -> blocks.add(content(block)));
    if (content.isEmpty()) {
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
    if (blocks.isEmpty()) {
      return;
    }
    ObjectNode message = messages.addObject().put("role", "assistant");
    message.putArray("content").addAll(blocks);
    blocks.clear();
  }

  private static void flushUser(
      ArrayNode messages, List<ObjectNode> results, List<ObjectNode> content) {
    if (results.isEmpty() && content.isEmpty()) {
      return;
    }
    ObjectNode message = messages.addObject().put("role", "user");
    ArrayNode blocks = message.putArray("content");
    blocks.addAll(results);
    blocks.addAll(content);
    results.clear();
    content.clear();
  }

  private static void cached(ObjectNode block) {
    block.putObject("cache_control").put("type", "ephemeral");
  }

  private static JsonNode parse(String json) {
    try {
      return JSON.readTree(json);
    } catch (java.io.IOException e) {
      return JSON.createObjectNode();
    }
  }
}
