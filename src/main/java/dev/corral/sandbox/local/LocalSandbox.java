package dev.corral.sandbox.local;

import dev.corral.sandbox.driver.ExecResult;
import dev.corral.sandbox.driver.OutputBuffer;
import dev.corral.sandbox.driver.SandboxCommand;
import dev.corral.sandbox.driver.SandboxLostException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One bubblewrap sandbox: a bash that lives as long as the sandbox, fed commands on its stdin and
 * read on its stdout. Each command ends with a marker line carrying a random nonce and the exit
 * code, so that no output can fake the end of a command. A supervisor loop restarts the shell when
 * it exits (a command that runs {@code exit}, or a restart), and says so with its own marker. Calls
 * run one at a time. Blocking: only the driver's I/O threads call it.
 */
final class LocalSandbox {

  private static final SecureRandom RANDOM = new SecureRandom();

  /** What bubblewrap runs: a loop that keeps a fresh shell on the sandbox's stdin. */
  static final String SUPERVISOR =
      "while :; do cd /workspace; /bin/bash --noprofile --norc;"
          + " printf '\\n\\036CORRAL-EXIT:%d\\036\\n' \"$?\"; done";

  private static final byte[] EXIT_PREFIX =
      "\n\036CORRAL-EXIT:".getBytes(StandardCharsets.US_ASCII);

  private volatile String id;
  private volatile java.time.Instant assignedAt;
  private final Process process;
  private final int uid;
  private final OutputStream stdin;
  private final InputStream stdout;
  private final ScheduledExecutorService timer;
  private final AtomicBoolean dead = new AtomicBoolean();

  LocalSandbox(
      Process process, int uid, ScheduledExecutorService timer, java.time.Instant startedAt) {
    this.id = "(warm)";
    this.assignedAt = startedAt;
    this.process = process;
    this.uid = uid;
    this.stdin = process.getOutputStream();
    this.stdout = process.getInputStream();
    this.timer = timer;
  }

  String id() {
    return id;
  }

  /** Gives a started sandbox the id of the sandbox it now is. */
  void assign(String sandboxId, java.time.Instant now) {
    this.id = sandboxId;
    this.assignedAt = now;
  }

  /** When it became the sandbox it is. */
  java.time.Instant assignedAt() {
    return assignedAt;
  }

  int uid() {
    return uid;
  }

  boolean alive() {
    return !dead.get() && process.isAlive();
  }

  /** Runs {@code command}; the sandbox is lost if its shell dies on the way. */
  synchronized ExecResult run(SandboxCommand command) {
    if (!alive()) {
      throw new SandboxLostException(id, "its processes have exited");
    }
    String nonce = HexFormat.of().formatHex(RANDOM.generateSeed(8));
    AtomicBoolean timedOut = new AtomicBoolean();
    ScheduledFuture<?> deadline =
        timer.schedule(
            () -> {
              timedOut.set(true);
              killCommands();
            },
            command.timeout().toMillis(),
            TimeUnit.MILLISECONDS);
    try {
      send(frame(command, nonce));
      OutputBuffer output = new OutputBuffer(command.outputCap(), command.keepTail());
      Marker marker = readUntilMarker(nonce, output);
      return new ExecResult(
          marker.code(), output.bytes(), output.total(), timedOut.get(), marker.shellExited());
    } catch (IOException e) {
      kill();
      throw new SandboxLostException(id, "its shell stopped answering (" + e.getMessage() + ")");
    } finally {
      deadline.cancel(false);
    }
  }

  /**
   * Replaces the shell with a fresh one (same workspace, no exported variables, back in
   * /workspace), stopping whatever the old one ran.
   */
  synchronized void restartShell() {
    if (!alive()) {
      throw new SandboxLostException(id, "its processes have exited");
    }
    killShell();
    try {
      readUntilMarker("-", new OutputBuffer(1024, false));
    } catch (IOException e) {
      kill();
      throw new SandboxLostException(id, "its shell could not restart");
    }
  }

  /** Stops every process of the sandbox (and the sandbox itself). */
  void kill() {
    dead.set(true);
    process.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
    process.destroyForcibly();
  }

  /** The line the shell reads: the inputs, the script, then the end marker with the exit code. */
  private static String frame(SandboxCommand command, String nonce) {
    StringBuilder line = new StringBuilder();
    line.append(command.inShell() ? "{ " : "( ");
    line.append("__corral_a=(");
    List<byte[]> args = command.args();
    for (byte[] arg : args) {
      quote(arg, line);
      line.append(' ');
    }
    line.append("); ");
    line.append(command.script());
    line.append(command.inShell() ? "\n} </dev/null 2>&1" : "\n) </dev/null 2>&1");
    line.append("; __corral_rc=$?; unset __corral_a; printf '\\n\\036CORRAL:")
        .append(nonce)
        .append(":%d\\036\\n' \"$__corral_rc\"\n");
    return line.toString();
  }

  /**
   * Appends {@code bytes} as one ANSI-C quoted bash word ({@code $'...'}): printable ASCII as is,
   * every other byte (and quote and backslash) as {@code \xHH}. Bash reads it back byte for byte
   * without running a process; inputs never hold NUL (ToolInput refuses it).
   */
  static void quote(byte[] bytes, StringBuilder line) {
    line.append("$'");
    for (byte b : bytes) {
      int c = b & 0xff;
      if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
        line.append((char) c);
      } else {
        line.append("\\x")
            .append(Character.forDigit(c >> 4, 16))
            .append(Character.forDigit(c & 15, 16));
      }
    }
    line.append('\'');
  }

  private void send(String text) throws IOException {
    stdin.write(text.getBytes(StandardCharsets.UTF_8));
    stdin.flush();
  }

  /**
   * Copies output into {@code output} until the marker with {@code nonce}; holds back the last
   * bytes of each read in case they start the marker.
   */
  private Marker readUntilMarker(String nonce, OutputBuffer output) throws IOException {
    byte[] prefix = ("\n\036CORRAL:" + nonce + ":").getBytes(StandardCharsets.US_ASCII);
    byte[] window = new byte[0];
    byte[] chunk = new byte[16 * 1024];
    while (true) {
      int read = stdout.read(chunk);
      if (read < 0) {
        throw new IOException("end of output");
      }
      window = concat(window, chunk, read);
      int at = indexOf(window, prefix);
      int exited = indexOf(window, EXIT_PREFIX);
      if (at >= 0 || exited >= 0) {
        boolean shellExited = exited >= 0 && (at < 0 || exited < at);
        int start = shellExited ? exited : at;
        output.write(window, 0, start);
        int skip = start + (shellExited ? EXIT_PREFIX.length : prefix.length);
        return new Marker(
            readCode(
                new String(window, skip, window.length - skip, StandardCharsets.US_ASCII), chunk),
            shellExited);
      }
      int keep = Math.min(window.length, prefix.length - 1);
      output.write(window, 0, window.length - keep);
      window = java.util.Arrays.copyOfRange(window, window.length - keep, window.length);
    }
  }

  private int readCode(String rest, byte[] chunk) throws IOException {
    Pattern end = Pattern.compile("^(-?\\d+)\036\n");
    while (true) {
      Matcher matcher = end.matcher(rest);
      if (matcher.find()) {
        return Integer.parseInt(matcher.group(1));
      }
      int more = stdout.read(chunk);
      if (more < 0) {
        throw new IOException("end of output inside the end marker");
      }
      rest += new String(chunk, 0, more, StandardCharsets.US_ASCII);
    }
  }

  private record Marker(int code, boolean shellExited) {}

  /**
   * Kills what the shell runs (its children, and anything that left them for the sandbox's init),
   * but not the shell, so that its directory and variables stay.
   */
  private void killCommands() {
    killAllBut(2);
  }

  /** Kills the shell and all it runs; the supervisor starts a fresh one. */
  private void killShell() {
    killAllBut(1);
  }

  /**
   * Kills every process of the sandbox below bubblewrap's init except the first {@code keep}
   * generations of the chain init → supervisor → shell.
   */
  private void killAllBut(int keep) {
    process
        .toHandle()
        .children()
        .forEach(
            init -> {
              java.util.Set<Long> kept = new java.util.HashSet<>();
              ProcessHandle current = init;
              for (int generation = 0; generation < keep; generation++) {
                List<ProcessHandle> children = current.children().toList();
                if (children.isEmpty()) {
                  break;
                }
                current = children.get(0);
                kept.add(current.pid());
              }
              init.descendants()
                  .filter(handle -> !kept.contains(handle.pid()))
                  .forEach(ProcessHandle::destroyForcibly);
            });
  }

  private static byte[] concat(byte[] a, byte[] b, int length) {
    byte[] joined = java.util.Arrays.copyOf(a, a.length + length);
    System.arraycopy(b, 0, joined, a.length, length);
    return joined;
  }

  private static int indexOf(byte[] haystack, byte[] needle) {
    outer:
    for (int i = 0; i + needle.length <= haystack.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (haystack[i + j] != needle[j]) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }
}
