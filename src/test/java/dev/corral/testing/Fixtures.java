package dev.corral.testing;

import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.AgentToolset;
import dev.corral.proto.v1.ContentBlock;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.Event;
import dev.corral.proto.v1.Session;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.TextBlock;
import dev.corral.proto.v1.Tool;
import dev.corral.proto.v1.UserMessage;

/** Builders for the requests most tests need. */
public final class Fixtures {

  private Fixtures() {}

  /** Runs {@code command} with the bash tool in a sandbox (no quotes escaped but {@code "}). */
  public static dev.corral.proto.v1.ExecuteResponse bash(
      dev.corral.proto.v1.SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes,
      String sandboxId,
      String command) {
    return sandboxes.execute(
        dev.corral.proto.v1.ExecuteRequest.newBuilder()
            .setSandboxId(sandboxId)
            .setName("bash")
            .setInputJson("{\"command\":\"" + command.replace("\"", "\\\"") + "\"}")
            .build());
  }

  public static String createAgent(AgentServiceGrpc.AgentServiceBlockingStub agents) {
    return agents
        .createAgent(
            CreateAgentRequest.newBuilder().setName("test agent").setModel("claude-test").build())
        .getAgent()
        .getId();
  }

  public static Session createSession(
      AgentServiceGrpc.AgentServiceBlockingStub agents,
      SessionServiceGrpc.SessionServiceBlockingStub sessions) {
    return createSession(agents, sessions, "");
  }

  /** A session of a new agent whose sandboxes come from {@code environmentId} ("": the default). */
  public static Session createSession(
      AgentServiceGrpc.AgentServiceBlockingStub agents,
      SessionServiceGrpc.SessionServiceBlockingStub sessions,
      String environmentId) {
    return sessions
        .createSession(
            CreateSessionRequest.newBuilder()
                .setAgentId(createAgent(agents))
                .setEnvironmentId(environmentId)
                .build())
        .getSession();
  }

  /** The built-in toolset, with {@code bashPolicy} for bash. */
  public static Tool bashToolset(dev.corral.proto.v1.PermissionPolicy bashPolicy) {
    return Tool.newBuilder()
        .setToolset(
            AgentToolset.newBuilder()
                .addConfigs(
                    dev.corral.proto.v1.ToolConfig.newBuilder()
                        .setName("bash")
                        .setPermissionPolicy(bashPolicy)))
        .build();
  }

  /** A session of a new agent with the built-in tools, started with {@code text}. */
  public static Session startWithTools(
      AgentServiceGrpc.AgentServiceBlockingStub agents,
      SessionServiceGrpc.SessionServiceBlockingStub sessions,
      String text) {
    return withTools(
        agents, sessions, CreateSessionRequest.newBuilder().addInitialEvents(userMessage(text)));
  }

  /** The session {@code request} asks for, of a new agent with the built-in tools. */
  public static Session withTools(
      AgentServiceGrpc.AgentServiceBlockingStub agents,
      SessionServiceGrpc.SessionServiceBlockingStub sessions,
      CreateSessionRequest.Builder request) {
    String agent =
        agents
            .createAgent(
                CreateAgentRequest.newBuilder()
                    .setName("tool test")
                    .setModel("claude-test")
                    .addTools(Tool.newBuilder().setToolset(AgentToolset.getDefaultInstance()))
                    .build())
            .getAgent()
            .getId();
    return sessions.createSession(request.setAgentId(agent).build()).getSession();
  }

  public static Event userMessage(String text) {
    return Event.newBuilder()
        .setUserMessage(
            UserMessage.newBuilder()
                .addContent(
                    ContentBlock.newBuilder().setText(TextBlock.newBuilder().setText(text))))
        .build();
  }

  public static EmitEventRequest emit(String sessionId, String text) {
    return EmitEventRequest.newBuilder()
        .setSessionId(sessionId)
        .setEvent(userMessage(text))
        .build();
  }

  /** The text of a user.message event. */
  public static String text(Event event) {
    return event.getUserMessage().getContent(0).getText().getText();
  }

  /**
   * Rewrites the stored definition of environment {@code environmentId} behind the API's back, as
   * if it had been made before the operator tightened a setting the API now checks.
   */
  public static void rewriteEnvironment(
      io.vertx.mutiny.sqlclient.Pool pool,
      String environmentId,
      java.util.function.UnaryOperator<dev.corral.proto.v1.Environment.Builder> change)
      throws com.google.protobuf.InvalidProtocolBufferException {
    rewriteSpec(
        pool,
        "environments WHERE id = $1",
        environmentId,
        spec -> change.apply(dev.corral.proto.v1.Environment.parseFrom(spec).toBuilder()).build());
  }

  /**
   * Rewrites the stored definition of version 1 of agent {@code agentId} behind the API's back, as
   * if it had been made before the API checked what it now checks.
   */
  public static void rewriteAgent(
      io.vertx.mutiny.sqlclient.Pool pool,
      String agentId,
      java.util.function.UnaryOperator<dev.corral.proto.v1.Agent.Builder> change)
      throws com.google.protobuf.InvalidProtocolBufferException {
    rewriteSpec(
        pool,
        "agent_versions WHERE agent_id = $1 AND version = 1",
        agentId,
        spec -> change.apply(dev.corral.proto.v1.Agent.parseFrom(spec).toBuilder()).build());
  }

  private interface SpecChange {
    com.google.protobuf.Message apply(byte[] spec)
        throws com.google.protobuf.InvalidProtocolBufferException;
  }

  /** Reads the {@code spec} of the one row {@code where} picks, and writes back its change. */
  private static void rewriteSpec(
      io.vertx.mutiny.sqlclient.Pool pool, String where, String id, SpecChange change)
      throws com.google.protobuf.InvalidProtocolBufferException {
    String table = where.substring(0, where.indexOf(' '));
    String condition = where.substring(where.indexOf(' '));
    byte[] spec =
        pool.preparedQuery("SELECT spec FROM " + where)
            .execute(io.vertx.mutiny.sqlclient.Tuple.of(id))
            .await()
            .indefinitely()
            .iterator()
            .next()
            .getBuffer("spec")
            .getBytes();
    byte[] changed = change.apply(spec).toByteArray();
    pool.preparedQuery("UPDATE " + table + " SET spec = $2" + condition)
        .execute(
            io.vertx.mutiny.sqlclient.Tuple.of(id, io.vertx.core.buffer.Buffer.buffer(changed)))
        .await()
        .indefinitely();
  }
}
