package dev.corral.sandbox.driver;

/**
 * The sandbox's persistent shell, for drivers that run each command as a process of its own (so
 * that a command, builtins and all, can be stopped without touching the next one). The shell's
 * state lives in /tmp/.corral-shell: each command starts by restoring it (working directory,
 * variables with their attributes, exported or not, functions, aliases, umask, shell options) and
 * saves it when it ends. A command that is killed saves nothing, so the next one sees the state
 * from before it, even when it was killed while saving: the state is kept in two files taken in
 * turn, each with its generation on its first line and an end mark on its last, and a command loads
 * the newest one that is whole (bash has no builtin to rename a file); a save that finds no room
 * for the other file (a full /tmp) writes over the one it loaded, as every save once did. A command
 * that ends the shell ({@code exit}, or a failure under {@code set -e}), or makes the wrapper's own
 * variables read-only, resets the state, and says so in its output. No command's mistake reaches
 * the next: the save is parsed with the command's {@code eval} (after a syntax error bash cannot
 * parse the line that follows), only a regular file is loaded, options are restored whatever {@code
 * IFS} is, and aliases and {@code -x}/{@code -v} are off while the wrapper's own lines run.
 */
public final class ShellScripts {

  /**
   * The builtins the wrapper calls once a state is loaded: functions of these names are dropped as
   * a state loads and before one is saved, so that no call's function stands in for them.
   */
  private static final String WRAPPER_BUILTINS =
      "eval trap exit set unset shopt declare printf builtin local alias umask command return :";

  /**
   * Where the persistent shell keeps its state (and, in turn, in the same path with {@code .b}).
   */
  public static final String STATE = "/tmp/.corral-shell";

  /**
   * Runs {@code ${__corral_a[0]}} as shell code in the persistent shell, with stdin from /dev/null
   * and stderr into stdout. Its exit code is the command's. The state is a {@code declare -p} of
   * every variable (bash's read-only ones fail to restore, quietly), the functions, aliases, umask,
   * options ({@code $SHELLOPTS}, {@code $BASHOPTS}), working directory and OLDPWD: builtins only
   * (but {@code rm} of something other than a regular file at the state's paths, when there is
   * one), so that keeping the shell costs no process.
   */
  static final String PERSISTENT =
      "__corral_s=/tmp/.corral-shell\n"
          + "__corral_opts() {\n"
          + "  local __corral_o IFS=$' \\t\\n'\n"
          + "  for __corral_o in ${SHELLOPTS//:/ }; do [[ :$1: == *:$__corral_o:* ]] || set +o \"$__corral_o\"; done\n"
          + "  for __corral_o in ${1//:/ }; do [[ :$SHELLOPTS: == *:$__corral_o:* ]] || set -o \"$__corral_o\"; done\n"
          + "  for __corral_o in ${BASHOPTS//:/ }; do [[ :$2: == *:$__corral_o:* ]] || shopt -u \"$__corral_o\"; done\n"
          + "  for __corral_o in ${2//:/ }; do [[ :$BASHOPTS: == *:$__corral_o:* ]] || shopt -s \"$__corral_o\"; done\n"
          + "}\n"
          + "__corral_gen() {\n"
          + "  local __corral_l IFS=\n"
          + "  [[ -f $1 && -r $1 ]] && read -r __corral_l < \"$1\" && [[ $__corral_l =~ ^#corral-state\\ ([1-9][0-9]{0,17})$ ]] && printf -v \"$2\" %s \"${BASH_REMATCH[1]}\"\n"
          + "}\n"
          + "__corral_try() {\n"
          + "  local IFS=\n"
          + "  (( $2 > 0 )) || return 1\n"
          + "  __corral_t=; read -r -d '' __corral_t < \"$1\"\n"
          + "  [[ ${__corral_t: -13} == $'\\n#corral-end\\n' ]] || { __corral_t=; return 1; }\n"
          + "  __corral_g=$2; __corral_f=$1\n"
          + "}\n"
          + "__corral_load() {\n"
          + "  local __corral_m=0 __corral_n=0\n"
          + "  __corral_gen \"$__corral_s\" __corral_m; __corral_gen \"$__corral_s.b\" __corral_n\n"
          + "  if (( __corral_n > __corral_m )); then\n"
          + "    __corral_try \"$__corral_s.b\" \"$__corral_n\" || __corral_try \"$__corral_s\" \"$__corral_m\"\n"
          + "  else\n"
          + "    __corral_try \"$__corral_s\" \"$__corral_m\" || __corral_try \"$__corral_s.b\" \"$__corral_n\"\n"
          + "  fi\n"
          + "}\n"
          + "__corral_in=(\"${__corral_a[@]}\")\n"
          + "{ __corral_g=0; __corral_f=; __corral_t=; __corral_load; [[ -n $__corral_f ]] && eval \"$__corral_t\" >/dev/null; unset __corral_t; if [[ :$SHELLOPTS: == *:posix:* ]]; then unset -f "
          + WRAPPER_BUILTINS
          + "; else POSIXLY_CORRECT=y; unset -f "
          + WRAPPER_BUILTINS
          + "; unset POSIXLY_CORRECT; fi; __corral_x=${-//[!xv]/}; set +xv; __corral_e=; [[ :$BASHOPTS: == *:expand_aliases:* ]] && __corral_e=1; shopt -u expand_aliases; } 2>/dev/null\n"
          + "__corral_a=(\"${__corral_in[@]}\"); unset __corral_in\n"
          + "__corral_own() {\n"
          + "  if [[ :$SHELLOPTS: == *:posix:* ]]; then unset -f "
          + WRAPPER_BUILTINS
          + "; else POSIXLY_CORRECT=y; unset -f "
          + WRAPPER_BUILTINS
          + "; unset POSIXLY_CORRECT; fi\n"
          + "}\n"
          + "__corral_forget() {\n"
          + "  local __corral_h\n"
          + "  for __corral_h in \"$__corral_s\" \"$__corral_s.b\"; do\n"
          + "    { [[ -f $__corral_h && ! -L $__corral_h ]] && : >| \"$__corral_h\" || { [[ -e $__corral_h || -L $__corral_h ]] && command rm -f -- \"$__corral_h\"; }; } 2>/dev/null\n"
          + "  done\n"
          + "}\n"
          + "__corral_exit() {\n"
          + "  if [[ -z ${__corral_done-} ]]; then\n"
          + "    __corral_forget\n"
          + "    printf '\\n[the shell exited with code %d: the next call starts a fresh shell in /workspace, without the variables and functions of this one]\\n' \"$__corral_rc\"\n"
          + "  fi\n"
          + "}\n"
          + "__corral_state() {\n"
          + "  printf '#corral-state %d\\n' \"$1\" && declare -p && declare -f && alias -p && umask -p &&\n"
          + "  printf '__corral_opts %q %q\\ncd -- %q || cd /workspace\\nOLDPWD=%q\\n#corral-end\\n' \"$2\" \"$3\" \"$PWD\" \"${OLDPWD-}\"\n"
          + "}\n"
          + "__corral_save() {\n"
          + "  __corral_own\n"
          + "  set +e +u\n"
          + "  if [[ ${__corral_a@a}${__corral_in@a}${__corral_x@a}${__corral_e@a}${__corral_rc@a}${__corral_done@a}${__corral_s@a}${__corral_o@a}${__corral_b@a}${__corral_g@a}${__corral_f@a}${__corral_t@a}${__corral_h@a}${__corral_l@a}${__corral_m@a}${__corral_n@a}${__corral_w@a} == *r* ]]; then\n"
          + "    __corral_forget\n"
          + "    printf '\\n[the call made variables that keep the shell read-only: the next call starts a fresh shell in /workspace]\\n'\n"
          + "    return 0\n"
          + "  fi\n"
          + "  local __corral_o=$1 __corral_b=$2 __corral_w=$__corral_s __corral_n __corral_h=${__corral_f-}\n"
          + "  [[ -n ${__corral_g-} && $__corral_g != *[!0-9]* && ${#__corral_g} -le 18 ]] && __corral_n=$((10#$__corral_g + 1)) || __corral_n=1\n"
          + "  [[ $__corral_h == \"$__corral_s\" ]] && __corral_w=$__corral_s.b\n"
          + "  unset __corral_a __corral_g __corral_f BASH_EXECUTION_STRING\n"
          + "  [[ ! -L $__corral_w && ( ! -e $__corral_w || -f $__corral_w ) ]] || command rm -f -- \"$__corral_w\"\n"
          + "  __corral_state \"$__corral_n\" \"$__corral_o\" \"$__corral_b\" >| \"$__corral_w\" && return\n"
          + "  : >| \"$__corral_w\"\n"
          + "  [[ -n $__corral_h ]] || return 1\n"
          + "  [[ ! -L $__corral_h && ( ! -e $__corral_h || -f $__corral_h ) ]] || command rm -f -- \"$__corral_h\"\n"
          + "  __corral_state \"$__corral_n\" \"$__corral_o\" \"$__corral_b\" >| \"$__corral_h\"\n"
          + "}\n"
          + "trap '{ __corral_rc=$?; __corral_own; set +xv; __corral_exit; } 2>/dev/null' EXIT\n"
          + "__corral_done=\n"
          + "eval \"${__corral_e:+shopt -s expand_aliases\n"
          + "}${__corral_x:+set -$__corral_x; }${__corral_a[0]}\" </dev/null 2>&1; { __corral_rc=$?; __corral_done=1; __corral_save \"$SHELLOPTS\" \"$BASHOPTS\" || printf '\\n[the shell could not keep its directory and variables: /tmp is full or not writable]\\n'; set +v; exit \"$__corral_rc\"; } 2>/dev/null\n";

  /**
   * Forgets the persistent shell's state: the next command starts a fresh shell. Whatever the
   * sandbox made of the state's path (a directory, say) goes too.
   */
  public static final String RESET = "rm -rf -- " + STATE + " " + STATE + ".b";

  private ShellScripts() {}
}
