package dev.corral.mcp;

/**
 * One tool an MCP server lists.
 *
 * @param server the agent's name for the server
 * @param inputSchemaJson the tool's input schema, a JSON object
 * @param readOnly the server says the tool changes nothing ({@code readOnlyHint})
 */
public record McpTool(
    String server, String name, String description, String inputSchemaJson, boolean readOnly) {}
