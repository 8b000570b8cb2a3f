package dev.corral.egress;

import dev.corral.common.CorralException;
import dev.corral.common.LogBudget;
import dev.corral.proto.v1.GitRepository;
import dev.corral.proto.v1.SessionResource;
import dev.corral.session.Sessions;
import dev.corral.vault.CredentialUnusableException;
import dev.corral.vault.Credentials;
import dev.corral.vault.HttpAuth;
import io.micrometer.core.instrument.MeterRegistry;
import io.smallrye.mutiny.Uni;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpClientOptions;
import io.vertx.core.http.HttpClientRequest;
import io.vertx.core.http.HttpClientResponse;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.RequestOptions;
import io.vertx.core.net.NetSocket;
import io.vertx.core.net.SocketAddress;
import jakarta.enterprise.context.ApplicationScoped;
import java.net.InetAddress;
import java.net.URI;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.jboss.logging.Logger;

/**
 * The git endpoint of a sandbox: {@code http://corral-git/<resource id>}, reached through its
 * egress proxy. It speaks git's smart HTTP for the repositories of the sandbox's own session and
 * nothing else: it finds the repository's real URL, checks its address like any egress, adds the
 * repository's vault credential and forwards the request; the answer comes back without the
 * credential. So git fetch, pull and push work in the sandbox, and no token is ever inside it.
 */
@ApplicationScoped
class GitGateway {

  private static final Logger LOGGER = Logger.getLogger(GitGateway.class);

  /** Lines logged a minute per sandbox: a loop of git requests must not flood the logs. */
  private final LogBudget logBudget = new LogBudget(60);

  /** {@code /<resource id>/<service path>}: the three requests of git's smart HTTP. */
  private static final Pattern PATH =
      Pattern.compile("/(sres_[0-9a-z]{26})/(info/refs|git-upload-pack|git-receive-pack)");

  private static final Set<String> SERVICES = Set.of("git-upload-pack", "git-receive-pack");

  /** Request headers that travel to the git host; every other one stays behind. */
  private static final Set<String> FORWARDED =
      Set.of(
          "accept",
          "accept-language",
          "content-encoding",
          "content-type",
          "git-protocol",
          "pragma",
          "user-agent");

  /** Answer headers that do not travel back (hop by hop, or about the host's authentication). */
  private static final Set<String> DROPPED =
      Set.of(
          "connection",
          "keep-alive",
          "transfer-encoding",
          "content-length",
          "proxy-authenticate",
          "www-authenticate",
          "set-cookie",
          "trailer",
          "upgrade");

  private static final Pattern HEADER_NAME = Pattern.compile("[a-z0-9!#$%&'*+.^_`|~-]{1,128}");

  /** Bytes of an error answer kept (and cleaned of the credential) for the sandbox. */
  private static final int MAX_ERROR_BODY = 16 * 1024;

  private final Sessions sessions;
  private final Credentials credentials;
  private final Destinations destinations;
  private final EgressDenials denials;
  private final EgressConfig config;
  private final Vertx vertx;
  private final MeterRegistry metrics;
  private HttpClient client;

  GitGateway(
      Sessions sessions,
      Credentials credentials,
      Destinations destinations,
      EgressDenials denials,
      EgressConfig config,
      Vertx vertx,
      MeterRegistry metrics) {
    this.sessions = sessions;
    this.credentials = credentials;
    this.destinations = destinations;
    this.denials = denials;
    this.config = config;
    this.vertx = vertx;
    this.metrics = metrics;
  }

  /** A request of git's smart HTTP, for the repository its path names. */
  private record GitRequest(
      String resourceId, String service, String pathAndQuery, HttpMethod method) {}

  /** Where a request goes, and with what. */
  private record Upstream(
      GitRepository repository, URI url, InetAddress address, Optional<HttpAuth> auth) {}

  /**
   * Forwards one request of the sandbox (its head read; {@code rest} is what followed it) and
   * closes the connection after the answer.
   */
  void forward(
      NetSocket connection,
      EgressGrant grant,
      String method,
      dev.corral.common.ProxyWire.Target target,
      String[] lines,
      Buffer rest,
      Closing closing) {
    GitRequest request;
    RequestBody body;
    try {
      request = parse(method, target.pathAndQuery());
      body = RequestBody.of(lines);
    } catch (IllegalArgumentException malformed) {
      answer(connection, 400, malformed.getMessage(), "malformed");
      return;
    }
    if (grant.sessionId().isEmpty()) {
      answer(connection, 404, "this sandbox serves no session, so it has no repository", "unknown");
      return;
    }
    upstream(grant, request)
        .subscribe()
        .with(
            upstream -> send(connection, grant, request, lines, body, rest, upstream, closing),
            failure -> refuse(connection, grant, request, failure));
  }

  private static GitRequest parse(String method, String pathAndQuery) {
    int question = pathAndQuery.indexOf('?');
    String path = question < 0 ? pathAndQuery : pathAndQuery.substring(0, question);
    String query = question < 0 ? "" : pathAndQuery.substring(question + 1);
    Matcher matcher = PATH.matcher(path);
    if (!matcher.matches()) {
      throw new IllegalArgumentException(
          "corral-git serves /<resource id>/info/refs, git-upload-pack and git-receive-pack");
    }
    String service = matcher.group(2);
    if (service.equals("info/refs")) {
      String wanted = query.startsWith("service=") ? query.substring(8) : "";
      if (!method.equals("GET") || !SERVICES.contains(wanted)) {
        throw new IllegalArgumentException(
            "info/refs takes GET with ?service=git-upload-pack or git-receive-pack");
      }
      return new GitRequest(
          matcher.group(1), wanted, "info/refs?service=" + wanted, HttpMethod.GET);
    }
    if (!method.equals("POST") || !query.isEmpty()) {
      throw new IllegalArgumentException(service + " takes POST without a query");
    }
    return new GitRequest(matcher.group(1), service, service, HttpMethod.POST);
  }

  /** The repository of the sandbox's session the request names, its address and credential. */
  private Uni<Upstream> upstream(EgressGrant grant, GitRequest request) {
    return sessions
        .get(grant.tenant(), grant.sessionId())
        .map(session -> repositoryOf(session.getResourcesList(), request.resourceId()))
        .flatMap(
            repository -> {
              URI url = URI.create(stripSlash(repository.getUrl()) + "/" + request.pathAndQuery());
              int port =
                  url.getPort() > 0 ? url.getPort() : url.getScheme().equals("https") ? 443 : 80;
              return destinations
                  .resolve("tenant " + grant.tenant().id(), url.getHost())
                  .invoke(
                      address ->
                          destinations
                              .ownServer(address, port)
                              .ifPresent(
                                  own -> {
                                    throw own;
                                  }))
                  .flatMap(
                      address ->
                          (repository.getCredentialId().isEmpty()
                                  ? Uni.createFrom().item(Optional.<HttpAuth>empty())
                                  : credentials
                                      .authFor(
                                          grant.tenant(),
                                          repository.getCredentialId(),
                                          repository.getUrl(),
                                          dev.corral.common.CredentialUse.GIT_REPOSITORY)
                                      .map(Optional::of))
                              .map(auth -> new Upstream(repository, url, address, auth)));
            });
  }

  private static GitRepository repositoryOf(List<SessionResource> resources, String id) {
    return resources.stream()
        .filter(resource -> resource.getId().equals(id) && resource.hasGitRepository())
        .map(SessionResource::getGitRepository)
        .findFirst()
        .orElseThrow(() -> new UnknownRepositoryException(id));
  }

  private static String stripSlash(String url) {
    return url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
  }

  private void send(
      NetSocket connection,
      EgressGrant grant,
      GitRequest request,
      String[] lines,
      RequestBody body,
      Buffer rest,
      Upstream upstream,
      Closing closing) {
    URI url = upstream.url();
    boolean tls = url.getScheme().equals("https");
    int port = url.getPort() > 0 ? url.getPort() : tls ? 443 : 80;
    String lane = grant.tenant().id() + " " + upstream.address().getHostAddress() + " " + port;
    if (!underWay.enter(lane, MAX_PER_TENANT_AND_HOST)) {
      answer(
          connection,
          503,
          "this tenant has "
              + MAX_PER_TENANT_AND_HOST
              + " git requests to "
              + url.getHost()
              + " under way on this replica; retry when one ends",
          "busy");
      return;
    }
    closing.add(() -> underWay.leave(lane));
    RequestOptions options =
        new RequestOptions()
            .setMethod(request.method())
            .setServer(SocketAddress.inetSocketAddress(port, upstream.address().getHostAddress()))
            .setHost(url.getHost())
            .setPort(port)
            .setSsl(tls)
            .setURI(url.getRawPath() + (url.getRawQuery() == null ? "" : "?" + url.getRawQuery()))
            .setFollowRedirects(false)
            .setTimeout(config.idleTimeout().toMillis());
    client()
        .request(options)
        .onSuccess(
            outgoing -> {
              // the host's connection lives no longer than the sandbox's, whatever the host does
              closing.add(() -> outgoing.reset());
              headers(outgoing, lines, body, upstream.auth());
              outgoing
                  .response()
                  .onSuccess(response -> answer(connection, grant, request, upstream, response))
                  .onFailure(failure -> unreachable(connection, grant, request, upstream, failure));
              streamBody(connection, outgoing, body, rest);
            })
        .onFailure(failure -> unreachable(connection, grant, request, upstream, failure));
  }

  /** The sandbox's headers git needs (and no other), the credential's, and the body's length. */
  private static void headers(
      HttpClientRequest outgoing, String[] lines, RequestBody body, Optional<HttpAuth> auth) {
    for (int i = 1; i < lines.length; i++) {
      int colon = lines[i].indexOf(':');
      if (colon > 0
          && FORWARDED.contains(lines[i].substring(0, colon).trim().toLowerCase(Locale.ROOT))) {
        outgoing.putHeader(
            lines[i].substring(0, colon).trim(), lines[i].substring(colon + 1).trim());
      }
    }
    // an answer in plain bytes: an error page is cleaned of the credential as it is read
    outgoing.putHeader("Accept-Encoding", "identity");
    auth.ifPresent(value -> outgoing.putHeader(value.headerName(), value.headerValue()));
    if (body.chunked()) {
      outgoing.setChunked(true);
    } else if (body.length() > 0) {
      outgoing.putHeader("Content-Length", Long.toString(body.length()));
    }
  }

  /** Copies the request's body from the sandbox to the git host, as fast as the host takes it. */
  private static void streamBody(
      NetSocket connection, HttpClientRequest outgoing, RequestBody body, Buffer rest) {
    if (body.done()) {
      outgoing.end();
      return;
    }
    io.vertx.core.Handler<Buffer> feed =
        bytes -> {
          List<Buffer> data;
          try {
            data = body.feed(bytes);
          } catch (IllegalArgumentException malformed) {
            outgoing.reset();
            EgressProxy.answer(connection, 400, malformed.getMessage());
            return;
          }
          data.forEach(outgoing::write);
          if (body.done()) {
            connection.handler(null);
            outgoing.end();
          } else if (outgoing.writeQueueFull()) {
            connection.pause();
            outgoing.drainHandler(ignored -> connection.resume());
          }
        };
    if (rest.length() > 0) {
      feed.handle(rest);
    }
    if (!body.done()) {
      connection.endHandler(
          ignored -> {
            if (!body.done()) {
              outgoing.reset();
            }
          });
      connection.handler(feed);
      connection.resume();
    }
  }

  /** The git host's answer, to the sandbox: its status and content, then the connection closes. */
  private void answer(
      NetSocket connection,
      EgressGrant grant,
      GitRequest request,
      Upstream upstream,
      HttpClientResponse response) {
    int status = response.statusCode();
    count(request, status < 400 ? "ok" : "refused_by_host");
    LogBudget.Admission admission = logBudget.admit(grant.sandboxId());
    if (admission != LogBudget.Admission.DROP) {
      grant
          .logFields()
          .log(
              () ->
                  LOGGER.infof(
                      "sandbox=%s sessionId=%s tenant=%s git %s %s -> %d%s",
                      grant.sandboxId(),
                      grant.sessionId(),
                      grant.tenant().id(),
                      request.service(),
                      upstream.repository().getUrl(),
                      status,
                      admission.note("git requests")));
    }
    if (status == 401 || status == 407) {
      EgressProxy.answer(
          connection,
          403,
          "the git host refused "
              + (upstream.auth().isPresent()
                  ? "the repository's credential " + upstream.repository().getCredentialId()
                  : "the request: the repository has no credential")
              + " (HTTP "
              + status
              + ")");
      return;
    }
    StringBuilder head =
        new StringBuilder("HTTP/1.1 ")
            .append(status)
            .append(' ')
            .append(clean(upstream, response.statusMessage()))
            .append("\r\n");
    String coding = response.getHeader("content-encoding");
    // an error page the host compressed anyway cannot be cleaned as it is read: it is not shown
    boolean hidden = status >= 300 && coding != null && !coding.trim().equalsIgnoreCase("identity");
    for (Map.Entry<String, String> header : response.headers()) {
      String name = header.getKey().toLowerCase(Locale.ROOT);
      if (!DROPPED.contains(name)
          && HEADER_NAME.matcher(name).matches()
          && !(hidden && name.equals("content-encoding"))) {
        head.append(header.getKey())
            .append(": ")
            .append(clean(upstream, header.getValue()))
            .append("\r\n");
      }
    }
    head.append("Connection: close\r\n\r\n");
    connection.write(Buffer.buffer(head.toString(), "ISO-8859-1"));
    if (hidden) {
      response.exceptionHandler(ignored -> {}); // the reset below, not worth a log line
      response.request().reset();
      connection
          .end(
              Buffer.buffer(
                  "The git host's error page came encoded ("
                      + clean(upstream, coding)
                      + ") and could not be cleaned of the repository's credential, so it is not"
                      + " shown.",
                  "ISO-8859-1"))
          .onComplete(done -> connection.close());
      return;
    }
    if (status >= 300) {
      // An error page may quote the request, its credential included: it is cleaned first, then
      // cut (a cut through a secret would leave a part of it that no longer matches).
      int keep = MAX_ERROR_BODY + upstream.auth().map(HttpAuth::longestForm).orElse(0);
      Buffer kept = Buffer.buffer();
      Runnable finish =
          () -> {
            String read = kept.toString("ISO-8859-1");
            String cleaned = clean(upstream, read);
            // each secret scrubbed shortens the text: the cut moves back by as much, so that no
            // part of a secret cut off at the end of what was read moves into what is shown
            int cut =
                Math.max(
                    0,
                    Math.min(
                        cleaned.length(), MAX_ERROR_BODY - (read.length() - cleaned.length())));
            connection
                .end(Buffer.buffer(cleaned.substring(0, cut), "ISO-8859-1"))
                .onComplete(done -> connection.close());
          };
      response.handler(
          bytes -> {
            if (kept.length() < keep) {
              kept.appendBuffer(bytes, 0, Math.min(bytes.length(), keep - kept.length()));
            }
            if (kept.length() >= keep) {
              // the rest would be thrown away: it is not waited for (a host may drip it for ever)
              response.handler(null);
              response.endHandler(null);
              response.exceptionHandler(null);
              response.request().reset();
              finish.run();
            }
          });
      response.endHandler(ignored -> finish.run());
      response.exceptionHandler(ignored -> connection.close());
      return;
    }
    response
        .pipeTo(connection)
        .onComplete(
            piped -> {
              // a sandbox that went away mid-answer: the host's answer is not read to its end
              response.request().reset();
              connection.close();
            });
  }

  private static String clean(Upstream upstream, String text) {
    String once = text.replace("\r", " ").replace("\n", " ");
    return upstream.auth().map(auth -> auth.scrub(once)).orElse(once);
  }

  private void unreachable(
      NetSocket connection,
      EgressGrant grant,
      GitRequest request,
      Upstream upstream,
      Throwable failure) {
    count(request, "unreachable");
    String reason = clean(upstream, String.valueOf(failure.getMessage()));
    if (logBudget.admit(grant.sandboxId()) != LogBudget.Admission.DROP) {
      grant
          .logFields()
          .log(
              () ->
                  LOGGER.infof(
                      "sandbox=%s sessionId=%s git %s %s failed: %s",
                      grant.sandboxId(),
                      grant.sessionId(),
                      request.service(),
                      upstream.url().getHost(),
                      LogBudget.cut(reason, 512)));
    }
    EgressProxy.answer(
        connection, 502, "the git host " + upstream.url().getHost() + " failed: " + reason);
  }

  private void refuse(
      NetSocket connection, EgressGrant grant, GitRequest request, Throwable failure) {
    if (failure instanceof UnknownRepositoryException unknown) {
      count(request, "unknown");
      answer(connection, 404, unknown.getMessage(), "unknown");
    } else if (failure instanceof EgressRefusedException refused) {
      count(request, "refused");
      metrics.counter("corral.egress.denied", "reason", refused.reason()).increment();
      denials.record(grant, "corral-git/" + request.resourceId(), 80, refused.getMessage());
      EgressProxy.answer(connection, 403, "the repository's host: " + refused.getMessage());
    } else if (failure instanceof CredentialUnusableException unusable) {
      count(request, "credential");
      EgressProxy.answer(connection, 403, unusable.getMessage());
    } else if (failure instanceof CorralException known) {
      count(request, "refused");
      EgressProxy.answer(connection, 403, known.getMessage());
    } else {
      count(request, "failed");
      grant
          .logFields()
          .log(
              () ->
                  LOGGER.warnf(
                      failure,
                      "sandbox=%s git request %s failed",
                      grant.sandboxId(),
                      request.resourceId()));
      EgressProxy.answer(connection, 502, "corral's git gateway failed; see corral's log");
    }
  }

  private void answer(NetSocket connection, int status, String reason, String outcome) {
    metrics.counter("corral.git.requests", "service", "none", "outcome", outcome).increment();
    EgressProxy.answer(connection, status, reason);
  }

  private void count(GitRequest request, String outcome) {
    metrics
        .counter("corral.git.requests", "service", request.service(), "outcome", outcome)
        .increment();
  }

  private synchronized HttpClient client() {
    if (client == null) {
      client =
          vertx.createHttpClient(
              new HttpClientOptions()
                  .setKeepAlive(false)
                  .setConnectTimeout((int) config.connectTimeout().toMillis())
                  .setIdleTimeout((int) config.idleTimeout().toSeconds())
                  .setMaxPoolSize(64)
                  // requests for a host past its 64 connections wait in a bounded queue, not for
                  // ever in an unbounded one
                  .setMaxWaitQueueSize(MAX_WAITING_PER_HOST));
    }
    return client;
  }

  /** Git requests that may wait for a connection to one host (64 are open at most). */
  static final int MAX_WAITING_PER_HOST = 256;

  /**
   * Git requests one tenant may have under way to one host address on this replica, open or
   * waiting: half the host's connections, so that one tenant's slow fetches leave room for others'.
   */
  static final int MAX_PER_TENANT_AND_HOST = 32;

  /** Requests under way by tenant and host address ({@link #MAX_PER_TENANT_AND_HOST}). */
  private final dev.corral.common.InFlightCounts underWay = new dev.corral.common.InFlightCounts();

  /** Requests under way (for tests). */
  int underWay() {
    return underWay.total();
  }

  /** The request names a resource its session does not have. */
  static final class UnknownRepositoryException extends RuntimeException {

    UnknownRepositoryException(String id) {
      super("this sandbox's session has no repository " + id, null, false, false);
    }
  }
}
