package dev.corral.rest;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.corral.common.InvalidArgumentException;
import dev.corral.common.NotFoundException;
import dev.corral.common.Tenant;
import dev.corral.proto.v1.BasicAuth;
import dev.corral.proto.v1.CreateCredentialRequest;
import dev.corral.proto.v1.SessionBudget;
import dev.corral.proto.v1.SessionResource;
import dev.corral.proto.v1.SessionServiceGrpc;
import dev.corral.proto.v1.SessionStatus;
import dev.corral.session.Sessions;
import dev.corral.vault.Credentials;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import io.vertx.ext.web.Router;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@code /v1/sessions} and their resources, on {@link Sessions}. A repository given with an {@code
 * authorization_token} (the API's way) has the token stored in the vault first, as a credential
 * bound to the repository's host; the session names that credential, never the token.
 */
@ApplicationScoped
class SessionRoutes {

  /**
   * The metadata key that marks a credential made from a repository's authorization_token; its
   * value is the session it was given to ({@link #PENDING} until the session has an id).
   */
  static final String TOKEN_MARK = "corral_repository_token";

  private static final String PENDING = "pending";

  private final Sessions sessions;
  private final Credentials credentials;

  SessionRoutes(Sessions sessions, Credentials credentials) {
    this.sessions = sessions;
    this.credentials = credentials;
  }

  void install(Router router) {
    router
        .post("/v1/sessions")
        .handler(RestCall.json(SessionServiceGrpc.getCreateSessionMethod(), this::create));
    router
        .get("/v1/sessions")
        .handler(RestCall.json(SessionServiceGrpc.getListSessionsMethod(), this::list));
    router
        .get("/v1/sessions/:session_id")
        .handler(RestCall.json(SessionServiceGrpc.getGetSessionMethod(), this::retrieve));
    router
        .post("/v1/sessions/:session_id/archive")
        .handler(RestCall.json(SessionServiceGrpc.getArchiveSessionMethod(), this::archive));
    router
        .delete("/v1/sessions/:session_id")
        .handler(RestCall.json(SessionServiceGrpc.getDeleteSessionMethod(), this::delete));
    router
        .get("/v1/sessions/:session_id/resources")
        .handler(
            RestCall.json(SessionServiceGrpc.getListSessionResourcesMethod(), this::resources));
    router
        .post("/v1/sessions/:session_id/resources")
        .handler(
            RestCall.json(SessionServiceGrpc.getAddSessionResourceMethod(), this::addResource));
    router
        .get("/v1/sessions/:session_id/resources/:resource_id")
        .handler(RestCall.json(SessionServiceGrpc.getListSessionResourcesMethod(), this::resource));
    router
        .delete("/v1/sessions/:session_id/resources/:resource_id")
        .handler(
            RestCall.json(
                SessionServiceGrpc.getRemoveSessionResourceMethod(), this::removeResource));
  }

  private Uni<ObjectNode> create(RestCall call) {
    ObjectNode body = call.body();
    SessionShapes.AgentRef agent = SessionShapes.agent(body);
    List<String> vaultIds = Fields.strings(body, "vault_ids", "vault_ids");
    Fields.unsupported(
        body, "budget", "budget", "corral's budgets are in tokens: use corral_budget");
    SessionBudget budget =
        Fields.optionalObject(body, "corral_budget", "corral_budget")
            .map(
                limits ->
                    SessionBudget.newBuilder()
                        .setMaxTokens(
                            Fields.optionalLong(limits, "max_tokens", "corral_budget.max_tokens")
                                .orElse(0L))
                        .setMaxModelRequests(
                            Fields.optionalInt(
                                    limits,
                                    "max_model_requests",
                                    "corral_budget.max_model_requests")
                                .orElse(0))
                        .build())
            .orElse(SessionBudget.getDefaultInstance());
    List<ObjectNode> requested = Fields.objects(body, "resources", "resources");
    var initial = SessionShapes.initialEvents(body);
    String title = Fields.optionalString(body, "title", "title").orElse("");
    Map<String, String> metadata =
        Fields.metadata(body, "metadata", "metadata")
            .map(AgentShapes::withoutNulls)
            .orElse(Map.of());
    String environment = Fields.optionalString(body, "environment_id", "environment_id").orElse("");
    // the request is checked before any token given with its resources is stored in the vault
    List<SessionResource> shapes = new ArrayList<>();
    for (int i = 0; i < requested.size(); i++) {
      shapes.add(SessionShapes.resource(requested.get(i), "resources[" + i + "]", ""));
    }
    java.util.function.Function<List<SessionResource>, Sessions.NewSession> newSession =
        resources ->
            new Sessions.NewSession(
                agent.id(),
                agent.version(),
                title,
                metadata,
                initial,
                budget,
                environment,
                resources,
                vaultIds);
    List<String> stored = new ArrayList<>();
    // the session's rules name the gRPC request's fields; the client sent these
    FieldNames names =
        FieldNames.of(
            "agent_id",
            body.get("agent").isTextual() ? "agent" : "agent.id",
            "agent_version",
            "agent.version",
            "budget",
            "corral_budget");
    return names
        .on(
            restResourceNames(
                Uni.createFrom()
                    .item(
                        () -> {
                          Sessions.checkNew(newSession.apply(shapes), call.principal().emitter());
                          return shapes;
                        })
                    .flatMap(
                        checked ->
                            repositories(call.tenant(), requested, "resources", stored, PENDING))
                    .flatMap(
                        resources ->
                            sessions.create(
                                call.tenant(),
                                call.principal().emitter(),
                                newSession.apply(resources)))))
        .onFailure()
        .call(failure -> forget(call.tenant(), stored))
        .call(session -> own(call.tenant(), stored, session.getId()))
        .map(SessionShapes::session);
  }

  /** Marks the credentials made from tokens as the session's, now that it has an id. */
  private Uni<Void> own(Tenant tenant, List<String> stored, String sessionId) {
    return eachCredential(
        stored,
        id ->
            credentials.update(
                tenant,
                dev.corral.proto.v1.UpdateCredentialRequest.newBuilder()
                    .setCredentialId(id)
                    .setMetadata(
                        dev.corral.proto.v1.Metadata.newBuilder().putEntries(TOKEN_MARK, sessionId))
                    .build()));
  }

  /**
   * Does {@code step} for each credential in turn; one that fails (gone meanwhile, say) does not
   * stop the others, and is left as it is.
   */
  private static Uni<Void> eachCredential(
      List<String> ids, java.util.function.Function<String, Uni<?>> step) {
    return Multi.createFrom()
        .iterable(List.copyOf(ids))
        .onItem()
        .transformToUniAndConcatenate(id -> step.apply(id).onFailure().recoverWithNull())
        .collect()
        .last()
        .replaceWithVoid();
  }

  /**
   * The resources of a request; tokens given with them are stored in the vault first (their ids are
   * collected in {@code stored}, so that a failed request can remove them).
   */
  private Uni<List<SessionResource>> repositories(
      Tenant tenant, List<ObjectNode> requested, String field, List<String> stored, String owner) {
    return Multi.createFrom()
        .range(0, requested.size())
        .onItem()
        .transformToUniAndConcatenate(
            i -> repository(tenant, requested.get(i), field + "[" + i + "]", stored, owner))
        .collect()
        .asList();
  }

  private Uni<SessionResource> repository(
      Tenant tenant, ObjectNode resource, String at, List<String> stored, String owner) {
    SessionResource shape = SessionShapes.resource(resource, at, "");
    var token = Fields.optionalString(resource, "authorization_token", at + ".authorization_token");
    var credential = Fields.optionalString(resource, "credential_id", at + ".credential_id");
    if (token.isPresent() && credential.isPresent()) {
      throw new InvalidArgumentException(
          at + ".authorization_token", "give an authorization_token or a credential_id, not both");
    }
    if (credential.isPresent()) {
      return Uni.createFrom().item(withCredential(shape, credential.get()));
    }
    if (token.isEmpty()) {
      return Uni.createFrom().item(shape);
    }
    String url = shape.getGitRepository().getUrl();
    CreateCredentialRequest request =
        CreateCredentialRequest.newBuilder()
            .setName(credentialName(url))
            .putMetadata(TOKEN_MARK, owner)
            .setBasic(
                BasicAuth.newBuilder()
                    .addHosts(SessionShapes.origin(url, at + ".url"))
                    .setUsername("x-access-token")
                    .setPassword(token.get()))
            .build();
    // the vault's rules name the credential's fields; the client sent the resource's
    return FieldNames.of(
            "basic.password", at + ".authorization_token",
            "basic.hosts[0]", at + ".url",
            "basic.hosts", at + ".url")
        .on(credentials.create(tenant, request))
        .invoke(created -> stored.add(created.getId()))
        .map(created -> withCredential(shape, created.getId()));
  }

  private static final java.util.regex.Pattern GIT_REPOSITORY_FIELD =
      java.util.regex.Pattern.compile(
          "^(resources\\[[0-9]+\\]|resource)\\.git_repository(?=$|[.\\[])");

  /**
   * {@code call}, its INVALID_ARGUMENT naming a resource's field as a REST client sent it: {@code
   * resources[0].credential_id}, which the session's rules call {@code
   * resources[0].git_repository.credential_id}.
   */
  private static <T> Uni<T> restResourceNames(Uni<T> call) {
    return FieldNames.replacing(call, GIT_REPOSITORY_FIELD, "$1");
  }

  /**
   * The name of the credential a repository's token is kept in: within a credential name's 256
   * characters, whatever the URL's length (up to 2,048).
   */
  static String credentialName(String url) {
    return VaultShapes.fitName("repository " + url);
  }

  private static SessionResource withCredential(SessionResource resource, String credential) {
    return resource.toBuilder()
        .setGitRepository(resource.getGitRepository().toBuilder().setCredentialId(credential))
        .build();
  }

  private Uni<Void> forget(Tenant tenant, List<String> stored) {
    return eachCredential(stored, id -> credentials.delete(tenant, id));
  }

  private Uni<ObjectNode> list(RestCall call) {
    call.refuseFilters("created_at", "agent_version", "deployment_id", "memory_store_id");
    String order = call.query("order");
    if (order != null && !order.equals("desc")) {
      throw new InvalidArgumentException("order", "must be desc: sessions are listed newest first");
    }
    List<SessionStatus> statuses = new ArrayList<>();
    List<String> requested = call.queryAll("statuses");
    for (int i = 0; i < requested.size(); i++) {
      statuses.add(SessionShapes.status(requested.get(i), "statuses[" + i + "]"));
    }
    String agent = call.query("agent_id");
    return RestCall.listing(
            () ->
                sessions.list(
                    call.tenant(),
                    call.limit(Sessions.MAX_PAGE_SIZE),
                    call.page(),
                    agent == null ? "" : agent,
                    statuses,
                    call.flag("include_archived")))
        .map(
            page -> {
              ObjectNode node = Shapes.page(page, SessionShapes::session);
              node.putNull("prev_page");
              return node;
            });
  }

  private Uni<ObjectNode> retrieve(RestCall call) {
    return sessions.get(call.tenant(), call.path("session_id")).map(SessionShapes::session);
  }

  private Uni<ObjectNode> archive(RestCall call) {
    return sessions.archive(call.tenant(), call.path("session_id")).map(SessionShapes::session);
  }

  private Uni<ObjectNode> delete(RestCall call) {
    String id = call.path("session_id");
    return sessions
        .get(call.tenant(), id)
        .flatMap(
            session ->
                sessions
                    .delete(call.tenant(), id)
                    .call(
                        () ->
                            forgetTokens(call.tenant(), id, session.getResourcesList(), List.of())))
        .map(ignored -> Shapes.object().put("id", id).put("type", "session_deleted"));
  }

  private static java.util.stream.Stream<String> credentialIds(List<SessionResource> resources) {
    return resources.stream()
        .filter(SessionResource::hasGitRepository)
        .map(resource -> resource.getGitRepository().getCredentialId())
        .filter(credential -> !credential.isEmpty())
        .distinct();
  }

  /**
   * Deletes the credentials made from repository tokens given to session {@code sessionId} with
   * {@code gone} (they belong to those resources, and no vault route lists them), once the
   * resources are gone: only those marked as that session's, and none that a resource it keeps
   * ({@code kept}) still names.
   */
  private Uni<Void> forgetTokens(
      Tenant tenant, String sessionId, List<SessionResource> gone, List<SessionResource> kept) {
    java.util.Set<String> stillNamed =
        credentialIds(kept).collect(java.util.stream.Collectors.toSet());
    List<String> ids =
        credentialIds(gone).filter(credential -> !stillNamed.contains(credential)).toList();
    return eachCredential(
        ids,
        credential ->
            credentials
                .get(tenant, credential)
                .flatMap(
                    found ->
                        sessionId.equals(found.getMetadataMap().get(TOKEN_MARK))
                            ? credentials.delete(tenant, credential)
                            : Uni.createFrom().voidItem()));
  }

  /**
   * A session's resources in the order they were added: {@code limit} of them (all without one),
   * after the resource whose id {@code page} is.
   */
  private Uni<ObjectNode> resources(RestCall call) {
    int limit = call.limit(100);
    String page = call.page();
    return sessions
        .get(call.tenant(), call.path("session_id"))
        .map(
            session -> {
              List<SessionResource> all = session.getResourcesList();
              int from = 0;
              if (!page.isEmpty()) {
                from =
                    java.util.stream.IntStream.range(0, all.size())
                            .filter(i -> all.get(i).getId().equals(page))
                            .findFirst()
                            .orElseThrow(
                                () ->
                                    new InvalidArgumentException(
                                        "page",
                                        "is not a cursor of this list (a next_page it gave, whose"
                                            + " resource is still there)"))
                        + 1;
              }
              int to = limit == 0 ? all.size() : Math.min(all.size(), from + limit);
              ObjectNode node = Shapes.object();
              var data = node.putArray("data");
              all.subList(from, to)
                  .forEach(resource -> data.add(SessionShapes.resource(resource, session)));
              if (to < all.size()) {
                node.put("next_page", all.get(to - 1).getId());
              } else {
                node.putNull("next_page");
              }
              return node;
            });
  }

  private Uni<ObjectNode> resource(RestCall call) {
    String id = call.path("resource_id");
    return sessions
        .get(call.tenant(), call.path("session_id"))
        .map(
            session ->
                session.getResourcesList().stream()
                    .filter(resource -> resource.getId().equals(id))
                    .findFirst()
                    .map(resource -> SessionShapes.resource(resource, session))
                    .orElseThrow(() -> new NotFoundException("session resource", id)));
  }

  private Uni<ObjectNode> addResource(RestCall call) {
    ObjectNode body = call.body();
    String sessionId = call.path("session_id");
    List<String> stored = new ArrayList<>();
    return restResourceNames(
            Uni.createFrom()
                .item(
                    () -> {
                      // checked before any token given with it is stored in the vault, as at
                      // create
                      try {
                        Sessions.checkResources(
                            List.of(SessionShapes.resource(body, "resource", "")));
                      } catch (InvalidArgumentException invalid) {
                        throw new InvalidArgumentException(
                            invalid.field().replaceFirst("^resources\\[0\\]", "resource"),
                            invalid.problem());
                      }
                      return body;
                    })
                .flatMap(checked -> repository(call.tenant(), body, "resource", stored, sessionId))
                .flatMap(resource -> sessions.addResource(call.tenant(), sessionId, resource)))
        .onFailure()
        .call(failure -> forget(call.tenant(), stored))
        .flatMap(
            added ->
                sessions
                    .get(call.tenant(), sessionId)
                    .map(session -> SessionShapes.resource(added, session)));
  }

  private Uni<ObjectNode> removeResource(RestCall call) {
    String id = call.path("resource_id");
    String sessionId = call.path("session_id");
    return sessions
        .get(call.tenant(), sessionId)
        .flatMap(
            session ->
                sessions
                    .removeResource(call.tenant(), sessionId, id)
                    .call(
                        () ->
                            forgetTokens(
                                call.tenant(),
                                sessionId,
                                session.getResourcesList().stream()
                                    .filter(resource -> resource.getId().equals(id))
                                    .toList(),
                                session.getResourcesList().stream()
                                    .filter(resource -> !resource.getId().equals(id))
                                    .toList())))
        .map(ignored -> Shapes.object().put("id", id).put("type", "session_resource_deleted"));
  }
}
