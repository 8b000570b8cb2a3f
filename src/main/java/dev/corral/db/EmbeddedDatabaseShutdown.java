package dev.corral.db;

import io.quarkus.runtime.ShutdownEvent;
import jakarta.annotation.Priority;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;

/** Stops the embedded PostgreSQL after everything else that uses the database has shut down. */
@ApplicationScoped
class EmbeddedDatabaseShutdown {

  void onStop(@Observes @Priority(Integer.MAX_VALUE) ShutdownEvent event) {
    EmbeddedDatabase.stop();
  }
}
