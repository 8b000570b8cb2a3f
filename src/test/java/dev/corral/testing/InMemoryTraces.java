package dev.corral.testing;

import io.opentelemetry.sdk.testing.exporter.InMemorySpanExporter;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Singleton;

/**
 * Spans exported to memory instead of a collector: Quarkus hands every span to each {@code
 * SpanExporter} bean. Only a profile that turns the SDK on ({@link ObservabilityTestProfile})
 * produces any.
 */
public class InMemoryTraces {

  @Produces
  @Singleton
  InMemorySpanExporter exporter() {
    return InMemorySpanExporter.create();
  }
}
