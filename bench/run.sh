#!/usr/bin/env bash
# Benchmarks of the session log, measured in one run on this machine against one PostgreSQL:
#   raw single-row INSERT commits (the baseline) vs EmitEvent over gRPC, and live-tail latency.
# Usage: bench/run.sh [seconds-per-phase]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."

bin/prerequisites
mvn -B -q package -DskipTests
mvn -B -q test-compile dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile=target/bench.classpath
classpath="target/classes:target/test-classes:$(cat target/bench.classpath)"
rm -rf target/bench-classes && mkdir -p target/bench-classes
javac -q -d target/bench-classes -cp "$classpath" $(find bench/src -name '*.java') 2>/dev/null \
  || javac -d target/bench-classes -cp "$classpath" $(find bench/src -name '*.java')
exec java -Xmx1g -Djava.util.logging.manager=org.jboss.logmanager.LogManager -Dcorral.app.jar=target/quarkus-app/quarkus-run.jar \
  -cp "target/bench-classes:$classpath" dev.corral.bench.LogBench "${1:-10}"
