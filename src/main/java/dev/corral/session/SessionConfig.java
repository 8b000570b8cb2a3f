package dev.corral.session;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;

/** Settings of the session log ({@code corral.session.*}). */
@ConfigMapping(prefix = "corral.session")
public interface SessionConfig {

  /**
   * How often a replica checks the head of every session a reader waits on. This bounds how late a
   * reader learns of an event appended on another replica when a notification is lost.
   */
  @WithDefault("500ms")
  Duration pollInterval();

  /**
   * Use PostgreSQL LISTEN/NOTIFY to wake readers on other replicas at once ({@code
   * corral.session.listen-notify}).
   */
  @WithDefault("true")
  boolean listenNotify();

  /**
   * How long a replica gathers appends before it announces them to other replicas with one NOTIFY.
   * Readers on the appending replica are woken at once regardless.
   */
  @WithDefault("2ms")
  Duration notifyLinger();

  /**
   * How often a replica says hello on the NOTIFY channel. A replica sends per-append notifications
   * only while it has heard another replica's hello within three intervals.
   */
  @WithDefault("5s")
  Duration helloInterval();

  /**
   * Live event streams (gRPC StreamEvents and SSE) one tenant may have open on one replica; one
   * more is refused with RESOURCE_EXHAUSTED.
   */
  @WithDefault("1000")
  int maxStreamsPerTenant();

  /**
   * Live event streams of all tenants together one replica serves; one more is refused with
   * RESOURCE_EXHAUSTED.
   */
  @WithDefault("10000")
  int maxStreams();

  /** Events a live stream reads from the database at a time. */
  @WithDefault("256")
  int streamPageSize();

  /**
   * Page reads of one tenant's logs (GetEvents, ListEvents) that run at once on one replica; each
   * holds a connection of the replica's pool while it runs. More wait for their turn.
   */
  @WithDefault("8")
  int readsPerTenant();

  /**
   * Page reads of one tenant that wait for their turn on one replica; one more is refused with
   * RESOURCE_EXHAUSTED.
   */
  @WithDefault("256")
  int readsWaitingPerTenant();
}
