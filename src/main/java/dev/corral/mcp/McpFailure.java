package dev.corral.mcp;

/**
 * Why an MCP server could not be used: its error type as Claude Managed Agents names it ({@code
 * mcp_connection_failed_error} or {@code mcp_authentication_failed_error}) and a message that holds
 * no secret.
 */
public record McpFailure(String server, String errorType, String message) {

  public static final String CONNECTION = "mcp_connection_failed_error";
  public static final String AUTHENTICATION = "mcp_authentication_failed_error";
}
