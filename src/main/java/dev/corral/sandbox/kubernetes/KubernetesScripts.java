package dev.corral.sandbox.kubernetes;

import dev.corral.sandbox.driver.SandboxCommand;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * How a {@link SandboxCommand} becomes an exec in a sandbox pod: {@code bash -c <script> corral
 * <args...>} (the arguments travel as exec arguments, never as code). Each exec is a new process;
 * the persistent shell keeps its state in files (see {@code ShellScripts}).
 */
final class KubernetesScripts {

  /**
   * Kills every process of the container that started in the call's window, but the container's pid
   * 1 and itself: what a call started, whatever became of its parent. The window opens at the
   * earlier of two estimates of the call's start on the pod's clock (ticks of 1/100 s since boot,
   * as in /proc/[pid]/stat): {@code $2} milliseconds (the call's elapsed time) and a little before
   * now; and {@code $1} (milliseconds since the epoch, on corral's clock, less a margin) placed by
   * the pod's boot epoch, its time now (bash 5's EPOCHREALTIME) less its uptime. The first alone
   * missed a call's first processes whenever this script's exec took longer to open than the call's
   * had (a pod at its CPU limit, a busy API server); the second alone would miss them when corral's
   * clock runs ahead of the node's by more than the margin. Only builtins, so that it starts no
   * process of its own. Each round kills in the order of pids, a parent before the children it
   * started: killed in the order of /proc (where 10 comes before 9), a child could die before its
   * parent, which then ran the call's next command ({@code sleep 5; touch late} touched its file).
   * (Stopping them all first and killing after would do too, but two stops at once in one pod could
   * each stop the other, for good.) Repeats until two scans in a row find none (a process that
   * forks its next and ends can be between the two in one scan), for at most 2 s (100 rounds where
   * bash has no EPOCHREALTIME): a killed process can take a moment to die. Exits {@link
   * #STILL_RUNNING} if some were still there.
   */
  /** The exit code of {@link #STOP_SINCE} when processes of the window were still running. */
  static final int STILL_RUNNING = 3;

  static final String STOP_SINCE =
      "read -r __up __idle < /proc/uptime; __now=${__up/./}; __now=$((10#$__now));"
          + " __since=$(( __now - $2 / 10 - 2 )); __e=${EPOCHREALTIME//[.,]/};"
          + " if [[ $__e =~ ^[0-9]+$ ]]; then __at=$(( $1 / 10 - (__e / 10000 - __now) ));"
          + " (( __at < __since )) && __since=$__at; fi\n"
          + "__empty=0; __round=0; __t0=${EPOCHREALTIME//[.,]/}\n"
          + "while :; do\n"
          + "  __found=()\n"
          + "  for __d in /proc/[0-9]*; do\n"
          + "    __p=${__d#/proc/}; [[ $__p == 1 || $__p == $$ ]] && continue\n"
          // the whole file: a name may hold a newline
          + "    __s=; read -r -d '' __s < \"$__d/stat\" 2>/dev/null; [[ -n $__s ]] || continue\n"
          + "    set -- ${__s##*) }\n"
          // a zombie whose other threads run (its main thread ended on its own) is live
          + "    if [[ $1 == Z ]]; then __t=(\"$__d\"/task/*); (( ${#__t[@]} > 1 )) || continue; fi\n"
          + "    (( ${20} >= __since )) && __found[$__p]=1\n"
          + "  done\n"
          + "  if (( ${#__found[@]} == 0 )); then (( ++__empty == 2 )) && exit 0; continue; fi\n"
          + "  __empty=0\n"
          + "  for __p in \"${!__found[@]}\"; do kill -KILL \"$__p\" 2>/dev/null; done\n"
          + "  (( ++__round >= 10000 )) && break\n"
          + "  if [[ $__t0 =~ ^[0-9]+$ ]]; then (( ${EPOCHREALTIME//[.,]/} - __t0 > 2000000 )) && break;"
          + " elif (( __round >= 100 )); then break; fi\n"
          + "done\n"
          + "exit "
          + STILL_RUNNING;

  /**
   * How far before a call's start, on corral's clock, its stop reaches: the clocks of corral's host
   * and of the pod's node may differ. A job an earlier call started in it is stopped too.
   */
  static final java.time.Duration CLOCK_MARGIN = java.time.Duration.ofMillis(500);

  /**
   * Stops what started since a call's start ({@code startedAt} on corral's clock, less the {@link
   * #CLOCK_MARGIN}; or {@code elapsed} ago), whichever is earlier (see {@link #STOP_SINCE}).
   */
  static List<String> stopSince(java.time.Instant startedAt, java.time.Duration elapsed) {
    return List.of(
        "/bin/bash",
        "-c",
        STOP_SINCE,
        "corral",
        Long.toString(Math.max(0, startedAt.minus(CLOCK_MARGIN).toEpochMilli())),
        Long.toString(elapsed.toMillis()));
  }

  /** Stops every process of the container but its pid 1 (a shell restart). */
  static List<String> stopAll() {
    return stopSince(java.time.Instant.EPOCH, java.time.Duration.ofDays(365_000));
  }

  private KubernetesScripts() {}

  static final String INPUTS = "/tmp/.corral-in";

  /** What a call whose uploaded input was changed in the sandbox says. */
  static final String CHANGED =
      "corral: a tool input uploaded into the sandbox was changed there before the call ran (a"
          + " process the sandbox left running?); nothing ran";

  /** Appends its second argument to the input file named by its first (one upload chunk). */
  static final String APPEND_CHUNK =
      "umask 077; mkdir -p " + INPUTS + " && printf '%s' \"$2\" >> " + INPUTS + "/\"$1\"";

  /**
   * Reads the arguments from uploaded files named by "$@" (each {@code name:sha256}), and removes
   * them all. The files are the sandbox user's: a job an earlier call left running could rewrite
   * one between its upload and this exec, so each value is checked against the digest corral sent
   * in the exec itself, once it is in memory. A mismatch runs nothing (exit 126). {@code sha256sum}
   * is looked up on the system's default path ({@code command -p}); an image without it is not
   * checked, and a pod that runs as root can replace it.
   */
  private static final String FROM_FILES =
      "__corral_a=(); __corral_h=(); for __f in \"$@\"; do __corral_h+=(\"${__f#*:}\");"
          + " __f=${__f%%:*}; __v=$(cat -- "
          + INPUTS
          + "/\"$__f\"; printf .); __corral_a+=(\"${__v%.}\"); rm -f -- "
          + INPUTS
          + "/\"$__f\"; done; if command -p -v sha256sum >/dev/null; then for __i in"
          + " \"${!__corral_a[@]}\"; do [[ $(printf %s \"${__corral_a[__i]}\" | command -p sha256sum)"
          + " == \"${__corral_h[__i]}  -\" ]] || { printf '%s\\n' \""
          + CHANGED
          + "\" >&2; exit 126; }; done; fi; unset __f __v __i __corral_h; ";

  private static final String INLINE = "__corral_a=(\"$@\"); ";

  /**
   * Whether {@code command}'s arguments must be uploaded before it runs: exec arguments travel in
   * the request URL, which API servers and proxies limit, so more than {@code limit} bytes go in
   * chunks.
   */
  static boolean uploads(SandboxCommand command, int limit) {
    return command.args().stream().mapToInt(arg -> arg.length).sum() > limit;
  }

  /** The exec that runs {@code command} with its arguments inline. */
  static List<String> exec(SandboxCommand command) {
    List<String> argv =
        new ArrayList<>(List.of("/bin/bash", "-c", script(INLINE, command), "corral"));
    command.args().forEach(arg -> argv.add(new String(arg, StandardCharsets.UTF_8)));
    return argv;
  }

  /**
   * The exec that runs {@code command} with its arguments read from uploaded {@code files} (one per
   * argument, in order), each checked against the argument's digest.
   */
  static List<String> exec(SandboxCommand command, List<String> files) {
    List<String> argv =
        new ArrayList<>(List.of("/bin/bash", "-c", script(FROM_FILES, command), "corral"));
    for (int i = 0; i < files.size(); i++) {
      // (of the text uploaded: see upload)
      byte[] uploaded =
          new String(command.args().get(i), StandardCharsets.UTF_8)
              .getBytes(StandardCharsets.UTF_8);
      argv.add(files.get(i) + ":" + sha256(uploaded));
    }
    return argv;
  }

  private static String sha256(byte[] bytes) {
    try {
      return java.util.HexFormat.of()
          .formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IllegalStateException("every JDK has SHA-256", e);
    }
  }

  /**
   * The execs that upload {@code argument} into the input file {@code name}, in chunks of at most
   * {@code chunkBytes} UTF-8 bytes (never splitting a character).
   */
  static List<List<String>> upload(String name, byte[] argument, int chunkBytes) {
    String text = new String(argument, StandardCharsets.UTF_8);
    List<List<String>> execs = new ArrayList<>();
    int start = 0;
    do { // at least once, so that an empty argument still gets its file
      int end = start;
      int bytes = 0;
      while (end < text.length()) {
        int codePoint = text.codePointAt(end);
        int size = new String(Character.toChars(codePoint)).getBytes(StandardCharsets.UTF_8).length;
        if (bytes + size > chunkBytes && end > start) {
          break;
        }
        bytes += size;
        end += Character.charCount(codePoint);
      }
      execs.add(
          List.of("/bin/bash", "-c", APPEND_CHUNK, "corral", name, text.substring(start, end)));
      start = end;
    } while (start < text.length());
    return execs;
  }

  /**
   * Where a pod that may reach something keeps its proxy URL (written at provisioning). The file is
   * writable by the sandbox's user, so it holds data only: one line, read, never run.
   */
  static final String EGRESS_ENV = "/tmp/.corral-egress";

  /** Writes its first argument, the proxy URL, to {@link #EGRESS_ENV}. */
  static final String WRITE_EGRESS =
      "umask 077; printf '%s\\n' \"${__corral_a[0]}\" > "
          + EGRESS_ENV
          + ".new && mv -f "
          + EGRESS_ENV
          + ".new "
          + EGRESS_ENV;

  /**
   * Every exec reads the proxy URL first, if the pod has one, and exports it under the names that
   * HTTP clients read. What the file holds is never run as code: a function or alias put there by
   * the model's code must not reach the file tools' own commands.
   */
  private static final String EGRESS =
      "if [ -r "
          + EGRESS_ENV
          + " ] && IFS= read -r __corral_proxy < "
          + EGRESS_ENV
          + "; then export HTTP_PROXY=\"$__corral_proxy\" HTTPS_PROXY=\"$__corral_proxy\""
          + " http_proxy=\"$__corral_proxy\" https_proxy=\"$__corral_proxy\""
          + " NO_PROXY=localhost,127.0.0.1,::1 no_proxy=localhost,127.0.0.1,::1; fi;"
          + " unset __corral_proxy; ";

  private static String script(String prologue, SandboxCommand command) {
    return prologue + EGRESS + "{ " + compact(command.script()) + "\n} </dev/null 2>&1";
  }

  /**
   * Scripts longer than this travel compressed: an exec carries its script in the request URL,
   * where most of a script's characters take three ({@code %24} for {@code $}), and API servers and
   * the proxies before them limit a request line (the fabric8 mock server to 4,096 bytes).
   */
  static final int COMPRESS_OVER = 768;

  /**
   * {@code script}, or when it is long, a line that runs it from its gzip in base64 (whose
   * characters mostly travel as themselves): about a third of the length in the URL, for two short
   * processes (base64 and gzip, both in coreutils and Debian's required set).
   */
  static String compact(String script) {
    if (script.length() <= COMPRESS_OVER) {
      return script;
    }
    // scripts are a handful of constants: each is packed once (the bound guards against others)
    String packed = PACKED.get(script);
    if (packed == null) {
      packed = pack(script);
      if (PACKED.size() < 64) {
        PACKED.putIfAbsent(script, packed);
      }
    }
    return packed;
  }

  private static final java.util.Map<String, String> PACKED =
      new java.util.concurrent.ConcurrentHashMap<>();

  private static String pack(String script) {
    java.io.ByteArrayOutputStream packed = new java.io.ByteArrayOutputStream();
    try (java.util.zip.GZIPOutputStream gzip = new java.util.zip.GZIPOutputStream(packed)) {
      gzip.write(script.getBytes(StandardCharsets.UTF_8));
    } catch (java.io.IOException inMemory) {
      throw new java.io.UncheckedIOException(inMemory);
    }
    return "eval \"$(printf %s "
        + java.util.Base64.getEncoder().encodeToString(packed.toByteArray())
        + " | base64 -d | gzip -dc || echo 'echo corral: the sandbox image needs base64 and gzip;"
        + " exit 127')\"\n";
  }
}
