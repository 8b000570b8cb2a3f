package dev.corral.api;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.not;

import dev.corral.proto.v1.ApiKeyServiceGrpc;
import dev.corral.proto.v1.CreateApiKeyRequest;
import dev.corral.proto.v1.Role;
import dev.corral.testing.TestCredentials;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import org.junit.jupiter.api.Test;

/** Every HTTP endpoint but health needs a credential, and metrics one of the operator tenant. */
@QuarkusTest
class HttpAuthTest {

  @GrpcClient("corral")
  ApiKeyServiceGrpc.ApiKeyServiceBlockingStub keys;

  @Test
  void theProbesAreOpenToAnyoneAndTheRestOfHealthIsNot() {
    given().get("/q/health/live").then().statusCode(200);
    given().get("/q/health/ready").then().statusCode(200);
    given().get("/q/health/started").then().statusCode(200);
    // the whole report and its groups run every check: not for anyone, as often as they like
    given().get("/q/health").then().statusCode(401);
    given().get("/q/health/group/x").then().statusCode(401);
    given().get("/q/health/well").then().statusCode(401);
  }

  @Test
  void metricsNeedACredentialOfTheOperatorTenant() {
    given()
        .get("/q/metrics")
        .then()
        .statusCode(401)
        .body("type", equalTo("error"))
        .body("error.type", equalTo("authentication_error"))
        .body("error.message", containsString("credential"))
        // with a request id, as every answer of the API carries, and not to be retried
        .body("request_id", org.hamcrest.Matchers.startsWith("req_"))
        .header("request-id", org.hamcrest.Matchers.startsWith("req_"))
        .header("x-should-retry", equalTo("false"));
    given()
        .header("authorization", "Bearer crl_" + "z".repeat(52))
        .get("/q/metrics")
        .then()
        .statusCode(401);
    given()
        .header("authorization", "Bearer " + TestCredentials.ADMIN_KEY)
        .get("/q/metrics")
        .then()
        .statusCode(200)
        .body(containsString("corral_"));
    given().header("x-api-key", TestCredentials.ADMIN_KEY).get("/q/metrics").then().statusCode(200);
    String otherTenant =
        keys.createApiKey(
                CreateApiKeyRequest.newBuilder()
                    .setName("other")
                    .setRole(Role.ROLE_ADMIN)
                    .setTenantId("metrics-" + System.nanoTime())
                    .build())
            .getKey();
    given()
        .header("authorization", "Bearer " + otherTenant)
        .get("/q/metrics")
        .then()
        .statusCode(403)
        .body("error.type", equalTo("permission_error"));
    // Quarkus serves the whole scrape below its path too
    for (String below : new String[] {"/q/metrics/", "/q/metrics/x", "/q/metrics/x/y"}) {
      given().header("authorization", "Bearer " + otherTenant).get(below).then().statusCode(403);
    }
  }

  @Test
  void tricksDoNotReachMetricsWithoutACredential() {
    given().get("/q/health/../metrics").then().statusCode(401);
    given().get("/q/health/%2e%2e/metrics").then().statusCode(not(200));
    given().contentType("application/grpc").get("/q/metrics").then().statusCode(401);
    given().get("/Q/METRICS").then().statusCode(401);
  }

  @Test
  void anyOtherPathNeedsACredentialToo() {
    given().get("/anything").then().statusCode(401);
    given()
        .header("authorization", "Bearer " + TestCredentials.ADMIN_KEY)
        .get("/anything")
        .then()
        .statusCode(404);
  }
}
