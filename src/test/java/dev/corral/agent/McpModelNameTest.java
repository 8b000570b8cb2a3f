package dev.corral.agent;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The name the model knows an MCP tool by is always one the Messages API takes (1 to 64 of
 * [A-Za-z0-9_-]), whatever the server's name (1 to 255 characters, any but control characters) and
 * the tool's (MCP's 1 to 128 of [A-Za-z0-9_.-]); names that fit are left as they were.
 */
class McpModelNameTest {

  @Test
  void aNameThatFitsIsTheServersAndTheToolsAsTheyAre() {
    assertThat(AgentRules.mcpModelName("github", "create_issue"))
        .isEqualTo("mcp__github__create_issue");
  }

  @Test
  void anyOtherNameIsCutToFitWithAHashThatTellsItApart() {
    List<String[]> pairs =
        List.of(
            new String[] {"docs search", "files.read"},
            new String[] {"docs.search", "files.read"},
            new String[] {"docs search", "files_read"},
            new String[] {"g__h", "x"}, // must not be mcp__g__h__x, server g's tool h__x
            new String[] {"g", "h__x"},
            new String[] {"Ünïcode ✓", "echo"},
            new String[] {"s".repeat(255), "t".repeat(128)},
            new String[] {"s".repeat(255), "t".repeat(127) + "u"},
            new String[] {"a", "b".repeat(100)});
    Set<String> names = new HashSet<>();
    for (String[] pair : pairs) {
      String name = AgentRules.mcpModelName(pair[0], pair[1]);
      assertThat(name).as(pair[0] + " / " + pair[1]).matches("[A-Za-z0-9_-]{1,64}");
      assertThat(name).isEqualTo(AgentRules.mcpModelName(pair[0], pair[1]));
      assertThat(names.add(name)).as("%s is given twice", name).isTrue();
    }
    assertThat(AgentRules.mcpModelName("docs search", "files.read"))
        .startsWith("mcp__docs-search__files-read_");
    assertThat(AgentRules.mcpModelName("g", "h__x")).isEqualTo("mcp__g__h__x");
  }
}
