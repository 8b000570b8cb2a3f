package dev.corral.tool;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.corral.proto.v1.ExecuteRequest;
import dev.corral.proto.v1.ExecuteResponse;
import dev.corral.proto.v1.ProvisionRequest;
import dev.corral.proto.v1.ReleaseSandboxRequest;
import dev.corral.proto.v1.Sandbox;
import dev.corral.proto.v1.SandboxResources;
import dev.corral.proto.v1.SandboxServiceGrpc;
import dev.corral.proto.v1.SandboxState;
import io.quarkus.grpc.GrpcClient;
import io.quarkus.test.junit.QuarkusTest;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The built-in tools in a real bubblewrap sandbox, called through the gRPC API: what each tool
 * does, what survives between calls, output caps, time limits, and paths that try to leave the
 * workspace.
 */
@QuarkusTest
class LocalToolsTest {

  @GrpcClient("corral")
  SandboxServiceGrpc.SandboxServiceBlockingStub sandboxes;

  private final List<String> provisioned = new ArrayList<>();
  private String sandbox;

  @BeforeEach
  void provision() {
    sandbox = provision(SandboxResources.newBuilder().setCallTimeoutMs(5_000).build());
  }

  @AfterEach
  void release() {
    provisioned.forEach(
        id ->
            sandboxes.releaseSandbox(ReleaseSandboxRequest.newBuilder().setSandboxId(id).build()));
  }

  @Test
  void bashKeepsItsDirectoryAndVariablesBetweenCallsUntilRestarted() {
    // Given
    ok("bash", "{\"command\":\"mkdir -p a/b && cd a/b && export GREETING=hello\"}");

    // When
    String before = ok("bash", "{\"command\":\"echo $GREETING from $(pwd)\"}");
    String restarted = ok("bash", "{\"restart\":true,\"command\":\"echo [$GREETING] $(pwd)\"}");

    // Then
    assertThat(before).isEqualTo("hello from /workspace/a/b");
    assertThat(restarted).startsWith("The shell was restarted.").endsWith("[] /workspace");
  }

  @Test
  void aRestartTheSandboxUndidIsAToolErrorThatSaysWhy() {
    // Given a shell whose state's path the sandbox made a directory, in a /tmp it then made
    // read-only
    ok("bash", "{\"command\":\"export KEPT=1; true\"}");
    ok("bash", "{\"command\":\"rm -f /tmp/.corral-shell; mkdir -p /tmp/.corral-shell/x; true\"}");

    // When the shell is restarted, it is (the directory goes too)
    String restarted = ok("bash", "{\"restart\":true,\"command\":\"echo [$KEPT]\"}");
    assertThat(restarted).startsWith("The shell was restarted.").endsWith("[]");

    // And when /tmp cannot be written, a restart is a tool error that says why, and the command
    // given with it does not run
    ok("bash", "{\"command\":\"echo ok > /dev/null; chmod 555 /tmp\"}");
    ExecuteResponse refused =
        execute("bash", "{\"restart\":true,\"command\":\"touch /workspace/ran\"}");
    ok("bash", "{\"command\":\"chmod 1777 /tmp\"}");
    assertThat(refused.getIsError()).isTrue();
    assertThat(refused.getOutput()).contains("could not be restarted").contains("/tmp");
    assertThat(ok("bash", "{\"command\":\"ls /workspace\"}")).doesNotContain("ran");
  }

  @Test
  void bashReportsExitCodesAndStderrAndAnExitingShellIsReplaced() {
    // When
    String failed = ok("bash", "{\"command\":\"echo out; echo err >&2; false\"}");
    String exited = ok("bash", "{\"command\":\"cd /tmp; exit 3\"}");
    String after = ok("bash", "{\"command\":\"pwd\"}");

    // Then
    assertThat(failed).contains("out").contains("err").endsWith("[exit code 1]");
    assertThat(exited).contains("the shell exited with code 3");
    assertThat(after).isEqualTo("/workspace");
  }

  @Test
  void noCallLeavesTheShellBrokenForTheNextOne() {
    // Given a shell with a directory and a variable
    bash("mkdir -p kept && cd kept && X=kept");

    // When a call has unbalanced quotes (the next line of the wrapper failed to parse after it,
    // and the shell was reset), then its state's path becomes a FIFO (every later call hung
    // loading it), then IFS changes before options are set (they were dropped)
    String unbalanced = bash("echo 'it's fine'");
    String afterQuotes = bash("echo $X from $PWD");
    bash("rm -f /tmp/.corral-shell; mkfifo /tmp/.corral-shell");
    String afterFifo = bash("echo $X from $PWD");
    bash("IFS=,; set -o pipefail");
    String options = bash("false | true; echo $?");
    bash("IFS=$' \\t\\n'");
    // and calls that took the wrapper's own words: a function named eval, an alias, a read-only
    // variable of the wrapper's, and set -v (which printed the wrapper's lines at every call)
    bash("eval() { :; }");
    String afterFunction = bash("echo ran");
    bash("shopt -s expand_aliases; alias eval=true; alias hi='echo hi'");
    String afterAlias = bash("echo ran; hi");
    String readOnly = bash("readonly __corral_a; echo marked");
    String afterReadOnly = bash("echo ran $PWD");
    // a call under set -u (whose save stopped at a variable of its own, unset) and one that
    // defines printf (which the save of that same call used)
    String strict = bash("set -euo pipefail; Y=2; echo ok");
    String afterStrict = bash("echo Y=$Y; set +euo pipefail");
    bash("cd /workspace/kept; printf() { :; }");
    String afterPrintf = bash("pwd");
    bash("set -v");
    String verbose = bash("echo quiet");

    // Then each mistake is the call's own, and the next call runs as asked
    assertThat(unbalanced).contains("unexpected EOF").endsWith("[exit code 2]");
    assertThat(unbalanced).doesNotContain("__corral").doesNotContain("fresh shell");
    assertThat(afterQuotes).isEqualTo("kept from /workspace/kept");
    assertThat(afterFifo).isEqualTo("kept from /workspace/kept");
    assertThat(options).isEqualTo("1");
    assertThat(afterFunction).isEqualTo("ran");
    assertThat(afterAlias).isEqualTo("ran\nhi");
    assertThat(readOnly).startsWith("marked").contains("fresh shell");
    assertThat(afterReadOnly).isEqualTo("ran /workspace");
    assertThat(strict).isEqualTo("ok");
    assertThat(afterStrict).isEqualTo("Y=2");
    assertThat(afterPrintf).isEqualTo("/workspace/kept");
    assertThat(verbose).isEqualTo("quiet");
  }

  /** Runs {@code command} with the bash tool, which must not fail as a call; its output. */
  private String bash(String command) {
    return ok(
        "bash",
        com.fasterxml.jackson.databind.node.JsonNodeFactory.instance
            .objectNode()
            .put("command", command)
            .toString());
  }

  @Test
  void aCallKilledWhileItsStateIsSavedLeavesTheStateFromBeforeIt() {
    // Given a shell with a directory, a variable and a function, saved twice (so that both of the
    // state's files hold one)
    bash("mkdir -p before && cd before && X=before && f() { echo kept; }");
    bash("X=saved");

    // When a call is killed in the middle of its save (a DEBUG trap, which functions inherit
    // under set -T, kills the shell once the variables are written and before the functions
    // are: the save's file was half written, and the next call loaded that half)
    ExecuteResponse killed =
        execute(
            "bash",
            com.fasterxml.jackson.databind.node.JsonNodeFactory.instance
                .objectNode()
                .put(
                    "command",
                    "mkdir -p /workspace/after && cd /workspace/after && X=killed && set -T &&"
                        + " trap '[[ $BASH_COMMAND == \"declare -f\" ]] && kill -9 $$' DEBUG")
                .toString());

    // Then the next call sees the state saved before it, whole
    assertThat(killed.getOutput()).endsWith("[exit code 137]");
    assertThat(bash("echo $X from $(pwd); f; [[ -o functrace ]] || echo no trace"))
        .isEqualTo("saved from /workspace/before\nkept\nno trace");
  }

  @Test
  void aCallThatRunsTooLongIsKilledAndTheShellStillAnswers() {
    // When
    long start = System.nanoTime();
    ExecuteResponse slow =
        execute("bash", "{\"command\":\"echo started; sleep 60\",\"timeout_ms\":500}");
    long tookMs = (System.nanoTime() - start) / 1_000_000;

    // Then
    assertThat(slow.getIsError()).isTrue();
    assertThat(slow.getOutput()).contains("started").contains("killed").contains("500 ms");
    assertThat(tookMs).isLessThan(10_000);
    assertThat(ok("bash", "{\"command\":\"echo alive\"}")).isEqualTo("alive");
  }

  @Test
  void bashOutputIsCappedKeepingTheTailAndTheCapIsStated() {
    // When 300 000 bytes are written
    String output =
        ok("bash", "{\"command\":\"seq 1 50000 | awk '{printf \\\"%05d\\\\n\\\", $1}'\"}");

    // Then
    assertThat(output).startsWith("[output truncated: 300000 bytes, showing the last 102400]");
    assertThat(output).endsWith("50000").doesNotContain("\n00001\n");
    assertThat(output.length()).isLessThan(103_000);
  }

  @Test
  void writeReadAndEditWorkOnWorkspaceFiles() {
    // Given
    String written =
        ok("write", "{\"file_path\":\"src/app.txt\",\"content\":\"one\\ntwo\\nthree\\ntwo\\n\"}");

    // When
    String range = ok("read", "{\"file_path\":\"/workspace/src/app.txt\",\"view_range\":[2,3]}");
    ExecuteResponse ambiguous =
        execute(
            "edit", "{\"file_path\":\"src/app.txt\",\"old_string\":\"two\",\"new_string\":\"2\"}");
    String unique =
        ok(
            "edit",
            "{\"file_path\":\"src/app.txt\",\"old_string\":\"one\\ntwo\",\"new_string\":\"1\\n2\"}");
    String all =
        ok(
            "edit",
            "{\"file_path\":\"src/app.txt\",\"old_string\":\"t\",\"new_string\":\"T\","
                + "\"replace_all\":true}");
    ExecuteResponse missing =
        execute(
            "edit", "{\"file_path\":\"src/app.txt\",\"old_string\":\"zzz\",\"new_string\":\"y\"}");

    // Then
    assertThat(written).isEqualTo("Wrote 18 bytes to src/app.txt");
    assertThat(range).isEqualTo("     2\ttwo\n     3\tthree");
    assertThat(ambiguous.getIsError()).isTrue();
    assertThat(ambiguous.getOutput()).contains("occurs 2 times");
    assertThat(unique).isEqualTo("Replaced 1 occurrence");
    assertThat(all).isEqualTo("Replaced 2 occurrences");
    assertThat(missing.getIsError()).isTrue();
    assertThat(missing.getOutput()).contains("not found");
    assertThat(ok("bash", "{\"command\":\"cat src/app.txt\"}")).isEqualTo("1\n2\nThree\nTwo");
  }

  @Test
  void inputsArriveByteForByteAndAreNeverRunAsCode() {
    // Given content full of shell syntax, quotes, backslashes and non-ASCII text
    String tricky =
        "$(touch pwned) `touch pwned2` 'q' \\\"dq\\\" \\\\n \\\\t ; | & > < * ? ~ é 漢字 🙂";

    // When
    ok("write", "{\"file_path\":\"$(x) 'odd' name.txt\",\"content\":\"" + tricky + "\\n\"}");
    String read = ok("read", "{\"file_path\":\"$(x) 'odd' name.txt\"}");
    String listed = ok("bash", "{\"command\":\"ls\"}");

    // Then
    assertThat(read)
        .isEqualTo(
            "     1\t$(touch pwned) `touch pwned2` 'q' \"dq\" \\n \\t ; | & > < * ? ~ é 漢字 🙂");
    assertThat(listed).isEqualTo("$(x) 'odd' name.txt");
  }

  @Test
  void globAndGrepFindFilesInTheWorkspace() {
    // Given
    ok("write", "{\"file_path\":\"a/one.py\",\"content\":\"import os\\nprint(1)\\n\"}");
    ok("write", "{\"file_path\":\"a/b/two.py\",\"content\":\"print(2)\\n\"}");
    ok("write", "{\"file_path\":\"notes.md\",\"content\":\"nothing\\n\"}");

    // When
    String glob = ok("glob", "{\"pattern\":\"**/*.py\"}");
    String grep = ok("grep", "{\"pattern\":\"print\\\\([0-9]\\\\)\",\"path\":\"a\"}");
    String none = ok("grep", "{\"pattern\":\"absent\"}");

    // Then
    assertThat(glob.lines()).containsExactlyInAnyOrder("a/one.py", "a/b/two.py");
    assertThat(grep.lines())
        .containsExactlyInAnyOrder("a/one.py:2:print(1)", "a/b/two.py:1:print(2)");
    assertThat(none).isEqualTo("No matches.");
  }

  @Test
  void malformedInputsAreRefusedNamingTheFieldAndChangeNothing() {
    for (String[] call :
        new String[][] {
          // 2^64 + 5 and 2^64 + 1: their low 64 bits are 5 and 1
          {"bash", "{\"command\":\"echo hi\",\"timeout_ms\":18446744073709551621}", "timeout_ms"},
          {"read", "{\"file_path\":\"a\",\"view_range\":[18446744073709551617,0]}", "view_range"},
          // the schema's minimum is 1
          {"bash", "{\"command\":\"touch t0\",\"timeout_ms\":0}", "timeout_ms"},
          // half a surrogate pair would arrive as "?"
          {"bash", "{\"command\":\"touch s\\ud800\"}", "command"},
          {"write", "{\"file_path\":\"s.txt\",\"content\":\"a\\udc00b\"}", "content"},
          {"write", "{\"file_path\":\"s\\ud83d.txt\",\"content\":\"a\"}", "file_path"},
          // a newline at the end would vanish, a slash at the end would be dropped
          {"write", "{\"file_path\":\"n.txt\\n\",\"content\":\"a\"}", "file_path"},
          {"write", "{\"file_path\":\"d.txt/\",\"content\":\"a\"}", "file_path"},
          {"grep", "{\"pattern\":\"a\",\"path\":\"x\\ty\"}", "path"}
        }) {
      assertThatThrownBy(() -> execute(call[0], call[1]))
          .as(call[1])
          .isInstanceOfSatisfying(
              io.grpc.StatusRuntimeException.class,
              e -> {
                assertThat(e.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.INVALID_ARGUMENT);
                assertThat(e.getStatus().getDescription()).contains(call[2]);
              });
    }
    assertThat(ok("bash", "{\"command\":\"ls -A\"}")).isEqualTo("(no output)");
  }

  @Test
  void anInputCutOffInTheMiddleSaysWhatLikelyHappened() {
    // a reply cut at max_tokens inside a write call
    assertThatThrownBy(() -> execute("write", "{\"file_path\":\"big.txt\",\"content\":\"abc"))
        .isInstanceOfSatisfying(
            io.grpc.StatusRuntimeException.class,
            e -> {
              assertThat(e.getStatus().getCode()).isEqualTo(io.grpc.Status.Code.INVALID_ARGUMENT);
              assertThat(e.getStatus().getDescription())
                  .contains("nothing ran")
                  .contains("max_tokens");
            });
    assertThat(ok("bash", "{\"command\":\"ls -A\"}")).doesNotContain("big.txt");
  }

  @Test
  void pathsAndSymlinksThatLeaveTheWorkspaceAreRefused() {
    // Given a symlink pointing out of the workspace
    ok("bash", "{\"command\":\"ln -s /etc escape && ln -s /etc/passwd pw\"}");

    // When
    List<ExecuteResponse> refused =
        List.of(
            execute("read", "{\"file_path\":\"../etc/passwd\"}"),
            execute("read", "{\"file_path\":\"/etc/passwd\"}"),
            execute("read", "{\"file_path\":\"pw\"}"),
            execute("write", "{\"file_path\":\"escape/evil\",\"content\":\"x\"}"),
            execute(
                "edit",
                "{\"file_path\":\"escape/hosts\",\"old_string\":\"a\",\"new_string\":\"b\"}"),
            execute("glob", "{\"pattern\":\"*\",\"path\":\"escape\"}"),
            execute("grep", "{\"pattern\":\"root\",\"path\":\"/etc\"}"));

    // Then
    for (ExecuteResponse response : refused) {
      assertThat(response.getIsError()).as(response.getOutput()).isTrue();
      assertThat(response.getOutput()).contains("outside the workspace");
    }
  }

  @Test
  void aGlobListsNothingOutsideTheWorkspace() {
    // Given a symlink to /etc and a file of our own
    ok("bash", "{\"command\":\"ln -s /etc escape && mkdir -p src && touch src/own.txt\"}");

    // When patterns reach out with an absolute path, with .., and through the symlink
    ExecuteResponse absolute = execute("glob", "{\"pattern\":\"/etc/*\"}");
    ExecuteResponse up = execute("glob", "{\"pattern\":\"src/../../*\"}");
    String through = ok("glob", "{\"pattern\":\"escape/*\"}");
    String everything = ok("glob", "{\"pattern\":\"**/*\"}");
    String inside = ok("glob", "{\"pattern\":\"/workspace/src/*.txt\"}");

    // Then the first two are refused, and no match lies outside the workspace
    assertThat(absolute.getIsError()).isTrue();
    assertThat(absolute.getOutput()).contains("outside the workspace");
    assertThat(up.getIsError()).isTrue();
    assertThat(up.getOutput()).contains("..");
    assertThat(through).isEqualTo("No files match escape/*");
    assertThat(everything.lines()).containsExactlyInAnyOrder("escape", "src", "src/own.txt");
    assertThat(inside).isEqualTo("src/own.txt");
    assertThat(ok("glob", "{\"pattern\":\"/workspace\"}")).isEqualTo(".");
  }

  @Test
  void aGlobOfManyFilesSaysHowManyItLeftOut() {
    // Given 250 files, and one with a newline in its name
    ok(
        "bash",
        "{\"command\":\"mkdir many && cd many && for i in $(seq 1 250); do : > f$i; done;"
            + " touch -d '2030-01-01' f7; touch -d '2029-01-01' $'odd\\nname'\"}");

    // When
    String listed = ok("glob", "{\"pattern\":\"many/*\"}");

    // Then the 200 most recently modified come, newest first, and the other 51 are counted
    List<String> lines = listed.lines().toList();
    assertThat(lines).hasSize(201);
    assertThat(lines.get(0)).isEqualTo("many/f7");
    // (a newline in a name is shown escaped: each line is one file)
    assertThat(lines.get(1)).isEqualTo("many/odd\\nname");
    assertThat(lines.get(200)).startsWith("[51 more files match");
  }

  @Test
  void readingALargeFileStopsAtTheOutputLimitAndSaysWhereToGoOn() {
    // Given a file of 20,000 numbered lines, and one of a single 300 KB line
    ok(
        "bash",
        "{\"command\":\"seq -f 'line %g of the long file' 1 20000 > long.txt;"
            + " head -c 300000 /dev/zero | tr '\\\\0' x > wide.txt\"}");

    // When each is read whole
    String long1 = ok("read", "{\"file_path\":\"long.txt\"}");
    String wide = ok("read", "{\"file_path\":\"wide.txt\"}");

    // Then the read stopped within the limit, naming the line to go on from
    assertThat(long1.length()).isLessThanOrEqualTo(ToolScripts.OUTPUT_CAP);
    java.util.regex.Matcher next =
        java.util.regex.Pattern.compile(
                "after line (\\d+); pass view_range \\[(\\d+), \\.\\.\\.\\]")
            .matcher(long1);
    assertThat(next.find()).as(long1.substring(long1.length() - 200)).isTrue();
    int from = Integer.parseInt(next.group(2));
    assertThat(long1).contains("\tline " + (from - 1) + " of the long file\n");
    assertThat(long1).doesNotContain("\tline " + from + " of");
    // and reading on from there gives the next lines
    assertThat(
            ok(
                "read",
                "{\"file_path\":\"long.txt\",\"view_range\":[" + from + "," + (from + 1) + "]}"))
        .isEqualTo(
            String.format(
                "%6d\tline %d of the long file\n%6d\tline %d of the long file",
                from, from, from + 1, from + 1));
    assertThat(wide.length()).isLessThanOrEqualTo(ToolScripts.OUTPUT_CAP);
    assertThat(wide).contains("line 1 is longer than the output limit and was cut");
  }

  @Test
  void readingAnEmptyFileOrPastTheEndSaysSoInsteadOfAnsweringNothing() {
    ok("bash", "{\"command\":\": > empty.txt; printf 'a\\\\nb\\\\n' > two.txt\"}");

    assertThat(ok("read", "{\"file_path\":\"empty.txt\"}")).isEqualTo("(the file is empty)");
    assertThat(ok("read", "{\"file_path\":\"two.txt\",\"view_range\":[5,9]}"))
        .isEqualTo("(the file has 2 lines; view_range starts after them)");
    assertThat(ok("read", "{\"file_path\":\"two.txt\",\"view_range\":[2,0]}"))
        .isEqualTo("     2\tb");
  }

  @Test
  void binaryDataPastTheStartOfAFileIsSeenAndNoCharacterIsCutInTwo() {
    // Given a text file with a NUL past grep's first look, and long lines of two-byte characters
    ok(
        "bash",
        "{\"command\":\"{ head -c 102400 /dev/zero | tr '\\\\0' a | fold -w 100; printf '\\\\nx\\\\0y\\\\n'; } > late.bin;"
            + " for i in 1 2; do printf '%060000d\\\\n' 0 | sed 's/0/\u00e9/g'; done > wide.txt;"
            + " printf 'match \u00e9%.0s' $(seq 1 1500) > wide-match.txt\"}");

    // When
    ExecuteResponse binary =
        execute("read", "{\"file_path\":\"late.bin\",\"view_range\":[1000,0]}");
    String wide = ok("read", "{\"file_path\":\"wide.txt\"}");
    String grep = ok("grep", "{\"pattern\":\"match\",\"path\":\"wide-match.txt\"}");

    // Then
    assertThat(binary.getIsError()).as(binary.getOutput()).isTrue();
    assertThat(binary.getOutput()).isEqualTo("late.bin is a binary file");
    assertThat(wide).contains("line 1 is longer than the output limit").doesNotContain("\ufffd");
    assertThat(grep).endsWith("[line cut at 2000 characters]").doesNotContain("\ufffd");
  }

  @Test
  void grepNamesTheFileAndListsWhatItCouldNotReadBesideItsMatches() {
    // Given a match in one file and a file the sandbox's user may not read
    ok(
        "bash",
        "{\"command\":\"mkdir d; echo hello > d/one.txt; echo hello > d/locked;"
            + " chmod 000 d/locked\"}");

    // When
    ExecuteResponse single = execute("grep", "{\"pattern\":\"hello\",\"path\":\"d/one.txt\"}");
    ExecuteResponse tree = execute("grep", "{\"pattern\":\"hello\",\"path\":\"d\"}");

    // Then
    assertThat(single.getIsError()).isFalse();
    assertThat(single.getOutput()).isEqualTo("d/one.txt:1:hello");
    assertThat(tree.getIsError()).as(tree.getOutput()).isFalse();
    assertThat(tree.getOutput().lines())
        .containsExactlyInAnyOrder("d/one.txt:1:hello", "grep: d/locked: Permission denied");
  }

  @Test
  void grepStopsAtTheOutputLimitAndCutsLongLinesSayingSo() {
    // Given 20,000 matching lines, and a matching line of 300 KB
    ok(
        "bash",
        "{\"command\":\"seq -f 'match %g' 1 20000 > many.txt;"
            + " { printf 'match '; head -c 300000 /dev/zero | tr '\\\\0' x; echo; } > wide.txt\"}");

    // When
    String many = ok("grep", "{\"pattern\":\"match\",\"path\":\"many.txt\"}");
    String wide = ok("grep", "{\"pattern\":\"match\",\"path\":\"wide.txt\"}");

    // Then
    assertThat(many.length()).isLessThanOrEqualTo(ToolScripts.OUTPUT_CAP);
    assertThat(many)
        .startsWith("many.txt:1:match 1\n")
        .containsPattern("stopped at the output limit after \\d+ lines");
    assertThat(wide).hasSizeLessThan(2_100).endsWith("[line cut at 2000 characters]");
  }

  @Test
  void anEditOrWriteThatCannotFinishLeavesTheFileAsItWasAndSaysSo() {
    // Given a file in a sandbox whose /workspace and /tmp are then filled to the last byte
    sandbox =
        provision(
            SandboxResources.newBuilder().setCallTimeoutMs(10_000).setDiskBytes(8L << 20).build());
    ok("write", "{\"file_path\":\"keep.txt\",\"content\":\"alpha beta gamma\\n\"}");
    ok(
        "bash",
        "{\"command\":\"cat /dev/zero > /workspace/fill 2>/dev/null;"
            + " cat /dev/zero > /tmp/fill 2>/dev/null; true\"}");
    String more = "x".repeat(64 * 1024);

    // When an edit would grow the file, and a write would replace it with more
    ExecuteResponse edit =
        execute(
            "edit",
            "{\"file_path\":\"keep.txt\",\"old_string\":\"beta\",\"new_string\":\"" + more + "\"}");
    ExecuteResponse write =
        execute("write", "{\"file_path\":\"keep.txt\",\"content\":\"" + more + "\"}");

    // Then both fail saying why, and the file is whole, as it was, with no leftovers beside it
    assertThat(edit.getIsError()).isTrue();
    assertThat(edit.getOutput())
        .isEqualTo("cannot write the file (No space left on device); it was left as it was");
    assertThat(write.getIsError()).isTrue();
    assertThat(write.getOutput()).isEqualTo(edit.getOutput());
    assertThat(ok("bash", "{\"command\":\"cat keep.txt; ls -A\"}"))
        .startsWith("alpha beta gamma\nfill\nkeep.txt\n\n[the shell could not keep its directory");
  }

  @Test
  void writingToOrSearchingAFifoDoesNotHangUntilTheTimeLimit() {
    ok("bash", "{\"command\":\"mkfifo pipe\"}");

    ExecuteResponse write = execute("write", "{\"file_path\":\"pipe\",\"content\":\"x\"}");
    ExecuteResponse grep = execute("grep", "{\"pattern\":\"x\",\"path\":\"pipe\"}");

    assertThat(write.getIsError()).isTrue();
    assertThat(write.getOutput()).contains("pipe is not a regular file");
    assertThat(grep.getOutput()).isEqualTo("No matches.");
  }

  @Test
  void aReadOnlyFileIsNotReplacedByWriteOrEdit() {
    ok("bash", "{\"command\":\"echo keep > ro.txt; chmod 444 ro.txt\"}");

    ExecuteResponse write = execute("write", "{\"file_path\":\"ro.txt\",\"content\":\"x\"}");
    ExecuteResponse edit =
        execute("edit", "{\"file_path\":\"ro.txt\",\"old_string\":\"keep\",\"new_string\":\"x\"}");

    assertThat(write.getIsError()).isTrue();
    assertThat(write.getOutput()).isEqualTo("ro.txt is not writable");
    assertThat(edit.getOutput()).isEqualTo("ro.txt is not writable");
    assertThat(ok("bash", "{\"command\":\"cat ro.txt; stat -c %a ro.txt\"}"))
        .isEqualTo("keep\n444");
  }

  @Test
  void theSandboxRunsAsAnUnprivilegedUserWithReadOnlySystemDirectoriesAndNoNetwork() {
    // When
    String identity = ok("bash", "{\"command\":\"id -u; grep CapEff /proc/self/status\"}");
    String systemWrite =
        ok(
            "bash",
            "{\"command\":\"touch /usr/x 2>/dev/null || echo usr-refused;"
                + " touch /etc/x 2>/dev/null || echo etc-refused\"}");
    String network = ok("bash", "{\"command\":\"tail -n +3 /proc/net/dev | cut -d: -f1\"}");
    String workspace =
        ok("bash", "{\"command\":\"stat -c '%u' /workspace; echo x > /tmp/t && cat /tmp/t\"}");

    // Then
    List<String> lines = identity.lines().toList();
    assertThat(Integer.parseInt(lines.get(0))).isNotZero();
    assertThat(lines.get(1)).endsWith("0000000000000000");
    assertThat(systemWrite).isEqualTo("usr-refused\netc-refused");
    assertThat(network.strip()).isEqualTo("lo");
    assertThat(workspace.lines().toList()).containsExactly(lines.get(0), "x");
  }

  @Test
  void aReleasedSandboxIsStoppedAndSaysSo() {
    // Given
    ok("bash", "{\"command\":\"echo hi\"}");

    // When
    Sandbox released =
        sandboxes
            .releaseSandbox(ReleaseSandboxRequest.newBuilder().setSandboxId(sandbox).build())
            .getSandbox();

    // Then
    assertThat(released.getState()).isEqualTo(SandboxState.SANDBOX_STATE_RELEASED);
    assertThat(released.hasReleasedAt()).isTrue();
  }

  private String provision(SandboxResources resources) {
    Sandbox created =
        sandboxes
            .provision(ProvisionRequest.newBuilder().setResources(resources).build())
            .getSandbox();
    assertThat(created.getState()).isEqualTo(SandboxState.SANDBOX_STATE_READY);
    provisioned.add(created.getId());
    return created.getId();
  }

  private ExecuteResponse execute(String name, String inputJson) {
    return sandboxes.execute(
        ExecuteRequest.newBuilder()
            .setSandboxId(sandbox)
            .setName(name)
            .setInputJson(inputJson)
            .build());
  }

  private String ok(String name, String inputJson) {
    ExecuteResponse response = execute(name, inputJson);
    assertThat(response.getIsError()).as(response.getOutput()).isFalse();
    return response.getOutput();
  }
}
