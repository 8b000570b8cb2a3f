package dev.corral.mcp;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Which MCP client is closed when a replica holds as many as it may. */
class McpClientsTest {

  private static McpClients.Candidate client(String tenant, String url, long lastUsed, int inUse) {
    return new McpClients.Candidate(new McpClients.Key(tenant, url, ""), lastUsed, inUse);
  }

  @Test
  void aClientWithACallUnderWayIsNeverClosedForRoom() {
    // Given the least recently used client has a call under way (a slow tool)
    List<McpClients.Candidate> open =
        List.of(client("victim", "https://a", 1, 1), client("victim", "https://b", 5, 0));

    // Then the idle one is closed, and none when all are busy
    assertThat(McpClients.toClose(open)).contains(new McpClients.Key("victim", "https://b", ""));
    assertThat(McpClients.toClose(List.of(client("victim", "https://a", 1, 1)))).isEmpty();
  }

  @Test
  void theTenantHoldingTheMostClientsLosesOneFirst() {
    // Given a tenant that opened many clients lately, and another's older idle client
    List<McpClients.Candidate> open =
        List.of(
            client("quiet", "https://q", 1, 0),
            client("busy", "https://1", 10, 0),
            client("busy", "https://2", 11, 0),
            client("busy", "https://3", 12, 0));

    // Then the busy tenant's least recently used client goes, not the other tenant's
    assertThat(McpClients.toClose(open)).contains(new McpClients.Key("busy", "https://1", ""));
  }
}
