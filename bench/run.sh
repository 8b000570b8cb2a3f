#!/usr/bin/env bash
# corral's benchmarks; each measures corral and its baseline in one run on this machine.
#   bench/run.sh log [seconds-per-phase]   session log: raw INSERT commits vs EmitEvent, live tail
#   bench/run.sh harness [samples]         harness: TTFT overhead, take-over after kill -9
#   bench/run.sh sandbox [samples]         sandboxes: TTFT eager vs lazy, local provision, warm claims
#   bench/run.sh horizon [samples]         long sessions: TTFT and resume against log length
#   bench/run.sh auth [calls]              authentication: EmitEvent with an API key, a JWT, none
#   bench/run.sh egress [requests]         egress proxy: request latency and download speed, direct
#                                          vs through a sandbox's proxy
#   bench/run.sh turns [sessions]          many active sessions: concurrent turns with 3 tool calls,
#                                          then 10,000 idle sessions' memory
#   bench/run.sh replicas [seconds]        three replicas on one PostgreSQL: throughput against one,
#                                          cross-replica stream delay
#   bench/run.sh fanout [seconds] [pooled] live streams: 1 to 1,000 subscribers of a session, 10,000
#                                          across 100 sessions
#   bench/run.sh observability [calls]     metrics and traces: CPU per append and TTFT overhead with
#                                          both off, metrics on, metrics and traces on
# Results and how to read them: docs/benchmarks.md
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-log}" in
  log) main=dev.corral.bench.LogBench; argument="${2:-10}" ;;
  harness) main=dev.corral.bench.HarnessBench; argument="${2:-300}" ;;
  sandbox) main=dev.corral.bench.SandboxBench; argument="${2:-20}" ;;
  horizon) main=dev.corral.bench.HorizonBench; argument="${2:-30}" ;;
  auth) main=dev.corral.bench.AuthBench; argument="${2:-2000}" ;;
  egress) main=dev.corral.bench.EgressBench; argument="${2:-500}" ;;
  turns) main=dev.corral.bench.TurnsBench; argument="${2:-200}" ;;
  replicas) main=dev.corral.bench.ReplicasBench; argument="${2:-10}" ;;
  fanout) main=dev.corral.bench.FanOutBench; argument="${2:-10}" ;;
  observability) main=dev.corral.bench.ObservabilityBench; argument="${2:-1000}" ;;
  *) echo "usage: bench/run.sh log|harness|sandbox|horizon|auth|egress|turns|replicas|fanout|observability [argument]" >&2; exit 2 ;;
esac

bin/prerequisites
mvn -B -q package -DskipTests
mvn -B -q test-compile dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile=target/bench.classpath
classpath="target/classes:target/test-classes:$(cat target/bench.classpath)"
rm -rf target/bench-classes && mkdir -p target/bench-classes
javac -q -d target/bench-classes -cp "$classpath" $(find bench/src -name '*.java') 2>/dev/null \
  || javac -d target/bench-classes -cp "$classpath" $(find bench/src -name '*.java')
exec java -Xmx1g -Djava.util.logging.manager=org.jboss.logmanager.LogManager -Dcorral.app.jar=target/quarkus-app/quarkus-run.jar \
  -cp "target/bench-classes:$classpath" "$main" "$argument" "${@:3}"
