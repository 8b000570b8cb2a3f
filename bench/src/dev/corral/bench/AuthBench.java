package dev.corral.bench;

import com.sun.net.httpserver.HttpServer;
import dev.corral.proto.v1.AgentServiceGrpc;
import dev.corral.proto.v1.ApiKeyServiceGrpc;
import dev.corral.proto.v1.CreateAgentRequest;
import dev.corral.proto.v1.CreateApiKeyRequest;
import dev.corral.proto.v1.CreateSessionRequest;
import dev.corral.proto.v1.EmitEventRequest;
import dev.corral.proto.v1.Role;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.testing.Fixtures;
import dev.corral.testing.ServerProcess;
import dev.corral.testing.TestCredentials;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.smallrye.jwt.build.Jwt;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;
import java.math.BigInteger;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.interfaces.RSAPublicKey;
import java.time.Instant;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * What authentication adds to an append: sequential EmitEvent calls on one session, with an API key
 * and with an OIDC token (a server with authentication on, its identity provider on loopback), and
 * without authentication (a second server, authentication off), on one PostgreSQL, in interleaved
 * rounds.
 */
public final class AuthBench {

  private static final int ROUNDS = 5;
  private static final String AUDIENCE = "corral-bench";

  private AuthBench() {}

  public static void main(String[] args) throws Exception {
    int calls = Integer.parseInt(args[0]);
    System.out.printf(
        "corral auth benchmark: %d rounds of %d sequential EmitEvent calls per mode, %d cores, %s%n",
        ROUNDS, calls, Runtime.getRuntime().availableProcessors(), Instant.now());
    KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
    generator.initialize(2048);
    KeyPair signing = generator.generateKeyPair();
    HttpServer identityProvider = identityProvider((RSAPublicKey) signing.getPublic());
    String issuer = "http://127.0.0.1:" + identityProvider.getAddress().getPort();
    try (EmbeddedPostgres postgres = BenchServers.postgres()) {
      Map<String, String> database = BenchServers.logOnly(postgres);
      Map<String, String> on = new HashMap<>(database);
      on.put("CORRAL_AUTH_OIDC_ENABLED", "true");
      on.put("CORRAL_AUTH_OIDC_ISSUER", issuer);
      on.put("CORRAL_AUTH_OIDC_AUDIENCE", AUDIENCE);
      Map<String, String> off = new HashMap<>(database);
      off.put("CORRAL_AUTH_ENABLED", "false");
      try (ServerProcess secured = ServerProcess.start(on);
          ServerProcess open = ServerProcess.start(off)) {
        ManagedChannel securedChannel = plain(secured);
        ManagedChannel openChannel = plain(open);
        String key =
            ApiKeyServiceGrpc.newBlockingStub(secured.channel())
                .createApiKey(
                    CreateApiKeyRequest.newBuilder()
                        .setName("bench")
                        .setRole(Role.ROLE_MEMBER)
                        .setTenantId("bench")
                        .build())
                .getKey();
        String token =
            Jwt.issuer(issuer)
                .audience(AUDIENCE)
                .subject("bench-user")
                .claim("tenant", "bench")
                .claim("roles", List.of("member"))
                .expiresAt(Instant.now().getEpochSecond() + 3600)
                .jws()
                .keyId("bench")
                .sign(signing.getPrivate());
        Channel withKey = as(securedChannel, key);
        Channel withToken = as(securedChannel, token);
        EmitEventRequest keyed = session(withKey);
        EmitEventRequest tokened = session(withToken);
        EmitEventRequest unauthenticated = session(openChannel);
        for (int warmUp = 0; warmUp < 2; warmUp++) {
          run(withKey, keyed, calls);
          run(withToken, tokened, calls);
          run(openChannel, unauthenticated, calls);
        }
        Latencies none = new Latencies();
        Latencies apiKey = new Latencies();
        Latencies jwt = new Latencies();
        for (int round = 0; round < ROUNDS; round++) {
          none.merge(run(openChannel, unauthenticated, calls));
          apiKey.merge(run(withKey, keyed, calls));
          jwt.merge(run(withToken, tokened, calls));
        }
        report(none, apiKey, jwt);
        securedChannel.shutdownNow();
        openChannel.shutdownNow();
      }
    } finally {
      identityProvider.stop(0);
    }
  }

  private static void report(Latencies none, Latencies apiKey, Latencies jwt) {
    System.out.printf("%-28s %s%n", "no authentication", none.summary());
    System.out.printf("%-28s %s%n", "API key (crl_…)", apiKey.summary());
    System.out.printf("%-28s %s%n", "OIDC token (RS256 JWT)", jwt.summary());
    double base = none.percentileMillis(50);
    for (var mode : List.of(Map.entry("API key", apiKey), Map.entry("OIDC token", jwt))) {
      double added = mode.getValue().percentileMillis(50) - base;
      System.out.printf(
          "%-12s adds %+.3f ms at p50 (%.2fx)   target <= 0.2 ms   %s%n",
          mode.getKey(),
          added,
          mode.getValue().percentileMillis(50) / base,
          added <= 0.2 ? "met" : "NOT met");
    }
  }

  private static Latencies run(Channel channel, EmitEventRequest request, int calls) {
    SessionServiceGrpc.SessionServiceBlockingStub stub =
        SessionServiceGrpc.newBlockingStub(channel);
    Latencies latencies = new Latencies();
    for (int i = 0; i < calls; i++) {
      long begin = System.nanoTime();
      stub.withDeadlineAfter(10, TimeUnit.SECONDS).emitEvent(request);
      latencies.record(System.nanoTime() - begin);
    }
    return latencies;
  }

  private static EmitEventRequest session(Channel channel) {
    String agent =
        AgentServiceGrpc.newBlockingStub(channel)
            .createAgent(
                CreateAgentRequest.newBuilder().setName("bench").setModel("claude-test").build())
            .getAgent()
            .getId();
    String session =
        SessionServiceGrpc.newBlockingStub(channel)
            .createSession(CreateSessionRequest.newBuilder().setAgentId(agent).build())
            .getSession()
            .getId();
    return EmitEventRequest.newBuilder()
        .setSessionId(session)
        .setEvent(Fixtures.userMessage("x".repeat(100)))
        .build();
  }

  private static ManagedChannel plain(ServerProcess server) {
    return ManagedChannelBuilder.forAddress("localhost", server.port())
        .usePlaintext()
        .directExecutor()
        .build();
  }

  private static Channel as(ManagedChannel channel, String credential) {
    return ClientInterceptors.intercept(channel, TestCredentials.bearer(credential));
  }

  /** An OpenID provider on loopback that publishes one RSA key (kid "bench"). */
  private static HttpServer identityProvider(RSAPublicKey key) throws Exception {
    HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    String base = "http://127.0.0.1:" + server.getAddress().getPort();
    String discovery = "{\"issuer\":\"" + base + "\",\"jwks_uri\":\"" + base + "/jwks\"}";
    String jwks =
        "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"bench\",\"alg\":\"RS256\",\"use\":\"sig\",\"n\":\""
            + unsigned(key.getModulus())
            + "\",\"e\":\""
            + unsigned(key.getPublicExponent())
            + "\"}]}";
    server.createContext(
        "/.well-known/openid-configuration", exchange -> answer(exchange, discovery));
    server.createContext("/jwks", exchange -> answer(exchange, jwks));
    server.start();
    return server;
  }

  private static void answer(com.sun.net.httpserver.HttpExchange exchange, String body)
      throws java.io.IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().add("content-type", "application/json");
    exchange.sendResponseHeaders(200, bytes.length);
    exchange.getResponseBody().write(bytes);
    exchange.close();
  }

  private static String unsigned(BigInteger value) {
    byte[] bytes = value.toByteArray();
    if (bytes.length > 1 && bytes[0] == 0) {
      bytes = java.util.Arrays.copyOfRange(bytes, 1, bytes.length);
    }
    return Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
  }
}
