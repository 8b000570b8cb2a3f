package dev.corral.harness;

import dev.corral.common.Replica;
import dev.corral.model.AnthropicMessages;
import dev.corral.proto.v1.EmitterKind;
import dev.corral.proto.v1.EventEmitter;
import dev.corral.session.EventLog;
import dev.corral.session.EventTail;
import dev.corral.session.LiveDeltas;
import dev.corral.session.Sessions;
import dev.corral.tool.ToolRouter;
import jakarta.enterprise.context.ApplicationScoped;

/** What a harness run talks to: the log, the model, the tools, leases and live previews. */
@ApplicationScoped
class HarnessServices {

  private final Sessions sessions;
  private final EventLog log;
  private final EventTail tail;
  private final AnthropicMessages model;
  private final ToolRouter tools;
  private final LiveDeltas deltas;
  private final Leases leases;
  private final FoldedStates states;
  private final io.micrometer.core.instrument.MeterRegistry metrics;
  private final EventEmitter emitter;
  private final io.opentelemetry.api.trace.Tracer tracer;
  private final ModelLabels modelLabels;

  HarnessServices(
      Sessions sessions,
      EventLog log,
      EventTail tail,
      AnthropicMessages model,
      ToolRouter tools,
      LiveDeltas deltas,
      Leases leases,
      FoldedStates states,
      io.micrometer.core.instrument.MeterRegistry metrics,
      io.opentelemetry.api.trace.Tracer tracer,
      Replica replica) {
    this.tracer = tracer;
    this.emitter =
        EventEmitter.newBuilder()
            .setKind(EmitterKind.EMITTER_KIND_HARNESS)
            .setReplica(replica.id())
            .build();
    this.states = states;
    this.metrics = metrics;
    this.sessions = sessions;
    this.log = log;
    this.tail = tail;
    this.model = model;
    this.tools = tools;
    this.deltas = deltas;
    this.leases = leases;
    this.modelLabels = new ModelLabels(model.config().contextWindows().keySet());
  }

  /** What model calls' metrics are labelled with (bounded, whatever agents name). */
  ModelLabels modelLabels() {
    return modelLabels;
  }

  Sessions sessions() {
    return sessions;
  }

  /** Who the events a harness appends on this replica say appended them. */
  EventEmitter emitter() {
    return emitter;
  }

  EventLog log() {
    return log;
  }

  EventTail tail() {
    return tail;
  }

  AnthropicMessages model() {
    return model;
  }

  ToolRouter tools() {
    return tools;
  }

  LiveDeltas deltas() {
    return deltas;
  }

  Leases leases() {
    return leases;
  }

  FoldedStates states() {
    return states;
  }

  io.micrometer.core.instrument.MeterRegistry metrics() {
    return metrics;
  }

  /** OpenTelemetry's tracer: exporting, or a no-op one when tracing is off. */
  io.opentelemetry.api.trace.Tracer tracer() {
    return tracer;
  }
}
