package dev.corral.sandbox.local;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The seccomp filter every local sandbox runs under (bubblewrap's {@code --seccomp}, a classic BPF
 * program): it refuses, with EPERM, the system calls that would let one sandbox take what the host
 * and the other sandboxes share, or reach the kernel's least-tried code:
 *
 * <ul>
 *   <li>{@code io_setup}: asynchronous I/O contexts count against one host-wide limit ({@code
 *       fs.aio-max-nr}); a sandbox that took them all would fail the host's own users of AIO;
 *   <li>{@code io_uring_setup}, {@code _enter}, {@code _register}: io_uring, a large kernel surface
 *       with a long record of privilege escalations, which container runtimes refuse too.
 * </ul>
 *
 * System calls of another architecture than the machine's (a 64-bit process can make 32-bit ones,
 * numbered differently) and x86-64's x32 calls are refused whole, so that no other number reaches
 * the same call.
 */
final class SyscallFilter {

  private SyscallFilter() {}

  /** An architecture: its audit id, the numbers of the calls refused, and whether it has x32. */
  private record Arch(int auditArch, List<Integer> refused, boolean x32) {}

  private static final Map<String, Arch> ARCHES =
      Map.of(
          "amd64", new Arch(0xc000003e, List.of(206, 425, 426, 427), true),
          "x86_64", new Arch(0xc000003e, List.of(206, 425, 426, 427), true),
          "aarch64", new Arch(0xc00000b7, List.of(0, 425, 426, 427), false));

  private static final short LOAD_WORD = 0x20; // BPF_LD | BPF_W | BPF_ABS
  private static final short JUMP_EQUAL = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
  private static final short JUMP_AT_LEAST = 0x35; // BPF_JMP | BPF_JGE | BPF_K
  private static final short RETURN = 0x06; // BPF_RET | BPF_K
  private static final int ALLOW = 0x7fff0000; // SECCOMP_RET_ALLOW
  private static final int EPERM = 0x00050000 | 1; // SECCOMP_RET_ERRNO | EPERM
  private static final int X32_BIT = 0x40000000;
  private static final int NR = 0; // offsetof(struct seccomp_data, nr)
  private static final int ARCH = 4; // offsetof(struct seccomp_data, arch)

  /** The program for this JVM's architecture (the sandboxes'), or empty if it has none. */
  static Optional<byte[]> forThisMachine() {
    return Optional.ofNullable(ARCHES.get(System.getProperty("os.arch"))).map(SyscallFilter::of);
  }

  private static byte[] of(Arch arch) {
    // instructions: load arch, is it ours, load nr, [x32], one test per refused call, allow, refuse
    int count = 3 + (arch.x32() ? 1 : 0) + arch.refused().size() + 2;
    int refuse = count - 1;
    ByteBuffer program = ByteBuffer.allocate(count * 8).order(ByteOrder.nativeOrder());
    int at = 0;
    at = put(program, at, LOAD_WORD, 0, 0, ARCH);
    // another architecture's call: on to the refusal; ours: on to the next instruction
    at = put(program, at, JUMP_EQUAL, 0, refuse - (at + 1), arch.auditArch());
    at = put(program, at, LOAD_WORD, 0, 0, NR);
    if (arch.x32()) {
      at = put(program, at, JUMP_AT_LEAST, refuse - (at + 1), 0, X32_BIT);
    }
    for (int number : arch.refused()) {
      at = put(program, at, JUMP_EQUAL, refuse - (at + 1), 0, number);
    }
    at = put(program, at, RETURN, 0, 0, ALLOW);
    put(program, at, RETURN, 0, 0, EPERM);
    return program.array();
  }

  /** Writes {@code struct sock_filter {u16 code; u8 jt; u8 jf; u32 k;}} at {@code at}. */
  private static int put(ByteBuffer program, int at, short code, int jt, int jf, int k) {
    program.putShort(code).put((byte) jt).put((byte) jf).putInt(k);
    return at + 1;
  }
}
