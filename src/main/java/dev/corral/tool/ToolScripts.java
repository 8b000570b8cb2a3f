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
   * Perl that replaces a file whole and atomically: {@code replace($file, $text)} writes a new file
   * beside it (same directory, same permissions), checks every write and the close, and renames it
   * over the old one. When anything fails (a full disk, say) the old file is left as it was and the
   * call fails saying so. {@code arg($path, $bytes)} reads an input passed through a pipe and
   * checks that all of it arrived.
   */
  private static final String REPLACE_PL =
      """
      use Fcntl;
      sub fail { print "corral: $_[0]\\n"; exit 2 }
      sub arg {
        my ($path, $bytes) = @_;
        open(my $h, "<:raw", $path) or fail("an input could not be read");
        local $/; my $v = <$h> // ""; close $h;
        fail("an input arrived incomplete; nothing was changed") unless length($v) == $bytes;
        return $v;
      }
      sub replace {
        my ($f, $text) = @_;
        my ($dir) = $f =~ m{^(.*)/[^/]+$};
        my @st = stat($f);
        my $mode = @st ? $st[2] & 07777 : 0666;
        my ($tmp, $h);
        for (1 .. 10) {
          $tmp = sprintf("%s/.corral-%d-%08x.tmp", $dir, $$, int(rand(0xffffffff)));
          last if sysopen($h, $tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
          fail("cannot write in the directory of the file ($!)") unless $!{EEXIST};
        }
        fail("cannot write in the directory of the file") unless $h;
        binmode $h;
        my $ok = print $h $text;
        my $why = "$!";
        if (!close($h) && $ok) { $ok = 0; $why = "$!" }
        if ($ok && !chmod(@st ? $mode : $mode & ~umask, $tmp)) { $ok = 0; $why = "$!" }
        if ($ok && !rename($tmp, $f)) { $ok = 0; $why = "$!" }
        if (!$ok) { unlink $tmp; fail("cannot write the file ($why); it was left as it was") }
      }
      """;

  static final String WRITE =
      HELPERS
          + """
          f=$(__path "${__corral_a[0]}") || exit 3
          [ -d "$f" ] && { echo "corral: $(__rel "$f") is a directory"; exit 2; }
          [ -e "$f" ] && [ ! -f "$f" ] && { echo "corral: $(__rel "$f") is not a regular file"; exit 2; }
          d=$(dirname -- "$f")
          mkdir -p -- "$d" 2>/dev/null || { echo "corral: cannot make the directory $(__rel "$d")"; exit 2; }
          perl -e 'REPLACE_PL
            my ($f, $content, $bytes) = @ARGV;
            replace($f, arg($content, $bytes));
            print "Wrote $bytes bytes to ", substr($f, length("/workspace/")), "\\n";
          ' "$f" <(printf '%s' "${__corral_a[1]}") "${__corral_a[2]}"
          """
              .replace("REPLACE_PL", REPLACE_PL);

  static final String EDIT =
      HELPERS
          + """
          f=$(__path "${__corral_a[0]}") || exit 3
          [ -f "$f" ] || { echo "corral: $(__rel "$f"): no such file"; exit 2; }
          perl -e 'REPLACE_PL
            my ($f, $o, $ob, $n, $nb, $all) = @ARGV;
            my $old = arg($o, $ob); my $new = arg($n, $nb);
            fail("old_string is empty") if $old eq "";
            open(my $h, "<:raw", $f) or fail("cannot read the file ($!)");
            local $/; my $t = <$h> // ""; close $h;
            my ($c, $i) = (0, 0);
            while (($i = index($t, $old, $i)) >= 0) { $c++; $i += length($old); }
            fail("old_string was not found in the file") if $c == 0;
            fail("old_string occurs $c times; add context to make it unique, or set replace_all")
              if $c > 1 && !$all;
            my ($r, $j) = ("", 0); $i = 0;
            while (($j = index($t, $old, $i)) >= 0) { $r .= substr($t, $i, $j - $i) . $new; $i = $j + length($old); last unless $all }
            $r .= substr($t, $i);
            replace($f, $r);
            print "Replaced ", ($all ? $c : 1), " occurrence", (($all ? $c : 1) == 1 ? "" : "s"), "\\n";
          ' "$f" <(printf '%s' "${__corral_a[1]}") "${__corral_a[2]}" \\
            <(printf '%s' "${__corral_a[3]}") "${__corral_a[4]}" "${__corral_a[5]}"
          """
              .replace("REPLACE_PL", REPLACE_PL);

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
            print map { "$_->[1]\\n" } @sorted[0 .. $last];
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
          utf8(Integer.toString(edit.oldString().length)),
          edit.newString(),
          utf8(Integer.toString(edit.newString().length)),
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
