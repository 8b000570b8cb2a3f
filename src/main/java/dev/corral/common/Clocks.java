package dev.corral.common;

import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Singleton;
import java.time.Clock;

/** The clock code that measures time is given, so that tests can move it. */
@ApplicationScoped
class Clocks {

  @Produces
  @Singleton
  Clock clock() {
    return Clock.systemUTC();
  }
}
