package dev.corral.tool;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.Optional;

/**
 * The built-in toolset ({@code agent_toolset_20260401} in Claude Managed Agents): tools that run
 * inside the session's sandbox, and {@code session_log}, which reads the session's own log (no
 * sandbox). Input schemas follow Claude Managed Agents.
 */
public enum BuiltInTool {
  BASH(
      "bash",
      false,
      "Runs a command in a persistent bash shell inside the sandbox. The working directory and"
          + " exported variables survive between calls. Output is capped; the tail is kept.",
      """
      {"type":"object","properties":{
        "command":{"type":"string","description":"The command to run."},
        "restart":{"type":"boolean","description":"Restart the shell (a fresh environment)."},
        "timeout_ms":{"type":"integer","minimum":1,"description":"Time limit for this command."}
      },"additionalProperties":false}
      """),
  READ(
      "read",
      true,
      "Reads a text file of the sandbox workspace, optionally a range of lines (1-based,"
          + " inclusive; an end of 0 or less means the end of the file).",
      """
      {"type":"object","properties":{
        "file_path":{"type":"string"},
        "view_range":{"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":2}
      },"required":["file_path"],"additionalProperties":false}
      """),
  WRITE(
      "write",
      false,
      "Writes a file of the sandbox workspace, replacing it if it exists.",
      """
      {"type":"object","properties":{
        "file_path":{"type":"string"},
        "content":{"type":"string"}
      },"required":["file_path","content"],"additionalProperties":false}
      """),
  EDIT(
      "edit",
      false,
      "Replaces old_string with new_string in a file. old_string must occur exactly once unless"
          + " replace_all is true.",
      """
      {"type":"object","properties":{
        "file_path":{"type":"string"},
        "old_string":{"type":"string"},
        "new_string":{"type":"string"},
        "replace_all":{"type":"boolean"}
      },"required":["file_path","old_string","new_string"],"additionalProperties":false}
      """),
  GLOB(
      "glob",
      true,
      "Lists files of the sandbox workspace that match a glob pattern (** for any depth),"
          + " newest first.",
      """
      {"type":"object","properties":{
        "pattern":{"type":"string"},
        "path":{"type":"string","description":"Directory to search from (default: workspace)."}
      },"required":["pattern"],"additionalProperties":false}
      """),
  GREP(
      "grep",
      true,
      "Searches files of the sandbox workspace for a regular expression; prints file:line:text.",
      """
      {"type":"object","properties":{
        "pattern":{"type":"string"},
        "path":{"type":"string","description":"File or directory to search (default: workspace)."}
      },"required":["pattern"],"additionalProperties":false}
      """),
  SESSION_LOG(
      "session_log",
      true,
      "Reads this session's own event log, which keeps everything even when older turns were"
          + " compacted out of your context: the events after or before a seq, or the last ones,"
          + " optionally of some types only (user.message, agent.message, agent.tool_use,"
          + " agent.tool_result, ...). Each event is shown as its seq, type and text, long texts"
          + " cut.",
      """
      {"type":"object","properties":{
        "after_seq":{"type":"integer","minimum":0,"description":"Events after this seq."},
        "before_seq":{"type":"integer","minimum":1,"description":"Events just before this seq."},
        "types":{"type":"array","items":{"type":"string"},"description":"Only these types."},
        "limit":{"type":"integer","minimum":1,"maximum":50,"description":"At most this many (20)."}
      },"additionalProperties":false}
      """);

  private final String toolName;
  private final boolean readOnly;
  private final String description;
  private final ObjectNode inputSchema;

  BuiltInTool(String toolName, boolean readOnly, String description, String inputSchema) {
    this.toolName = toolName;
    this.readOnly = readOnly;
    this.description = description;
    try {
      this.inputSchema = (ObjectNode) new ObjectMapper().readTree(inputSchema);
    } catch (java.io.IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public String toolName() {
    return toolName;
  }

  /** Read-only tools may be run again when a harness restarted while they ran. */
  public boolean readOnly() {
    return readOnly;
  }

  public String description() {
    return description;
  }

  /** The JSON Schema of the input (a fresh copy). */
  public ObjectNode inputSchema() {
    return inputSchema.deepCopy();
  }

  /** Whether it runs in a sandbox (all but session_log). */
  public boolean needsSandbox() {
    return this != SESSION_LOG;
  }

  public static Optional<BuiltInTool> named(String name) {
    return Arrays.stream(values()).filter(tool -> tool.toolName.equals(name)).findFirst();
  }
}
