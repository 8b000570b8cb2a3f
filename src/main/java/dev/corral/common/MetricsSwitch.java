package dev.corral.common;

import io.micrometer.core.instrument.config.MeterFilter;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Singleton;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * {@code CORRAL_METRICS_ENABLED=false} turns every meter (corral's and Quarkus') into a no-op at
 * run time, for an operator who scrapes nothing and for the benchmark that measures what metrics
 * cost. Quarkus' own switch is fixed at build time.
 */
public class MetricsSwitch {

  @Produces
  @Singleton
  MeterFilter metricsSwitch(
      @ConfigProperty(name = "corral.metrics.enabled", defaultValue = "true") boolean enabled) {
    return enabled ? new MeterFilter() {} : MeterFilter.deny();
  }
}
