package dev.corral.common;

import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.resolver.dns.DnsNameResolver;
import io.netty.resolver.dns.DnsNameResolverBuilder;
import io.netty.resolver.dns.NoopAuthoritativeDnsServerCache;
import io.netty.resolver.dns.NoopDnsCache;
import io.netty.resolver.dns.NoopDnsCnameCache;
import io.netty.util.concurrent.Future;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.Cancellable;
import io.smallrye.mutiny.subscription.UniEmitter;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import java.net.InetAddress;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Name lookups for names a tenant or its sandboxes chose (the egress proxy's destinations, the
 * hosts of MCP servers and token endpoints). {@code localhost} is loopback; other names are asked
 * of the name servers of {@code /etc/resolv.conf} (its search domains and {@code ndots} included,
 * read at start, as {@code /etc/hosts} is) after {@code /etc/hosts}, by netty's non-blocking
 * resolver on one thread of its own ({@code corral-dns}; not Vert.x's, which Quarkus turns into the
 * JDK's blocking one unless {@code quarkus.vertx.use-async-dns} is set): a lookup holds no thread
 * while it waits, and one that outlives its time limit is cancelled and gives its place back at
 * once. A name server that never answers therefore holds up nothing but the lookups made of it.
 * Each asker (a tenant) still has at most {@link #RUNNING_PER_ASKER} lookups running; its others
 * wait their turn (at most {@link #WAITING_PER_ASKER}, then they are refused), so that one tenant's
 * flood of names does not become a flood at the name servers.
 *
 * <p>Answers are not cached here (netty's caches are no-ops): a sandbox that asks for endless
 * made-up names would otherwise fill the cache until their time to live ran out. The name servers
 * of the host or cluster cache.
 */
@ApplicationScoped
public class NameLookups {

  static final int RUNNING_PER_ASKER = 8;
  static final int WAITING_PER_ASKER = 256;

  private final Map<String, Asker> askers = new HashMap<>();
  private Resolver resolver; // the system's is made at the first lookup
  private Runnable close = () -> {};

  /** What looks a name up: every address of the name, or a failure; cancelled when unsubscribed. */
  public interface Resolver {
    Uni<List<InetAddress>> addresses(String name);
  }

  /**
   * Lookups by the system's name servers. It makes nothing yet: ArC calls this constructor for the
   * bean's client proxy too, which is never closed.
   */
  NameLookups() {}

  /** Lookups made by {@code resolver} instead of the system's name servers. */
  public NameLookups(Resolver resolver) {
    this.resolver = resolver;
  }

  private synchronized Resolver resolver() {
    if (resolver == null) {
      NioEventLoopGroup loop = new NioEventLoopGroup(1, DaemonThreads.named("corral-dns"));
      DnsNameResolver system =
          new DnsNameResolverBuilder(loop.next())
              .datagramChannelType(NioDatagramChannel.class)
              .socketChannelType(NioSocketChannel.class) // answers too long for a datagram
              .resolveCache(NoopDnsCache.INSTANCE)
              .cnameCache(NoopDnsCnameCache.INSTANCE)
              .authoritativeDnsServerCache(NoopAuthoritativeDnsServerCache.INSTANCE)
              .queryTimeoutMillis(5_000)
              .build();
      resolver = name -> lookUp(system, name);
      close =
          () -> {
            system.close();
            loop.shutdownGracefully(0, 1, TimeUnit.SECONDS);
          };
    }
    return resolver;
  }

  private static Uni<List<InetAddress>> lookUp(DnsNameResolver system, String name) {
    String lower = name.toLowerCase(Locale.ROOT);
    if (lower.equals("localhost") || lower.endsWith(".localhost")) {
      // RFC 6761: loopback, never a question to a name server (as the JDK's resolver answers it)
      return Uni.createFrom().item(List.of(InetAddress.getLoopbackAddress(), LOOPBACK_6));
    }
    return Uni.createFrom()
        .emitter(
            emitter -> {
              Future<List<InetAddress>> asked = system.resolveAll(name);
              emitter.onTermination(() -> asked.cancel(false));
              asked.addListener(
                  done -> {
                    if (done.isSuccess()) {
                      emitter.complete(asked.getNow());
                    } else if (!done.isCancelled()) {
                      emitter.fail(done.cause());
                    }
                  });
            });
  }

  /** Why a lookup failed: the name does not resolve, in time, or too many lookups wait. */
  public static final class LookupFailedException extends RuntimeException {
    LookupFailedException(String message) {
      super(message, null, false, false);
    }
  }

  /** One asker's lookups: how many run, and those waiting for their turn. */
  private static final class Asker {
    int running;
    final ArrayDeque<Lookup> waiting = new ArrayDeque<>();
  }

  /**
   * Every address of {@code name}, looked up for {@code asker}; fails with {@link
   * LookupFailedException} if it does not resolve within {@code timeout} (waiting for its turn
   * included) or too many of the asker's lookups wait.
   */
  public Uni<List<InetAddress>> lookup(String asker, String name, Duration timeout) {
    return Uni.createFrom()
        .<List<InetAddress>>emitter(
            emitter -> {
              Lookup lookup = new Lookup(asker, name, emitter);
              emitter.onTermination(lookup::end);
              enqueue(lookup);
            })
        .ifNoItem()
        .after(timeout)
        .failWith(() -> new LookupFailedException(name + " could not be resolved in time"));
  }

  /** One lookup: waiting for its turn, running (it holds one of its asker's places), or over. */
  private final class Lookup {
    private final String asker;
    private final String name;
    private final UniEmitter<? super List<InetAddress>> emitter;
    private final AtomicBoolean over = new AtomicBoolean();
    private final AtomicBoolean released = new AtomicBoolean();
    private final AtomicReference<Cancellable> running = new AtomicReference<>();

    Lookup(String asker, String name, UniEmitter<? super List<InetAddress>> emitter) {
      this.asker = asker;
      this.name = name;
      this.emitter = emitter;
    }

    /** Its turn came: it asks, or, if it is already over, gives its place on. */
    void start() {
      if (over.get()) {
        release();
        return;
      }
      running.set(
          resolver()
              .addresses(name)
              .onTermination()
              .invoke(this::release)
              .subscribe()
              .with(
                  addresses -> emitter.complete(List.copyOf(addresses)),
                  failed ->
                      emitter.fail(new LookupFailedException(name + " could not be resolved"))));
      if (over.get()) { // it ended while it started
        cancel();
      }
    }

    /** It was answered, failed, timed out or was given up: a running question is cancelled. */
    void end() {
      over.set(true);
      cancel();
    }

    private void cancel() {
      Cancellable asked = running.getAndSet(null);
      if (asked != null) {
        asked.cancel();
        release();
      }
    }

    private void release() {
      if (released.compareAndSet(false, true)) {
        next(asker);
      }
    }
  }

  private void enqueue(Lookup lookup) {
    synchronized (askers) {
      Asker own = askers.computeIfAbsent(lookup.asker, key -> new Asker());
      if (own.running >= RUNNING_PER_ASKER) {
        if (own.waiting.size() >= WAITING_PER_ASKER) {
          throw new LookupFailedException(
              "too many name lookups wait for " + lookup.asker + " (" + WAITING_PER_ASKER + ")");
        }
        own.waiting.add(lookup);
        return;
      }
      own.running++;
    }
    soon(lookup);
  }

  /** A lookup of {@code asker} ended: the next one waiting takes its place. */
  private void next(String asker) {
    Lookup waiting;
    synchronized (askers) {
      Asker own = askers.get(asker);
      waiting = own.waiting.poll();
      if (waiting == null && --own.running == 0) {
        askers.remove(asker);
      }
    }
    if (waiting != null) {
      soon(waiting);
    }
  }

  /**
   * Starts {@code lookup} on this thread, after the lookups this thread is starting already: a
   * lookup answered at once starts the next waiting one, which must not nest a frame per lookup.
   */
  private static void soon(Lookup lookup) {
    ArrayDeque<Lookup> starting = STARTING.get();
    if (starting != null) {
      starting.add(lookup);
      return;
    }
    starting = new ArrayDeque<>();
    STARTING.set(starting);
    try {
      for (Lookup next = lookup; next != null; next = starting.poll()) {
        next.start();
      }
    } finally {
      STARTING.remove();
    }
  }

  private static final ThreadLocal<ArrayDeque<Lookup>> STARTING = new ThreadLocal<>();

  @PreDestroy
  synchronized void stop() {
    close.run();
  }

  private static final InetAddress LOOPBACK_6 = loopback6();

  private static InetAddress loopback6() {
    try {
      return InetAddress.getByAddress(
          "localhost", new byte[] {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
    } catch (java.net.UnknownHostException impossible) {
      throw new IllegalStateException(impossible);
    }
  }
}
