package dev.corral.mcp;

import java.util.List;

/**
 * What a tool call came to: the text of its answer (no secret of the credential in it), whether it
 * is an error, and the failure to record when the server itself failed (null when it answered).
 */
public record McpAnswer(List<String> texts, boolean isError, McpFailure failure) {

  public McpAnswer {
    texts = List.copyOf(texts);
  }

  static McpAnswer failed(McpFailure failure) {
    return new McpAnswer(List.of(failure.message()), true, failure);
  }
}
