package dev.corral.mcp;

import static org.assertj.core.api.Assertions.assertThat;

import dev.corral.proto.v1.McpServer;
import dev.corral.vault.HttpAuth;
import io.modelcontextprotocol.spec.McpSchema;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** A server's tool listing reaches the model without the secrets of the credential it was sent. */
class McpToolListingTest {

  private static final String TOKEN = "tok_SECRET_1234567";

  @Test
  void aListingThatQuotesTheTokenIsScrubbedAndAToolNamedAfterItIsLeftOut() {
    // Given a server that quotes the bearer token it was sent in a description, a schema and a name
    HttpAuth auth =
        new HttpAuth(
            "cred_1", "Authorization", "Bearer " + TOKEN, List.of("Bearer " + TOKEN, TOKEN));
    McpSchema.ListToolsResult listing =
        new McpSchema.ListToolsResult(
            List.of(
                McpSchema.Tool.builder()
                    .name("search")
                    .description("Searches. Your token is " + TOKEN + ".")
                    .inputSchema(
                        Map.of(
                            "type",
                            "object",
                            "properties",
                            Map.of("q", Map.of("type", "string", "default", TOKEN))))
                    .build(),
                McpSchema.Tool.builder()
                    .name("x_" + TOKEN)
                    .description("a name that carries the token")
                    .inputSchema(Map.of("type", "object"))
                    .build()),
            null);

    // When corral reads the listing
    List<McpTool> tools =
        McpServers.tools(McpServer.newBuilder().setName("docs").build(), listing, auth);

    // Then what the model is offered holds no secret
    assertThat(tools).extracting(McpTool::name).containsExactly("search");
    assertThat(tools.get(0).description()).isEqualTo("Searches. Your token is [redacted].");
    assertThat(tools.get(0).inputSchemaJson()).contains("[redacted]").doesNotContain(TOKEN);
  }

  @Test
  void aListingWithoutACredentialIsOfferedAsItIs() {
    McpSchema.ListToolsResult listing =
        new McpSchema.ListToolsResult(
            List.of(
                McpSchema.Tool.builder()
                    .name("search")
                    .description("Searches " + TOKEN)
                    .inputSchema(Map.of("type", "object"))
                    .build()),
            null);
    List<McpTool> tools =
        McpServers.tools(McpServer.newBuilder().setName("docs").build(), listing, null);
    assertThat(tools.get(0).description()).isEqualTo("Searches " + TOKEN);
  }

  @Test
  void aToolWhoseSchemaTheApiRefusesIsLeftOutWhenListedNotAtEveryRequest() {
    // Given a listing with a typo deep in one tool's schema, a tool whose input is a string, one
    // with anyOf at the top and one with a property name the Messages API refuses
    McpSchema.ListToolsResult listing =
        new McpSchema.ListToolsResult(
            List.of(
                McpSchema.Tool.builder()
                    .name("bad")
                    .inputSchema(
                        Map.of(
                            "type", "object", "properties", Map.of("a", Map.of("type", "strin"))))
                    .build(),
                McpSchema.Tool.builder().name("text").inputSchema(Map.of("type", "string")).build(),
                McpSchema.Tool.builder()
                    .name("either")
                    .inputSchema(
                        Map.of(
                            "type", "object", "anyOf", List.of(Map.of("required", List.of("a")))))
                    .build(),
                McpSchema.Tool.builder()
                    .name("brackets")
                    .inputSchema(
                        Map.of(
                            "type",
                            "object",
                            "properties",
                            Map.of("filter[id]", Map.of("type", "string"))))
                    .build(),
                McpSchema.Tool.builder()
                    .name("good")
                    .inputSchema(
                        Map.of(
                            "type", "object", "properties", Map.of("a", Map.of("type", "string"))))
                    .build()),
            null);

    // When corral reads it, then only the tool the API takes is kept
    assertThat(McpServers.tools(McpServer.newBuilder().setName("docs").build(), listing, null))
        .extracting(McpTool::name)
        .containsExactly("good");
  }
}
