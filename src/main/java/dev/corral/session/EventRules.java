package dev.corral.session;

import dev.corral.agent.AgentRules;
import dev.corral.common.IdKind;
import dev.corral.common.InputRules;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.Json;
import dev.corral.common.TooLargeException;
import dev.corral.proto.v1.ConfirmationResult;
import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.ImageBlock;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * What an emitted event must look like before it may enter a log. Checks that need the log itself
 * (the lease, the expected seq) happen in the append statement.
 */
public final class EventRules {

  static final int MAX_CONTENT_BLOCKS = 100;

  /**
   * The most images one event may carry: a request sends the latest 20 images of a session (the API
   * takes more only of 2,000 pixels a side at most), so an event with more would lose some before
   * the model ever saw them.
   */
  public static final int MAX_IMAGES = 20;

  static final int MAX_DENY_MESSAGE = 10_000;

  /** Event ids a requires_action idle may name. */
  static final int MAX_WAITING_IDS = 1_000;

  /** More tokens than any model request reads or writes (a million-token context and more). */
  static final long MAX_TOKENS_PER_REQUEST = 1_000_000_000L;

  private static final Pattern IDEMPOTENCY_KEY = Pattern.compile("[A-Za-z0-9._:-]{1,128}");
  private static final Set<String> IMAGE_TYPES =
      Set.of("image/jpeg", "image/png", "image/gif", "image/webp");

  private EventRules() {}

  /**
   * Checks an event a client sends in a request that carries no lease (a session's first events, a
   * list of events over REST): only types a client emits.
   */
  static EventType checkClient(String field, Event event) {
    EventType type =
        EventType.of(event)
            .orElseThrow(() -> new InvalidArgumentException(field, "has no payload"));
    if (type.origin() == EventType.Origin.HARNESS) {
      throw new InvalidArgumentException(
          field,
          "is "
              + type.wireName()
              + ", which only the harness holding the session's lease emits (with EmitEvent and"
              + " its lease_epoch)");
    }
    return check(field, event, null);
  }

  /**
   * Checks an event emitted through the API and returns its type.
   *
   * @param field the request field that holds the event, for error messages
   * @param leaseEpoch null when the emitter holds no lease
   */
  static EventType check(String field, Event event, Long leaseEpoch) {
    EventType type =
        EventType.of(event)
            .orElseThrow(() -> new InvalidArgumentException(field, "has no payload"));
    if (!event.getType().isEmpty() && !event.getType().equals(type.wireName())) {
      String problem =
          EventType.fromWireName(event.getType()).isPresent()
              ? "is " + event.getType() + " but the payload is " + type.wireName()
              : "is not a known event type";
      throw new InvalidArgumentException(field + ".type", problem);
    }
    requireNoEnvelope(field, event);
    if (type.origin() == EventType.Origin.HARNESS && leaseEpoch == null) {
      throw new InvalidArgumentException(
          "lease_epoch",
          "is required to emit "
              + type.wireName()
              + ": only the harness holding the session's lease may");
    }
    checkPayload(field, type, event);
    int size = NewEvent.onlyPayload(event).getSerializedSize();
    if (size > EventLog.MAX_EVENT_BYTES) {
      throw new TooLargeException(
          field + " is " + size + " bytes; the limit is " + EventLog.MAX_EVENT_BYTES + " bytes");
    }
    return type;
  }

  /**
   * Checks that {@code answer} (a tool confirmation, or a tool result of any kind) answers an event
   * that asks for it: a result that names no call would be kept in the context and counted in its
   * size, though no request can send it.
   */
  static void checkAnswers(NewEvent answer, java.util.Optional<Event> answered) {
    if (answer.type() == EventType.USER_TOOL_CONFIRMATION) {
      boolean asks =
          answered.isPresent()
              && (answered.get().hasAgentToolUse()
                      && answered.get().getAgentToolUse().getEvaluatedPermission()
                          == dev.corral.proto.v1.EvaluatedPermission.EVALUATED_PERMISSION_ASK
                  || answered.get().hasAgentMcpToolUse()
                      && answered.get().getAgentMcpToolUse().getEvaluatedPermission()
                          == dev.corral.proto.v1.EvaluatedPermission.EVALUATED_PERMISSION_ASK);
      if (!asks) {
        throw new InvalidArgumentException(
            "event.user_tool_confirmation.tool_use_id",
            "does not name an agent.tool_use or agent.mcp_tool_use of this session that waits for"
                + " confirmation");
      }
    } else if (answer.type() == EventType.USER_CUSTOM_TOOL_RESULT
        && (answered.isEmpty() || !answered.get().hasAgentCustomToolUse())) {
      throw new InvalidArgumentException(
          "event.user_custom_tool_result.custom_tool_use_id",
          "does not name an agent.custom_tool_use of this session");
    } else if (answer.type() == EventType.AGENT_TOOL_RESULT
        && (answered.isEmpty()
            || !answered.get().hasAgentToolUse() && !answered.get().hasAgentCustomToolUse())) {
      // (a harness closes a custom call it stops, on an interrupt, with an agent.tool_result)
      throw new InvalidArgumentException(
          "event.agent_tool_result.tool_use_id",
          "does not name an agent.tool_use or agent.custom_tool_use of this session");
    } else if (answer.type() == EventType.AGENT_MCP_TOOL_RESULT
        && (answered.isEmpty() || !answered.get().hasAgentMcpToolUse())) {
      throw new InvalidArgumentException(
          "event.agent_mcp_tool_result.mcp_tool_use_id",
          "does not name an agent.mcp_tool_use of this session");
    }
  }

  static String idempotencyKey(String field, String key) {
    if (key == null || key.isEmpty()) {
      return null;
    }
    if (!IDEMPOTENCY_KEY.matcher(key).matches()) {
      throw new InvalidArgumentException(field, "must be 1 to 128 characters of [A-Za-z0-9._:-]");
    }
    return key;
  }

  private static void requireNoEnvelope(String field, Event event) {
    if (!event.getId().isEmpty()) {
      throw new InvalidArgumentException(
          field + ".id", "is assigned by the server and must be empty");
    }
    if (!event.getSessionId().isEmpty()) {
      throw new InvalidArgumentException(
          field + ".session_id", "is assigned by the server and must be empty");
    }
    if (event.getSeq() != 0) {
      throw new InvalidArgumentException(field + ".seq", "is assigned by the server and must be 0");
    }
    if (event.hasProcessedAt()) {
      throw new InvalidArgumentException(
          field + ".processed_at", "is assigned by the server and must be unset");
    }
    if (event.hasEmittedBy()) {
      throw new InvalidArgumentException(
          field + ".emitted_by", "is assigned by the server and must be unset");
    }
  }

  private static void checkPayload(String field, EventType type, Event event) {
    switch (type) {
      case USER_MESSAGE ->
          content(field + ".user_message.content", event.getUserMessage().getContentList(), 1);
      case USER_TOOL_CONFIRMATION -> {
        var confirmation = event.getUserToolConfirmation();
        String at = field + ".user_tool_confirmation";
        IdKind.EVENT.require(at + ".tool_use_id", confirmation.getToolUseId());
        if (confirmation.getResult() != ConfirmationResult.CONFIRMATION_RESULT_ALLOW
            && confirmation.getResult() != ConfirmationResult.CONFIRMATION_RESULT_DENY) {
          throw new InvalidArgumentException(at + ".result", "must be ALLOW or DENY");
        }
        if (confirmation.getResult() == ConfirmationResult.CONFIRMATION_RESULT_ALLOW
            && !confirmation.getDenyMessage().isEmpty()) {
          throw new InvalidArgumentException(at + ".deny_message", "is only allowed with DENY");
        }
        InputRules.length(at + ".deny_message", confirmation.getDenyMessage(), 0, MAX_DENY_MESSAGE);
        if (!confirmation.getDenyMessage().isEmpty()
            && dev.corral.common.InputRules.blank(confirmation.getDenyMessage())) {
          throw new InvalidArgumentException(
              at + ".deny_message", "must hold something other than whitespace, or be empty");
        }
      }
      case USER_CUSTOM_TOOL_RESULT -> {
        var result = event.getUserCustomToolResult();
        String at = field + ".user_custom_tool_result";
        IdKind.EVENT.require(at + ".custom_tool_use_id", result.getCustomToolUseId());
        content(at + ".content", result.getContentList(), 0);
      }
      case AGENT_MESSAGE -> {
        List<ContentBlock> blocks = event.getAgentMessage().getContentList();
        content(field + ".agent_message.content", blocks, 1);
        for (int i = 0; i < blocks.size(); i++) {
          if (!blocks.get(i).hasText()) {
            // sent back to the model in an assistant turn, where the API takes no image
            throw new InvalidArgumentException(
                field + ".agent_message.content[" + i + "]", "must be text: the model writes text");
          }
        }
      }
      case AGENT_TOOL_USE -> {
        var use = event.getAgentToolUse();
        toolUse(
            field + ".agent_tool_use", use.getCallId(), use.getName(), AgentRules.CUSTOM_TOOL_NAME);
        Json.requireObject(field + ".agent_tool_use.input_json", use.getInputJson());
        permission(field + ".agent_tool_use.evaluated_permission", use.getEvaluatedPermission());
      }
      case AGENT_CUSTOM_TOOL_USE -> {
        var use = event.getAgentCustomToolUse();
        toolUse(
            field + ".agent_custom_tool_use",
            use.getCallId(),
            use.getName(),
            AgentRules.CUSTOM_TOOL_NAME);
        Json.requireObject(field + ".agent_custom_tool_use.input_json", use.getInputJson());
      }
      case AGENT_TOOL_RESULT -> {
        IdKind.EVENT.require(
            field + ".agent_tool_result.tool_use_id", event.getAgentToolResult().getToolUseId());
        content(
            field + ".agent_tool_result.content", event.getAgentToolResult().getContentList(), 0);
      }
      case AGENT_MCP_TOOL_USE -> {
        var use = event.getAgentMcpToolUse();
        String at = field + ".agent_mcp_tool_use";
        toolUse(at, use.getCallId(), use.getName(), AgentRules.MCP_TOOL_NAME);
        AgentRules.mcpServerName(at + ".mcp_server_name", use.getMcpServerName());
        Json.requireObject(at + ".input_json", use.getInputJson());
        permission(at + ".evaluated_permission", use.getEvaluatedPermission());
      }
      case AGENT_CONTEXT_COMPACTED -> {
        var compacted = event.getAgentContextCompacted();
        String at = field + ".agent_context_compacted";
        if (compacted.getFromSeq() < 1) {
          throw new InvalidArgumentException(at + ".from_seq", "must be at least 1");
        }
        if (compacted.getUpToSeq() < compacted.getFromSeq()) {
          throw new InvalidArgumentException(at + ".up_to_seq", "must not be below from_seq");
        }
        if (dev.corral.common.InputRules.blank(compacted.getSummary())) {
          // it stands for the history in every later model request
          throw new InvalidArgumentException(at + ".summary", "must not be empty or blank");
        }
        InputRules.length(at + ".summary", compacted.getSummary(), 1, MAX_SUMMARY);
        tokens(at + ".pre_compaction_tokens", compacted.getPreCompactionTokens());
        tokens(at + ".post_compaction_tokens", compacted.getPostCompactionTokens());
      }
      case SESSION_STATUS_IDLE -> {
        var reason = event.getSessionStatusIdle().getStopReason().getType();
        if (reason == dev.corral.proto.v1.StopReasonType.STOP_REASON_TYPE_UNSPECIFIED
            || reason == dev.corral.proto.v1.StopReasonType.UNRECOGNIZED) {
          throw new InvalidArgumentException(
              field + ".session_status_idle.stop_reason.type", "must be a known stop reason");
        }
        var ids = event.getSessionStatusIdle().getStopReason().getEventIdsList();
        if (ids.size() > MAX_WAITING_IDS) {
          throw new InvalidArgumentException(
              field + ".session_status_idle.stop_reason.event_ids",
              "has " + ids.size() + " ids; the limit is " + MAX_WAITING_IDS);
        }
        for (int i = 0; i < ids.size(); i++) {
          IdKind.EVENT.require(
              field + ".session_status_idle.stop_reason.event_ids[" + i + "]", ids.get(i));
        }
      }
      case AGENT_MCP_TOOL_RESULT -> {
        IdKind.EVENT.require(
            field + ".agent_mcp_tool_result.mcp_tool_use_id",
            event.getAgentMcpToolResult().getMcpToolUseId());
        content(
            field + ".agent_mcp_tool_result.content",
            event.getAgentMcpToolResult().getContentList(),
            0);
      }
      case SPAN_MODEL_REQUEST_END -> {
        var usage = event.getSpanModelRequestEnd().getModelUsage();
        String at = field + ".span_model_request_end.model_usage";
        tokens(at + ".input_tokens", usage.getInputTokens());
        tokens(at + ".output_tokens", usage.getOutputTokens());
        tokens(at + ".cache_creation_input_tokens", usage.getCacheCreationInputTokens());
        tokens(at + ".cache_read_input_tokens", usage.getCacheReadInputTokens());
      }
      default -> {}
    }
  }

  /** A tool call's id and name, as the model's API takes them back in later requests. */
  private static void toolUse(String field, String callId, String name, Pattern names) {
    if (!CALL_ID.matcher(callId).matches()) {
      throw new InvalidArgumentException(
          field + ".call_id", "must be 1 to 128 characters of [A-Za-z0-9_-]");
    }
    if (!names.matcher(name).matches()) {
      throw new InvalidArgumentException(
          field + ".name", "is not a tool name the model's API takes");
    }
  }

  private static final Pattern CALL_ID = Pattern.compile("[A-Za-z0-9_-]{1,128}");

  /** The longest summary a compaction may record. */
  static final int MAX_SUMMARY = 200_000;

  /**
   * One model request's token count: never negative (it would undo a session's usage and its
   * budget), and far below what would overflow the session's running totals.
   */
  private static void tokens(String field, long count) {
    if (count < 0 || count > MAX_TOKENS_PER_REQUEST) {
      throw new InvalidArgumentException(
          field, "must be between 0 and " + MAX_TOKENS_PER_REQUEST + " (one model request)");
    }
  }

  private static void content(String field, List<ContentBlock> blocks, int min) {
    if (blocks.size() < min) {
      throw new InvalidArgumentException(field, "needs at least " + min + " block");
    }
    if (blocks.size() > MAX_CONTENT_BLOCKS) {
      throw new InvalidArgumentException(
          field, "has " + blocks.size() + " blocks; the limit is " + MAX_CONTENT_BLOCKS);
    }
    long images = blocks.stream().filter(ContentBlock::hasImage).count();
    if (images > MAX_IMAGES) {
      throw new InvalidArgumentException(
          field,
          "has "
              + images
              + " images; an event takes at most "
              + MAX_IMAGES
              + " (the model is sent a session's latest "
              + MAX_IMAGES
              + ")");
    }
    for (int i = 0; i < blocks.size(); i++) {
      block(field + "[" + i + "]", blocks.get(i));
    }
  }

  private static void block(String field, ContentBlock block) {
    switch (block.getBlockCase()) {
      case TEXT -> {
        if (dev.corral.common.InputRules.blank(block.getText().getText())) {
          // the model's API refuses a text block of whitespace alone, for every later turn
          throw new InvalidArgumentException(
              field + ".text.text", "must hold something other than whitespace");
        }
      }
      case IMAGE -> image(field + ".image", block.getImage());
      default -> throw new InvalidArgumentException(field, "has no block set");
    }
  }

  /** Whether {@code data} starts as an image of {@code mediaType} does (its magic bytes). */
  private static boolean startsAs(String mediaType, com.google.protobuf.ByteString data) {
    return switch (mediaType) {
      case "image/png" -> data.startsWith(PNG);
      case "image/jpeg" -> data.startsWith(JPEG);
      case "image/gif" -> data.startsWith(GIF87) || data.startsWith(GIF89);
      case "image/webp" ->
          data.startsWith(RIFF) && data.size() >= 12 && data.substring(8, 12).equals(WEBP);
      default -> false;
    };
  }

  private static final com.google.protobuf.ByteString PNG =
      com.google.protobuf.ByteString.copyFrom(
          new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});
  private static final com.google.protobuf.ByteString JPEG =
      com.google.protobuf.ByteString.copyFrom(new byte[] {(byte) 0xff, (byte) 0xd8, (byte) 0xff});
  private static final com.google.protobuf.ByteString GIF87 =
      com.google.protobuf.ByteString.copyFromUtf8("GIF87a");
  private static final com.google.protobuf.ByteString GIF89 =
      com.google.protobuf.ByteString.copyFromUtf8("GIF89a");
  private static final com.google.protobuf.ByteString RIFF =
      com.google.protobuf.ByteString.copyFromUtf8("RIFF");
  private static final com.google.protobuf.ByteString WEBP =
      com.google.protobuf.ByteString.copyFromUtf8("WEBP");

  /** The longest image URL an event may carry. */
  static final int MAX_IMAGE_URL = 8_192;

  /** The most pixels on a side of an image the model takes. */
  static final int MAX_IMAGE_SIDE = 8_000;

  private static void image(String field, ImageBlock image) {
    // An image by URL needs no type: the model's API takes it from what it fetches.
    boolean typeNeeded = image.getSourceCase() != ImageBlock.SourceCase.URL;
    if ((typeNeeded || !image.getMediaType().isEmpty())
        && !IMAGE_TYPES.contains(image.getMediaType())) {
      throw new InvalidArgumentException(
          field + ".media_type",
          "must be one of " + String.join(", ", IMAGE_TYPES.stream().sorted().toList()));
    }
    switch (image.getSourceCase()) {
      case DATA -> {
        if (image.getData().isEmpty()) {
          throw new InvalidArgumentException(field + ".data", "must not be empty");
        }
        if (!startsAs(image.getMediaType(), image.getData())) {
          // the model's API refuses it, and so every later turn of the session
          throw new InvalidArgumentException(
              field + ".data",
              "is not " + image.getMediaType() + " (its first bytes say otherwise)");
        }
        ImageSize size =
            ImageSize.of(image.getMediaType(), image.getData())
                .orElseThrow(
                    () ->
                        new InvalidArgumentException(
                            field + ".data",
                            "is not a readable "
                                + image.getMediaType()
                                + " (its header is cut short or damaged)"));
        if (size.width() > MAX_IMAGE_SIDE || size.height() > MAX_IMAGE_SIDE) {
          throw new InvalidArgumentException(
              field + ".data",
              "is "
                  + size.width()
                  + "x"
                  + size.height()
                  + " pixels; the model takes at most "
                  + MAX_IMAGE_SIDE
                  + " on a side");
        }
      }
      case URL -> {
        if (!image.getUrl().startsWith("https://")) {
          throw new InvalidArgumentException(field + ".url", "must be an https URL");
        }
        if (image.getUrl().length() > MAX_IMAGE_URL) {
          throw new InvalidArgumentException(
              field + ".url", "is longer than " + MAX_IMAGE_URL + " characters");
        }
        String host;
        try {
          host = new java.net.URI(image.getUrl()).getHost();
        } catch (java.net.URISyntaxException malformed) {
          host = null;
        }
        if (host == null || host.isEmpty()) {
          // the model's API cannot fetch it, and refuses every later turn that sends it
          throw new InvalidArgumentException(
              field + ".url", "is not a URL with a host the model's API could fetch");
        }
      }
      default -> throw new InvalidArgumentException(field, "needs data or url");
    }
  }

  /** A tool call's recorded permission: the harness always sets one. */
  private static void permission(String field, dev.corral.proto.v1.EvaluatedPermission permission) {
    if (permission != dev.corral.proto.v1.EvaluatedPermission.EVALUATED_PERMISSION_ALLOW
        && permission != dev.corral.proto.v1.EvaluatedPermission.EVALUATED_PERMISSION_ASK
        && permission != dev.corral.proto.v1.EvaluatedPermission.EVALUATED_PERMISSION_DENY) {
      throw new InvalidArgumentException(field, "must be ALLOW, ASK or DENY");
    }
  }
}
