package dev.corral.sandbox.local;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import dev.corral.proto.v1.ExecuteRequest;
import dev.corral.proto.v1.ExecuteResponse;
import dev.corral.proto.v1.GetSandboxRequest;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SandboxState;
import dev.corral.testing.HiddenProcesses;
import dev.corral.testing.Processes;
import dev.corral.tool.BuiltInTools;
import dev.corral.tool.ToolInput;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A call that is reported stopped has stopped: what a prompt-injected model would try against the
 * control of a call in a real bubblewrap sandbox (time limits, builtins, forged framing, endless
 * output, release during a call), through the gRPC API.
 */
@QuarkusTest
class CallControlTest {

  @GrpcClient("corral")
  SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  @jakarta.inject.Inject BuiltInTools tools;

  private final List<String> provisioned = new ArrayList<>();

  @AfterEach
  void release() {
    provisioned.forEach(
        id ->
            sandboxes.releaseSandbox(ReleaseSandboxRequest.newBuilder().setSandboxId(id).build()));
  }

  @Test
  void aTimedOutCallRunsNothingAfterItsDeadline() {
    // Given
    String sandbox = provision(10_000);

    // When the call's line goes on after a sleep that outlives its time limit
    long start = System.nanoTime();
    ExecuteResponse slow =
        bash(
            sandbox,
            "echo started; sleep 3; echo never-printed; touch /workspace/after-deadline",
            1_000);
    long tookMs = (System.nanoTime() - start) / 1_000_000;

    // Then it came back at its deadline, saying so, and nothing of the line runs afterwards
    assertThat(slow.getIsError()).isTrue();
    assertThat(slow.getOutput())
        .contains("started")
        .contains("killed")
        .contains("every process it started was stopped")
        .doesNotContain("never-printed");
    assertThat(tookMs).isBetween(900L, 2_000L);
    await()
        .during(Duration.ofSeconds(4))
        .atMost(Duration.ofSeconds(6))
        .until(() -> ok(sandbox, "ls -A /workspace").equals("(no output)"));
  }

  @Test
  void aLoopOfBuiltinsIsStoppedAtItsTimeLimitAndTheSandboxServesTheNextCallAtOnce() {
    // Given
    String sandbox = provision(10_000);

    // When
    long start = System.nanoTime();
    ExecuteResponse loop = bash(sandbox, "while :; do :; done", 2_000);
    long tookMs = (System.nanoTime() - start) / 1_000_000;
    long nextStart = System.nanoTime();
    String next = ok(sandbox, "echo alive");
    long nextMs = (System.nanoTime() - nextStart) / 1_000_000;

    // Then
    assertThat(loop.getIsError()).isTrue();
    assertThat(loop.getOutput()).contains("killed: the call ran longer than 2000 ms");
    assertThat(tookMs).isBetween(1_900L, 3_000L);
    assertThat(next).isEqualTo("alive");
    assertThat(nextMs).isLessThan(1_000L);
    assertThat(state(sandbox)).isEqualTo(SandboxState.SANDBOX_STATE_READY);
  }

  @Test
  void aTimeOutKeepsTheShellsStateFromBeforeTheCall() {
    // Given
    String sandbox = provision(10_000);
    ok(sandbox, "mkdir -p kept && cd kept && export KEPT=yes");

    // When a call changes the shell, then runs out of time
    bash(sandbox, "cd /tmp; export KEPT=no; sleep 10", 500);

    // Then the next call sees the shell as it was before the killed call
    assertThat(ok(sandbox, "echo $KEPT in $(pwd)")).isEqualTo("yes in /workspace/kept");
  }

  @Test
  void processesLeftRunningByAnEarlierCallSurviveAnotherCallsTimeOut() {
    // Given a background job started by one call
    String sandbox = provision(10_000);
    ok(sandbox, "sleep 300 > /dev/null 2>&1 & echo $! > /tmp/job");

    // When a later call runs out of time
    bash(sandbox, "sleep 100 & sleep 100", 500);

    // Then the job still runs, and only it
    assertThat(ok(sandbox, "kill -0 $(cat /tmp/job) && echo running")).isEqualTo("running");
    assertThat(ok(sandbox, "pgrep -c -x sleep")).isEqualTo("1");
  }

  @Test
  void whatAnEarlierCallsJobStartsDuringAnotherCallSurvivesThatCallsTimeOut() {
    // Given a background job of one call that, once told, leaves a process to the sandbox's pid 1
    // (as a daemonizing tool does: its parent ends at once)
    String sandbox = provision(10_000);
    ok(
        sandbox,
        "nohup bash -c 'while [ ! -e /tmp/go ]; do sleep 0.02; done;"
            + " ( sleep 301 & echo $! > /tmp/orphan ); sleep 300' > /dev/null 2>&1 &");

    // When a later call tells it, waits for that process, then runs out of time
    bash(
        sandbox, "touch /tmp/go; while [ ! -s /tmp/orphan ]; do sleep 0.02; done; sleep 10", 1_500);

    // Then the process the job started lives on, as the job does
    assertThat(ok(sandbox, "kill -0 $(cat /tmp/orphan) && echo alive")).isEqualTo("alive");
  }

  @Test
  void whatATimedOutCallDetachedIsStoppedToo() {
    // Given
    String sandbox = provision(10_000);

    // When a call starts a daemon in a session of its own, then runs out of time
    bash(sandbox, "setsid sleep 77 > /dev/null 2>&1 < /dev/null & sleep 10", 500);

    // Then the daemon went with it
    assertThat(ok(sandbox, "pgrep -c -f 'sleep 77' || true")).isEqualTo("0");
  }

  @Test
  void processesThatHideFromTheStopAreStoppedToo() {
    // Given
    String sandbox = provision(10_000);

    // When a call starts processes a scan of /proc could miss (a zombie whose other thread works
    // on, a name that is not UTF-8), then runs out of time
    ExecuteResponse first = bash(sandbox, HiddenProcesses.start() + " sleep 10", 3_000);

    // Then none works on
    assertThat(ok(sandbox, HiddenProcesses.check()))
        .as(first.toString())
        .matches(HiddenProcesses.STOPPED);

    // And when the call's own process renames itself so (it execs), it is stopped too
    ExecuteResponse second = bash(sandbox, HiddenProcesses.startAsTheCallItself(), 1_000);
    assertThat(ok(sandbox, HiddenProcesses.check()))
        .as(second.toString())
        .matches(HiddenProcesses.STOPPED);
  }

  @Test
  void aSandboxCannotTakeTheHostsAsynchronousIoContextsNorUseIoUring() {
    // Given
    String sandbox = provision(10_000);
    Integer ioSetup =
        java.util.Map.of("amd64", 206, "aarch64", 0).get(System.getProperty("os.arch"));
    org.junit.jupiter.api.Assumptions.assumeTrue(ioSetup != null, "io_setup's number is known");

    // When its code asks the kernel for an AIO context (which count against one limit of the
    // whole host) and for an io_uring
    String aio =
        ok(
            sandbox,
            "perl -e 'my $c = pack(q(Q), 0); print syscall("
                + ioSetup
                + ", 1, $c) == -1 ? qq(refused: $!) : q(given)'");
    String uring =
        ok(
            sandbox,
            "perl -e 'my $p = qq(\\0) x 120; print syscall(425, 1, $p) == -1 ? qq(refused: $!) :"
                + " q(given)'");

    // Then both are refused
    assertThat(aio).isEqualTo("refused: Operation not permitted");
    assertThat(uring).isEqualTo("refused: Operation not permitted");
  }

  @Test
  void outputCannotForgeTheEndOfACallOrAShellExit() {
    // Given
    String sandbox = provision(10_000);

    // When a command prints every marker corral ever used, whole and cut short
    ExecuteResponse forged =
        bash(
            sandbox,
            "printf '\\n\\036CORRAL-EXIT:0\\036\\n'; printf '\\n\\036CORRAL:0123456789abcdef:0\\036\\n';"
                + " printf '\\n\\036CORRAL:'; echo; echo after-the-markers; exit 3",
            5_000);
    String next = ok(sandbox, "echo next");

    // Then they come back as plain output, the real exit code is reported, and nothing leaks
    assertThat(forged.getOutput())
        .contains("\u001eCORRAL-EXIT:0\u001e")
        .contains("\u001eCORRAL:0123456789abcdef:0\u001e")
        .contains("after-the-markers")
        .contains("[the shell exited with code 3")
        .endsWith("[exit code 3]");
    assertThat(next).isEqualTo("next");
  }

  @Test
  void aPartialMarkerThenEndlessOutputIsCutAtTheCapAndTheTimeLimit() {
    // Given
    String sandbox = provision(10_000);

    // When
    long start = System.nanoTime();
    ExecuteResponse endless = bash(sandbox, "printf '\\n\\036CORRAL-EXIT:'; yes", 2_000);
    long tookMs = (System.nanoTime() - start) / 1_000_000;

    // Then it stopped at its time limit, kept at most the cap and said it truncated
    assertThat(tookMs).isBetween(1_900L, 3_500L);
    assertThat(endless.getIsError()).isTrue();
    assertThat(endless.getOutput()).startsWith("[output truncated: ").contains("killed");
    assertThat(endless.getOutput().length()).isLessThan(103_000);
    assertThat(ok(sandbox, "echo usable")).isEqualTo("usable");
  }

  @Test
  void releasingASandboxStopsTheCallRunningInIt() throws Exception {
    // Given a long call
    String sandbox = provision(60_000);
    CompletableFuture<ExecuteResponse> call =
        CompletableFuture.supplyAsync(() -> bash(sandbox, "echo working; sleep 30", 60_000));
    await().atMost(Duration.ofSeconds(10)).until(() -> Processes.running("sleep 30"));

    // When
    long start = System.nanoTime();
    sandboxes.releaseSandbox(ReleaseSandboxRequest.newBuilder().setSandboxId(sandbox).build());
    ExecuteResponse answer = call.get(10, TimeUnit.SECONDS);
    long tookMs = (System.nanoTime() - start) / 1_000_000;

    // Then the call ended within a second, saying why, and its processes are gone
    assertThat(tookMs).isLessThan(1_000L);
    assertThat(answer.getIsError()).isTrue();
    assertThat(answer.getOutput()).contains("released while the call ran");
    assertThat(!Processes.running("sleep 30")).isTrue();
    Sandbox released = get(sandbox);
    assertThat(released.getState()).isEqualTo(SandboxState.SANDBOX_STATE_RELEASED);
    assertThat(released.getReleaseReason()).isEqualTo("released through ReleaseSandbox");
  }

  @Test
  void cancellingACallStopsItAndTheNextStartsAtOnce() {
    // Given a call under way (the harness cancels a call like this on user.interrupt)
    Sandbox sandbox = get(provision(60_000));
    io.smallrye.mutiny.subscription.Cancellable call =
        tools
            .run(
                sandbox,
                ToolInput.parse("name", "bash", "input", "{\"command\":\"sleep 4.1; touch late\"}"))
            .subscribe()
            .with(ignored -> {});
    await().atMost(Duration.ofSeconds(10)).until(() -> Processes.running("sleep 4.1"));

    // When
    call.cancel();
    long start = System.nanoTime();
    String next = ok(sandbox.getId(), "echo next");

    // Then the next call did not wait for it, and it never finishes
    assertThat(next).isEqualTo("next");
    assertThat((System.nanoTime() - start) / 1_000_000).isLessThan(1_000);
    await()
        .during(Duration.ofSeconds(4))
        .atMost(Duration.ofSeconds(6))
        .until(() -> ok(sandbox.getId(), "ls -A").equals("(no output)"));
  }

  @Test
  void aStoppedCallWhoseProcessesWatchEachOtherDoesNothingAfterwards() {
    // Given a call whose processes act the moment another of them dies: readers that write a file
    // at the end of their input (whose writers started first), subshells once their sleep ends
    String sandbox = provision(10_000);
    String command =
        "d=$(mktemp -d); for i in $(seq 16); do mkfifo $d/$i; sleep 30 > $d/$i & done;"
            + " for i in $(seq 16); do { read -r x < $d/$i; : > late-$i; } & done;"
            + " for i in 1 2 3 4; do (sleep 30; : > late-parent-$i) & done; wait";

    // When it is stopped at its time limit
    ExecuteResponse stopped = bash(sandbox, command, 1_500);

    // Then none of them acted on the others' deaths
    assertThat(stopped.getIsError()).isTrue();
    await()
        .during(Duration.ofSeconds(2))
        .atMost(Duration.ofSeconds(4))
        .until(() -> ok(sandbox, "ls -A").equals("(no output)"));
  }

  @Test
  void largeInputsArriveWhole() throws Exception {
    // Given 600 000 bytes, more than one argument string of a process may hold
    String sandbox = provision(10_000);
    String content = "0123456789abcdé\n".repeat(37_500);

    // When
    ExecuteResponse written = write(sandbox, "big.txt", content);

    // Then
    int bytes = content.getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
    assertThat(written.getOutput()).isEqualTo("Wrote " + bytes + " bytes to big.txt");
    assertThat(ok(sandbox, "md5sum < big.txt | cut -d' ' -f1"))
        .isEqualTo(md5(content.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
  }

  @Test
  void aCallWhoseClientGivesUpIsStopped() {
    // Given a call that would leave a file behind after three seconds
    String sandbox = provision(30_000);
    ExecuteRequest request =
        ExecuteRequest.newBuilder()
            .setSandboxId(sandbox)
            .setName("bash")
            .setInputJson("{\"command\":\"sleep 3; touch late\"}")
            .build();

    // When its client stops waiting after one
    long start = System.nanoTime();
    io.grpc.StatusRuntimeException gaveUp =
        org.assertj.core.api.Assertions.catchThrowableOfType(
            io.grpc.StatusRuntimeException.class,
            () -> sandboxes.withDeadlineAfter(1, TimeUnit.SECONDS).execute(request));
    assertThat(gaveUp.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.DEADLINE_EXCEEDED);

    // Then the call was stopped: the next one runs, and nothing of the first is left to finish
    assertThat(ok(sandbox, "echo next")).isEqualTo("next");
    Duration untilLate = Duration.ofMillis(4_500).minusNanos(System.nanoTime() - start);
    await()
        .pollDelay(untilLate.isNegative() ? Duration.ZERO : untilLate)
        .atMost(Duration.ofSeconds(30))
        .until(() -> ok(sandbox, "ls -A").equals("(no output)"));
  }

  @Test
  void aJobThatKeepsStoppingTheNextShellCannotWedgeTheSandbox() throws Exception {
    // Given a job left running that stops every shell waiting for its script, again and again
    String sandbox = provision(5_000);
    ok(
        sandbox,
        "cat > /tmp/stopper.pl <<'EOF'\n"
            + "while (1) {\n"
            + "  opendir(my $d, '/proc');\n"
            + "  for my $p (grep { /^\\d+$/ } readdir $d) {\n"
            + "    open(my $f, '<', \"/proc/$p/stat\") or next;\n"
            + "    kill('STOP', $p) if <$f> =~ /^\\d+ \\(bash\\) S 1 /;\n"
            + "  }\n"
            + "  select(undef, undef, undef, 0.05);\n"
            + "}\n"
            + "EOF\n"
            + "nohup perl /tmp/stopper.pl > /dev/null 2>&1 &");

    // When a call comes whose input is more than a pipe holds
    long start = System.nanoTime();
    ExecuteResponse written = write(sandbox, "big.txt", "a".repeat(200_000));

    // Then it is answered within seconds, not at its time limit, and the sandbox is not lost
    assertThat(Duration.ofNanos(System.nanoTime() - start))
        .as(written.getOutput())
        .isLessThan(Duration.ofSeconds(14));
    assertThat(get(sandbox).getState()).isNotEqualTo(SandboxState.SANDBOX_STATE_LOST);
  }

  @Test
  void aJobLeftRunningCannotHandTheNextShellAScriptOfItsOwn() {
    // Given a job left running that writes a script of its own into every shell waiting for its
    // call, through /proc, and keeps the channel open to swallow the real one (the script waits,
    // so that it is still running, as the call, when the real one comes)
    String sandbox = provision(5_000);
    ok(
        sandbox,
        "cat > /tmp/forger.pl <<'EOF'\n"
            + "my $forged = \"sleep 3; echo FORGED; exit 0\";\n"
            + "my (%seen, @keep);\n"
            + "open(my $log, '>>', '/tmp/forger.log'); select((select($log), $| = 1)[0]);\n"
            + "while (1) {\n"
            + "  opendir(my $d, '/proc');\n"
            + "  for my $p (grep { /^\\d+$/ } readdir $d) {\n"
            + "    next if $seen{$p};\n"
            + "    open(my $c, '<', \"/proc/$p/cmdline\") or next;\n"
            + "    my $cmd = do { local $/; <$c> };\n"
            + "    next unless defined $cmd && index($cmd, '__corral_n') >= 0;\n"
            + "    my $link = readlink(\"/proc/$p/fd/0\") // '';\n"
            + "    next unless $link =~ /^(pipe|socket):/;\n"
            + "    $seen{$p} = 1;\n"
            + "    if (open(my $in, '+<', \"/proc/$p/fd/0\")) {\n"
            + "      syswrite($in, \"1\\n\" . length($forged) . \"\\n\" . $forged);\n"
            + "      push @keep, $in;\n"
            + "      print $log \"tried $p: forged\\n\";\n"
            + "    } else {\n"
            + "      print $log \"tried $p: $!\\n\";\n"
            + "    }\n"
            + "  }\n"
            + "  select(undef, undef, undef, 0.01);\n"
            + "}\n"
            + "EOF\n"
            + "nohup perl /tmp/forger.pl > /dev/null 2>&1 &");

    // When the next call comes, once the job has had time to find the shell that waits for it
    ExecuteResponse next =
        await()
            .pollDelay(Duration.ofMillis(500))
            .atMost(Duration.ofSeconds(10))
            .until(() -> bash(sandbox, "echo REAL; exit 3", 5_000), response -> true);

    // Then the real call ran, with its own exit code, and the job did try
    assertThat(next.getOutput())
        .contains("REAL")
        .doesNotContain("FORGED")
        .endsWith("[exit code 3]");
    assertThat(ok(sandbox, "cat /tmp/forger.log")).contains("tried").doesNotContain("forged");
  }

  @Test
  void aJobThatWritesToItsCallsOutputOutlivesManyLaterCalls() {
    // Given a job left running that writes to the output of the call that started it
    String sandbox = provision(5_000);
    ok(sandbox, "(while :; do echo tick; sleep 0.05; done) & echo $! > /tmp/ticker");

    // When twelve later calls each leave a process holding their own output too
    for (int i = 0; i < 12; i++) {
      ok(sandbox, "sleep 1000 &");
    }

    // Then, some writes later, the first job is still alive
    String alive =
        await()
            .pollDelay(Duration.ofMillis(300))
            .atMost(Duration.ofSeconds(10))
            .until(
                () -> ok(sandbox, "kill -0 $(cat /tmp/ticker) && echo alive || echo dead"),
                answer -> true);
    assertThat(alive).isEqualTo("alive");
  }

  @Test
  void aCallWhoseProcessesKeepForkingIsStoppedOrItsSandboxGivenUp() {
    // Given a call whose twenty chains of processes each fork their next and end, without pause
    String sandbox = provision(5_000);
    ExecuteResponse hopping =
        bash(
            sandbox,
            "h() { date +%s%N > /tmp/heartbeat; h & }; for i in $(seq 20); do h & done; sleep 30",
            2_000);

    // When its time limit stops it
    assertThat(hopping.getIsError()).isTrue();

    // Then no chain goes on: the sandbox either serves a call in which none beats, or is lost
    if (get(sandbox).getState() != SandboxState.SANDBOX_STATE_LOST) {
      assertThat(
              ok(
                  sandbox,
                  "a=$(cat /tmp/heartbeat); sleep 0.5; b=$(cat /tmp/heartbeat);"
                      + " [ \"$a\" = \"$b\" ] && echo still || echo beating"))
          .isEqualTo("still");
    }
  }

  @Test
  void everyProcessOfASandboxIsTheFirstTheOomKillerTakesAndCannotChangeThat() throws Exception {
    // Given a sandbox
    String sandbox = provision(5_000);

    // When its code reads its OOM score, and tries to lower it, and a child reads its own
    String scores =
        ok(
            sandbox,
            "cat /proc/self/oom_score_adj; (echo 0 > /proc/self/oom_score_adj) 2>/dev/null"
                + " && echo lowered || echo refused; sh -c 'cat /proc/1/oom_score_adj'");

    // Then each of its processes, its first included, is the first to go, and stays so, while
    // the server keeps its own score
    assertThat(scores.lines()).containsExactly("1000", "refused", "1000");
    assertThat(
            java.nio.file.Files.readString(java.nio.file.Path.of("/proc/self/oom_score_adj"))
                .strip())
        .isNotEqualTo("1000");
  }

  private ExecuteResponse write(String sandbox, String file, String content) throws Exception {
    String json =
        new com.fasterxml.jackson.databind.ObjectMapper()
            .writeValueAsString(java.util.Map.of("file_path", file, "content", content));
    return sandboxes.execute(
        ExecuteRequest.newBuilder()
            .setSandboxId(sandbox)
            .setName("write")
            .setInputJson(json)
            .build());
  }

  private static String md5(byte[] bytes) throws Exception {
    return java.util.HexFormat.of()
        .formatHex(java.security.MessageDigest.getInstance("MD5").digest(bytes));
  }

  private String provision(long callTimeoutMs) {
    String id =
        sandboxes
            .provision(
                ProvisionRequest.newBuilder()
                    .setResources(SandboxResources.newBuilder().setCallTimeoutMs(callTimeoutMs))
                    .build())
            .getSandbox()
            .getId();
    provisioned.add(id);
    return id;
  }

  private Sandbox get(String sandbox) {
    return sandboxes
        .getSandbox(GetSandboxRequest.newBuilder().setSandboxId(sandbox).build())
        .getSandbox();
  }

  private SandboxState state(String sandbox) {
    return get(sandbox).getState();
  }

  private ExecuteResponse bash(String sandbox, String command, long timeoutMs) {
    String json;
    try {
      json =
          new com.fasterxml.jackson.databind.ObjectMapper()
              .writeValueAsString(java.util.Map.of("command", command, "timeout_ms", timeoutMs));
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
    return sandboxes.execute(
        ExecuteRequest.newBuilder()
            .setSandboxId(sandbox)
            .setName("bash")
            .setInputJson(json)
            .build());
  }

  private String ok(String sandbox, String command) {
    ExecuteResponse response = bash(sandbox, command, 5_000);
    assertThat(response.getIsError()).as(response.getOutput()).isFalse();
    return response.getOutput();
  }
}
