package dev.corral.sandbox.driver;

/**
 * The sandbox's persistent shell, for drivers that run each command as a process of its own (so
 * that a command, builtins and all, can be stopped without touching the next one). The shell's
 * state lives in /tmp/.corral-shell.{vars,opts}: each command starts by restoring it (working
 * directory, variables with their attributes, exported or not, functions, aliases, umask, shell
 * options) and saves it when it ends. A command that is killed saves nothing, so the next one sees
 * the state from before it. A command that ends the shell ({@code exit}, or a failure under {@code
 * set -e}) resets the state, and says so in its output.
 */
public final class ShellScripts {

  /** Where the persistent shell keeps its state, without the .vars and .opts suffixes. */
  public static final String STATE = "/tmp/.corral-shell";

  /** Variables a fresh bash sets itself, or that describe the running process: never kept. */
  private static final String NOT_KEPT =
      "BASH*|COMP_*|DIRSTACK|EPOCHREALTIME|EPOCHSECONDS|EUID|FUNCNAME|GROUPS|HISTCMD|HOSTNAME"
          + "|HOSTTYPE|LINENO|MACHTYPE|OPTERR|OPTIND|OSTYPE|PIPESTATUS|PPID|PWD|RANDOM|SECONDS"
          + "|SHELLOPTS|SHLVL|SRANDOM|UID|_|__corral*";

  /** Every variable name, from the prefixes a name can start with (no process needed). */
  private static final String ALL_NAMES = allNames();

  /**
   * Runs {@code ${__corral_a[0]}} as shell code in the persistent shell, with stdin from /dev/null
   * and stderr into stdout. Its exit code is the command's.
   */
  static final String PERSISTENT =
      ("__corral_s=" + STATE + "\n")
          + "{ [[ -r $__corral_s.vars ]] && . \"$__corral_s.vars\";"
          + " [[ -r $__corral_s.opts ]] && . \"$__corral_s.opts\";"
          + " __corral_x=${-//[!x]/}; set +x; } 2>/dev/null\n"
          + "__corral_exit() {\n"
          + "  if [[ -z ${__corral_done-} ]]; then\n"
          + "    { : >| \"$__corral_s.vars\"; : >| \"$__corral_s.opts\"; } 2>/dev/null\n"
          + "    printf '\\n[the shell exited with code %d: the next call starts a fresh shell in"
          + " /workspace, without the variables and functions of this one]\\n' \"$__corral_rc\"\n"
          + "  fi\n"
          + "}\n"
          + "__corral_save() {\n"
          + "  set +o >| \"$__corral_s.opts\" && shopt -p >> \"$__corral_s.opts\" || return\n"
          + "  set +e +u\n"
          + "  local __corral_n __corral_keep=()\n"
          + ("  for __corral_n in " + ALL_NAMES + "; do\n")
          + ("    case $__corral_n in "
              + NOT_KEPT
              + ") ;; *) __corral_keep+=(\"$__corral_n\") ;; esac\n")
          + "  done\n"
          + "  {\n"
          + "    printf 'cd -- %q || cd /workspace\\n' \"$PWD\"\n"
          + "    umask -p\n"
          + "    (( ${#__corral_keep[@]} )) && declare -p \"${__corral_keep[@]}\"\n"
          + "    declare -f\n"
          + "    alias -p\n"
          + "  } >| \"$__corral_s.vars\"\n"
          + "}\n"
          + "trap '{ __corral_rc=$?; set +x; __corral_exit; } 2>/dev/null' EXIT\n"
          + "__corral_done=\n"
          + "eval \"${__corral_x:+set -x; }${__corral_a[0]}\" </dev/null 2>&1\n"
          + "{ __corral_rc=$?; __corral_done=1; __corral_save || printf '\\n[the shell could not"
          + " keep its directory and variables: /tmp is full or not writable]\\n';"
          + " exit \"$__corral_rc\"; } 2>/dev/null\n";

  /** Forgets the persistent shell's state: the next command starts a fresh shell. */
  public static final String RESET = "rm -f -- " + STATE + ".vars " + STATE + ".opts";

  private ShellScripts() {}

  private static String allNames() {
    StringBuilder names = new StringBuilder();
    for (char c = 'a'; c <= 'z'; c++) {
      names.append("${!").append(c).append("@} ");
    }
    for (char c = 'A'; c <= 'Z'; c++) {
      names.append("${!").append(c).append("@} ");
    }
    return names.append("${!_@}").toString();
  }
}
