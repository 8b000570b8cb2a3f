package dev.corral.tool;

import dev.corral.common.Tenant;
import dev.corral.mcp.McpAnswer;
import dev.corral.mcp.McpFailure;
import dev.corral.mcp.McpServers;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.McpServer;
import dev.corral.proto.v1.RetryStatus;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionError;
import dev.corral.vault.Credentials;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.List;

/**
 * MCP tools as the harness sees them: what a session's agent may be offered, and calls whose
 * outcome is a {@link ToolOutcome}. A server that fails a call or a listing becomes a tool error
 * and a session.error event ({@code mcp_connection_failed_error} or {@code
 * mcp_authentication_failed_error}), never a stuck turn.
 */
@ApplicationScoped
class McpTools {

  private final McpServers servers;
  private final Credentials credentials;

  McpTools(McpServers servers, Credentials credentials) {
    this.servers = servers;
    this.credentials = credentials;
  }

  /**
   * The server with its credential: its own, or (when it names none) the one bound to its URL in
   * the session's vaults, if any.
   */
  private Uni<McpServer> resolved(Tenant tenant, McpServer server, List<String> vaultIds) {
    if (!server.getCredentialId().isEmpty() || vaultIds.isEmpty()) {
      return Uni.createFrom().item(server);
    }
    return credentials
        .forMcpServer(tenant, vaultIds, server.getUrl())
        .map(
            found ->
                found.map(id -> server.toBuilder().setCredentialId(id).build()).orElse(server));
  }

  private Uni<List<McpServer>> resolved(
      Tenant tenant, List<McpServer> servers, List<String> vaultIds) {
    if (vaultIds.isEmpty()) {
      return Uni.createFrom().item(servers);
    }
    return Multi.createFrom()
        .iterable(servers)
        .onItem()
        .transformToUniAndConcatenate(server -> resolved(tenant, server, vaultIds))
        .collect()
        .asList();
  }

  Uni<OfferedTools> offered(Session session) {
    if (session.getAgent().getMcpServersCount() == 0) {
      return Uni.createFrom().item(OfferedTools.NONE);
    }
    Tenant tenant = new Tenant(session.getTenantId());
    return resolved(tenant, session.getAgent().getMcpServersList(), session.getVaultIdsList())
        .flatMap(resolvedServers -> servers.tools(session.getId(), tenant, resolvedServers))
        .map(
            listing ->
                new OfferedTools(
                    listing.tools().stream()
                        .map(
                            tool ->
                                new OfferedTools.Tool(
                                    tool.server(),
                                    tool.name(),
                                    tool.description(),
                                    tool.inputSchemaJson(),
                                    tool.readOnly(),
                                    true)) // only accepted schemas are listed (McpServers.tools)
                        .toList(),
                    listing.failures().stream().map(McpTools::error).toList()));
  }

  Uni<ToolOutcome> call(ToolRouter.ToolCall call) {
    Tenant tenant = new Tenant(call.mcp().tenantId());
    return resolved(tenant, call.mcp().server(), call.mcp().vaultIds())
        .flatMap(server -> servers.call(tenant, server, call.name(), call.inputJson()))
        .map(McpTools::outcome);
  }

  private static ToolOutcome outcome(McpAnswer answer) {
    String text = String.join("\n", answer.texts());
    ToolOutcome outcome = new ToolOutcome(text, answer.isError(), List.of());
    return answer.failure() == null
        ? outcome
        : outcome.withNoticesAfter(List.of(error(answer.failure())));
  }

  /** The session.error that records a server's failure (the turn goes on). */
  static Event error(McpFailure failure) {
    return Event.newBuilder()
        .setSessionError(
            SessionError.newBuilder()
                .setErrorType(failure.errorType())
                .setMessage(failure.message())
                .setMcpServerName(failure.server())
                .setRetryStatus(RetryStatus.RETRY_STATUS_UNSPECIFIED))
        .build();
  }
}
