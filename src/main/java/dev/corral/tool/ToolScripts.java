package dev.corral.tool;

import dev.corral.sandbox.driver.SandboxCommand;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;

/**
 * The built-in tools as bash scripts that run inside a sandbox. Scripts read their inputs from the
 * array {@code __corral_a} (never parsed as code: the bash tool's command is run with eval); paths
 * resolve against /workspace, and a path that leaves it (through "..", an absolute path or a
 * symlink) is refused. Exit code 0 is success; a file tool's other codes are errors whose output
 * says why.
 */
final class ToolScripts {

  /**
   * The longest a file tool may run, whatever the sandbox's call limit: a grep whose pattern
   * backtracks without end, or a glob over a huge tree, stops here instead of holding the session
   * for the whole call limit (24 h at most).
   */
  static final Duration FILE_TOOL_TIMEOUT = Duration.ofSeconds(60);

  /** Output kept per call: 100 KiB, the tail for bash, the head otherwise. */
  static final int OUTPUT_CAP = 100 * 1024;

  /**
   * What read and grep print before they stop themselves, in bytes: the cap, less room for the note
   * that says where they stopped.
   */
  private static final String BUDGET = Integer.toString(OUTPUT_CAP - 512);

  private static final String HELPERS =
      """
      __path() {
        local p="$1"
        case "$p" in /*) ;; *) p="/workspace/$p" ;; esac
        local r; r=$(realpath -m -- "$p") || return 2
        case "$r" in
          /workspace|/workspace/*) printf '%s' "$r" ;;
          *) echo "corral: $1 is outside the workspace (/workspace)" >&2; return 3 ;;
        esac
      }
      __rel() { local r="${1#/workspace}"; r="${r#/}"; printf '%s' "${r:-.}"; }
      """;

  static final String READ =
      HELPERS
          + """
          f=$(__path "${__corral_a[0]}") || exit 3
          [ -e "$f" ] || { echo "corral: $(__rel "$f"): no such file"; exit 2; }
          [ -f "$f" ] || { echo "corral: $(__rel "$f") is not a regular file"; exit 2; }
          [ -r "$f" ] || { echo "corral: $(__rel "$f") is not readable"; exit 2; }
          if [ -s "$f" ] && ! grep -qI '' -- "$f"; then echo "corral: $(__rel "$f") is a binary file"; exit 2; fi
          LC_ALL=C awk -v s="${__corral_a[1]}" -v e="${__corral_a[2]}" -v cap=BUDGET -v name="$(__rel "$f")" '
            # a line cut at n bytes loses the start of a character cut in two
            function cut(t, n) { t = substr(t, 1, n); sub(/[\\300-\\377][\\200-\\277]*$/, "", t); return t }
            index($0, "\\000") { binary = 1; exit }
            NR >= s && (e <= 0 || NR <= e) {
              size = (NR > 999999 ? length(NR) : 6) + length($0) + 2
              if (sent + size > cap) {
                if (sent == 0) {
                  out = sprintf("%6d\\t", NR) cut($0, cap - 8) "\\n"
                  note = sprintf("[corral: line %d is longer than the output limit and was cut; pass view_range [%d, ...] to read on]\\n", NR, NR + 1)
                } else {
                  note = sprintf("[corral: stopped at the output limit after line %d; pass view_range [%d, ...] to read on]\\n", NR - 1, NR)
                }
                sent = cap; exit
              }
              out = out sprintf("%6d\\t", NR) $0 "\\n"; sent += size
            }
            e > 0 && NR >= e { exit }
            END {
              if (binary) { print "corral: " name " is a binary file"; exit 2 }
              printf "%s%s", out, note
              if (sent == 0 && NR == 0) print "(the file is empty)"
              else if (sent == 0) printf "(the file has %d lines; view_range starts after them)\\n", NR
            }' "$f"
          """
              .replace("BUDGET", BUDGET);

  /**
   * Replacing a file whole and atomically: {@code __tmp DIR} makes a new empty file {@code $t}
   * beside the target (never one that exists); {@code __commit FILE BYTES} checks that all the
   * bytes reached it (a full disk cuts it short), gives it the file's permissions and renames it
   * over the file. When anything fails the old file is left as it was and the call fails saying so.
   */
  private static final String REPLACE =
      """
      __tmp() {
        t="$1/.corral-$$.tmp"; (set -C; : > "$t") 2>/dev/null ||
          { echo "corral: cannot write in the directory of the file"; return 2; }
      }
      __commit() {
        local e; e=$(wc -c < "$t")
        if [ "$e" != "$2" ]; then e="No space left on device"
        else e=$({ [ ! -e "$1" ] || chmod --reference="$1" -- "$t"; } 2>&1 && mv -f -- "$t" "$1" 2>&1) && return 0
          e=${e##*: }
        fi
        rm -f -- "$t"; echo "corral: cannot write the file ($e); it was left as it was"; return 2
      }
      """;

  static final String WRITE =
      HELPERS
          + REPLACE
          + """
          f=$(__path "${__corral_a[0]}") || exit 3
          [ -d "$f" ] && { echo "corral: $(__rel "$f") is a directory"; exit 2; }
          [ -e "$f" ] && [ ! -f "$f" ] && { echo "corral: $(__rel "$f") is not a regular file"; exit 2; }
          [ -e "$f" ] && [ ! -w "$f" ] && { echo "corral: $(__rel "$f") is not writable"; exit 2; }
          mkdir -p -- "${f%/*}" 2>/dev/null || { echo "corral: cannot make the directory $(__rel "${f%/*}")"; exit 2; }
          __tmp "${f%/*}" || exit 2
          printf '%s' "${__corral_a[1]}" 2>/dev/null > "$t"
          __commit "$f" "${__corral_a[2]}" || exit 2
          echo "Wrote ${__corral_a[2]} bytes to $(__rel "$f")"
          """;

  /**
   * Perl reads the file, {@code old_string} and {@code new_string} (through pipes: nothing touches
   * a disk that may be full), writes the result to the new file, and prints the result's length and
   * what it did.
   */
  static final String EDIT =
      HELPERS
          + REPLACE
          + """
          f=$(__path "${__corral_a[0]}") || exit 3
          [ -f "$f" ] || { echo "corral: $(__rel "$f"): no such file"; exit 2; }
          [ -w "$f" ] || { echo "corral: $(__rel "$f") is not writable"; exit 2; }
          __tmp "${f%/*}" || exit 2
          trap 'rm -f -- "$t"' EXIT
          m=$(perl -e '
            my ($f, $o, $n, $all, $t) = @ARGV; local $/;
            sub bad { print "corral: $_[0]"; exit 2 }
            sub rd { open(my $h, "<:raw", $_[0]) or bad("cannot read the file"); <$h> // "" }
            my ($old, $new, $x) = (rd($o), rd($n), rd($f));
            bad("old_string is empty") if $old eq "";
            my $c = () = $x =~ /\\Q$old/g;
            bad("old_string was not found in the file") if !$c;
            bad("old_string occurs $c times; add context to make it unique, or set replace_all") if $c > 1 && !$all;
            $all ? $x =~ s/\\Q$old/$new/g : $x =~ s/\\Q$old/$new/;
            open(my $h, ">:raw", $t) or bad("cannot write the file"); print $h $x; close $h;
            $c = $all ? $c : 1; print length($x), " Replaced $c occurrence", $c > 1 ? "s" : "";
          ' "$f" <(printf '%s' "${__corral_a[1]}") <(printf '%s' "${__corral_a[2]}") "${__corral_a[3]}" "$t") ||
            { echo "$m"; exit 2; }
          __commit "$f" "${m%% *}" || exit 2
          echo "${m#* }"
          """;

  /**
   * A pattern may not leave its base directory ({@code ..}, or an absolute path outside the
   * workspace), and what it matches through a symlink to a directory outside the workspace is not
   * listed. The names go to one perl (NUL-separated, so any name survives) that keeps those whose
   * directory resolves inside the workspace and lists the 200 most recently modified.
   */
  static final String GLOB =
      HELPERS
          + """
          base=$(__path "${__corral_a[1]}") || exit 3
          [ -d "$base" ] || { echo "corral: $(__rel "$base") is not a directory"; exit 2; }
          pattern=${__corral_a[0]}
          case "$pattern" in
            /workspace) base=/workspace; pattern=. ;;
            /workspace/*) base=/workspace; pattern=${pattern#/workspace/} ;;
            /*) echo "corral: $pattern is outside the workspace (/workspace)"; exit 3 ;;
          esac
          case "/$pattern/" in
            */../*) echo "corral: $pattern goes up with ..; give the directory as path instead"; exit 3 ;;
          esac
          cd -- "$base" || exit 2
          shopt -s globstar nullglob dotglob
          IFS=
          m=( $pattern )
          printf '%s\\0' "${m[@]}" | perl -MCwd=realpath -0 -e '
            my ($limit, $pattern, @found) = @ARGV;
            while (my $x = <STDIN>) {
              chop $x; $x =~ s{/+$}{};
              next if $x eq "";
              my ($dir, $name) = $x =~ m{^(.*)/([^/]+)$} ? ($1, $2) : (".", $x);
              my $real = realpath($dir eq "" ? "/" : $dir);
              next unless defined $real && ($real eq "/workspace" || index($real, "/workspace/") == 0);
              my @st = lstat($x) or next;
              push @found, [$st[9], substr("$real/$name", length("/workspace/"))];
            }
            if (!@found) { print "No files match $pattern\\n"; exit 0 }
            my @sorted = sort { $b->[0] <=> $a->[0] || $a->[1] cmp $b->[1] } @found;
            my $last = $#sorted < $limit - 1 ? $#sorted : $limit - 1;
            # a newline in a name is shown as \\n, so that each line is one file
            print map { (my $n = $_->[1]) =~ s/\\n/\\\\n/g; "$n\\n" } @sorted[0 .. $last];
            printf "[%d more files match; these are the %d most recently modified. Narrow the pattern or the path]\\n",
              @found - $limit, $limit if @found > $limit;
          ' 200 "$pattern"
          """;

  static final String GREP =
      HELPERS
          + """
          target=$(__path "${__corral_a[1]}") || exit 3
          [ -e "$target" ] || { echo "corral: $(__rel "$target"): no such file or directory"; exit 2; }
          grep -rHnIE -D skip --color=never -e "${__corral_a[0]}" -- "$target" 2>&1 | LC_ALL=C awk -v cap=BUDGET '
            { sub(/^\\/workspace\\//, ""); sub(/^grep: \\/workspace\\//, "grep: ") }
            !/^grep: / { matched = 1 }
            length($0) > 2000 {
              $0 = substr($0, 1, 2000); sub(/[\\300-\\377][\\200-\\277]*$/, "")
              $0 = $0 " [line cut at 2000 characters]"
            }
            sent + length($0) + 1 > cap {
              print "[corral: stopped at the output limit after " NR - 1 " lines; narrow the pattern or the path]"
              stopped = 1; exit
            }
            { print; sent += length($0) + 1 }
            END { exit stopped ? 3 : matched ? 4 : 0 }'
          rc=("${PIPESTATUS[@]}")
          [ "${rc[1]}" -eq 3 ] && exit 0
          [ "${rc[0]}" -eq 1 ] && { echo "No matches."; exit 0; }
          # 2 with matches: some file could not be read; its error is listed with the matches
          [ "${rc[1]}" -eq 4 ] && exit 0
          exit "${rc[0]}"
          """
              .replace("BUDGET", BUDGET);

  private ToolScripts() {}

  /** The command that runs {@code input}, with the call's time limit. */
  static SandboxCommand of(ToolInput input, Duration timeout) {
    if (input instanceof ToolInput.Bash bash) {
      Duration limit =
          bash.timeout() != null && bash.timeout().compareTo(timeout) < 0
              ? bash.timeout()
              : timeout;
      return SandboxCommand.shell(bash.command(), limit, OUTPUT_CAP);
    }
    if (input instanceof ToolInput.Read read) {
      return file(
          READ,
          timeout,
          utf8(read.path()),
          utf8(Integer.toString(read.fromLine())),
          utf8(Integer.toString(read.toLine())));
    }
    if (input instanceof ToolInput.Write write) {
      return file(
          WRITE,
          timeout,
          utf8(write.path()),
          write.content(),
          utf8(Integer.toString(write.content().length)));
    }
    if (input instanceof ToolInput.Edit edit) {
      return file(
          EDIT,
          timeout,
          utf8(edit.path()),
          edit.oldString(),
          edit.newString(),
          utf8(edit.replaceAll() ? "1" : ""));
    }
    if (input instanceof ToolInput.Glob glob) {
      return file(
          GLOB, timeout, utf8(glob.pattern()), utf8(glob.path().isEmpty() ? "." : glob.path()));
    }
    ToolInput.Grep grep = (ToolInput.Grep) input;
    return file(
        GREP, timeout, utf8(grep.pattern()), utf8(grep.path().isEmpty() ? "." : grep.path()));
  }

  private static SandboxCommand file(String script, Duration timeout, byte[]... args) {
    Duration limit = timeout.compareTo(FILE_TOOL_TIMEOUT) < 0 ? timeout : FILE_TOOL_TIMEOUT;
    return new SandboxCommand(script, List.of(args), limit, OUTPUT_CAP, false);
  }

  private static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }
}
