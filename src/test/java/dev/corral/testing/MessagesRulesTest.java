package dev.corral.testing;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

/** The fake API's rules for thinking in a tool loop are the real API's, neither more nor less. */
class MessagesRulesTest {

  private static final ObjectMapper JSON = new ObjectMapper();

  private static final String THINKING =
      "{\"type\":\"thinking\",\"thinking\":\"plan\",\"signature\":\"sig\"}";

  @Test
  void aToolLoopThinksAtItsStartOnly() throws Exception {
    // the loop's later replies carry no thinking, as the model writes them
    assertThat(
            MessagesRules.violation(
                request(
                    user("\"go\""),
                    assistant(THINKING + "," + toolUse("a")),
                    user(toolResult("a")),
                    assistant(toolUse("b")),
                    user(toolResult("b")))))
        .isEmpty();
  }

  @Test
  void aToolLoopWhoseFirstReplyDoesNotThinkIsRefused() throws Exception {
    // as after a summary that cut the loop in two
    assertThat(
            MessagesRules.violation(
                request(
                    user("\"summary of what came before\""),
                    assistant(toolUse("b")),
                    user(toolResult("b")))))
        .hasValueSatisfying(refusal -> assertThat(refusal).contains("messages.1.content.0.type"));
  }

  @Test
  void aForcedToolChoiceWithThinkingOnIsRefused() throws Exception {
    com.fasterxml.jackson.databind.node.ObjectNode forced =
        (com.fasterxml.jackson.databind.node.ObjectNode) request(user("\"go\""));
    forced.putObject("tool_choice").put("type", "any");
    assertThat(MessagesRules.violation(forced))
        .hasValueSatisfying(refusal -> assertThat(refusal).contains("forces tool use"));
    forced.putObject("tool_choice").put("type", "auto");
    assertThat(MessagesRules.violation(forced)).isEmpty();
    forced.remove("tools");
    assertThat(MessagesRules.violation(forced))
        .hasValueSatisfying(refusal -> assertThat(refusal).contains("while providing tools"));
  }

  private static JsonNode request(String... messages) throws Exception {
    return JSON.readTree(
        "{\"model\":\"claude-test\",\"max_tokens\":4096,"
            + "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048},"
            + "\"tools\":[{\"name\":\"bash\",\"input_schema\":{\"type\":\"object\"}}],"
            + "\"messages\":["
            + String.join(",", messages)
            + "]}");
  }

  private static String user(String content) {
    return "{\"role\":\"user\",\"content\":"
        + (content.startsWith("\"") ? content : "[" + content + "]")
        + "}";
  }

  private static String assistant(String blocks) {
    return "{\"role\":\"assistant\",\"content\":[" + blocks + "]}";
  }

  private static String toolUse(String id) {
    return "{\"type\":\"tool_use\",\"id\":\"toolu_" + id + "\",\"name\":\"bash\",\"input\":{}}";
  }

  private static String toolResult(String id) {
    return "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_" + id + "\",\"content\":\"ok\"}";
  }
}
