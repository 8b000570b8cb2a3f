# corral's launcher: pid 1 of a local sandbox (bubblewrap --as-pid-1). For each call corral sends,
# it starts a fresh bash in a session of its own, with a pipe of its own for stdout and stderr,
# keeps at most the call's output cap of what it writes, and answers with the exit status. Its own
# stdin and stdout (corral's channel) are out of the sandbox's reach: it is not dumpable, so
# /proc/1/fd, /proc/1/mem and ptrace are closed to the sandbox's user, and as the namespace's init it
# takes no signal from inside it (it installs no handler a signal could reach but SIGCHLD's).
# Corral stops calls itself, from outside the sandbox.
#
# Requests (stdin):  C <id> <cap> <tail 0|1> <count>\n then <count> times <length>\n<bytes>
#                    (the script, then its arguments)
#                    P\n (ping)
# Answers (stdout):  H 1\n once started; P\n;
#                    D <id> <exit code or -1> <signal> <total bytes> <length>\n<kept output>
#                    E <id> <length>\n<message>   (the call could not start)
#                    F <message>\n                (the launcher gives up)
use strict;
use warnings;
use POSIX ();
use Config;

my %PRCTL = (x86_64 => 157, aarch64 => 167, i386 => 172, i686 => 172);
my ($arch) = $Config{archname} =~ /^([^-]+)/;
my $prctl = $PRCTL{$arch} or fail("no prctl system call known for $arch");
syscall($prctl, 4, 0, 0, 0, 0) == 0 or fail("prctl(PR_SET_DUMPABLE): $!");
open(STDERR, '>', '/dev/null') or fail("stderr: $!");
binmode STDIN;
binmode STDOUT;
$| = 1;
$SIG{PIPE} = 'DEFAULT';
$SIG{CHLD} = sub { };    # ends select() early when a child ends

my %ENVIRONMENT = (
  PATH => '/usr/local/bin:/usr/bin:/bin',
  HOME => '/workspace',
  LANG => 'C.UTF-8',
  TERM => 'dumb',
);
my $CHUNK = 65536;       # bytes per argv string (the kernel takes up to 128 KiB)
my $LINGERING = 8;       # pipes of ended calls still held by processes they left running
my $MAX_REQUEST = 8 << 20;
my $TICKS = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

my $in = '';             # what corral sent and is not yet parsed
my $call;                # the call under way
my @lingering;           # their pipes: drained and discarded until the last writer closes them

print "H 1\n";

while (1) {
  my $rin = '';
  vec($rin, 0, 1) = 1;
  vec($rin, fileno($call->{out}), 1) = 1 if $call && $call->{out};
  vec($rin, fileno($_), 1) = 1 for @lingering;
  my $wait = $call ? (defined $call->{status} ? 0.002 : 0.05) : 1.0;
  my $ready = select(my $rout = $rin, undef, undef, $wait);
  if ($ready > 0) {
    if (vec($rout, 0, 1)) {
      my $got = sysread(STDIN, $in, 65536, length $in);
      exit 0 unless $got;    # corral is gone
      fail('request too large') if length($in) > $MAX_REQUEST;
      requests();
    }
    collect($call) if $call && $call->{out} && vec($rout, fileno($call->{out}), 1);
    drain(grep { vec($rout, fileno($_), 1) } @lingering);
  }
  reap();
  finish() if $call && defined $call->{status} && (!$call->{out} || now() >= $call->{linger_until});
}

sub fail {
  print "F $_[0]\n";
  exit 1;
}

sub now { my ($real) = POSIX::times(); return $real / $TICKS }

# Takes whole requests out of $in.
sub requests {
  while ((my $nl = index($in, "\n")) >= 0) {
    my $line = substr($in, 0, $nl);
    if ($line eq 'P') {
      substr($in, 0, $nl + 1) = '';
      print "P\n";
      next;
    }
    $line =~ /^C (\S+) (\d+) ([01]) (\d+)$/ or fail('bad request');
    my ($id, $cap, $tail, $count) = ($1, $2, $3, $4);
    my ($at, @parts) = ($nl + 1);
    for (1 .. $count) {
      my $end = index($in, "\n", $at);
      return if $end < 0;
      my $length = substr($in, $at, $end - $at);
      $length =~ /^\d+$/ or fail('bad length');
      return if length($in) < $end + 1 + $length;
      push @parts, substr($in, $end + 1, $length);
      $at = $end + 1 + $length;
    }
    substr($in, 0, $at) = '';
    start($id, $cap, $tail, @parts);
  }
}

sub start {
  my ($id, $cap, $tail, $script, @args) = @_;
  return refuse($id, 'another call is running in this sandbox') if $call;
  # Each argument travels as a count of chunks and the chunks; the script's prologue joins them.
  my @argv;
  for my $arg (@args) {
    my @chunks = length($arg) ? unpack("(a$CHUNK)*", $arg) : ();
    push @argv, scalar(@chunks), @chunks;
  }
  pipe(my $out, my $write) or return refuse($id, "no pipe: $!");
  my $pid = fork();
  if (!defined $pid) {
    close $out;
    close $write;
    return refuse($id, "the sandbox could not start a process ($!): it runs as many as it may");
  }
  if ($pid == 0) {
    POSIX::setsid();
    open(STDIN, '<', '/dev/null');
    open(STDOUT, '>&', $write);
    open(STDERR, '>&', $write);
    chdir '/workspace';
    %ENV = %ENVIRONMENT;
    $SIG{$_} = 'DEFAULT' for qw(PIPE CHLD);
    { no warnings 'exec'; exec { '/bin/bash' } 'bash', '--noprofile', '--norc', '-c', $script, 'corral', @argv; }
    print STDERR "corral: the call could not start bash: $!\n";
    POSIX::_exit(127);
  }
  close $write;
  fcntl($out, POSIX::F_SETFL(), fcntl($out, POSIX::F_GETFL(), 0) | POSIX::O_NONBLOCK());
  $call = { id => $id, pid => $pid, out => $out, cap => $cap, tail => $tail, kept => '', total => 0 };
}

# Reads what the call wrote: keeps the first cap bytes, or the last cap bytes, and counts all.
sub collect {
  my ($c) = @_;
  while (1) {
    my $got = sysread($c->{out}, my $chunk, 65536);
    return if !defined $got && ($!{EAGAIN} || $!{EINTR});
    if (!$got) {
      close $c->{out};
      $c->{out} = undef;
      return;
    }
    $c->{total} += $got;
    if ($c->{tail}) {
      $c->{kept} .= $chunk;
      $c->{kept} = substr($c->{kept}, -$c->{cap}) if length($c->{kept}) > 2 * $c->{cap} + 65536;
    } elsif (length($c->{kept}) < $c->{cap}) {
      $c->{kept} .= substr($chunk, 0, $c->{cap} - length($c->{kept}));
    }
  }
}

sub drain {
  for my $fh (@_) {
    my $got = sysread($fh, my $discard, 65536);
    next if !defined $got && ($!{EAGAIN} || $!{EINTR});
    next if $got;
    close $fh;
    @lingering = grep { $_ != $fh } @lingering;
  }
}

# As init it reaps every orphan; the call's own status is kept.
sub reap {
  while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
    next unless $call && $pid == $call->{pid};
    $call->{status} = $?;
    $call->{linger_until} = now() + 0.02;    # what its last writes still hold in flight
  }
}

sub finish {
  my $c = $call;
  collect($c) if $c->{out};
  if ($c->{out}) {    # a process the call left running still holds its pipe
    fcntl($c->{out}, POSIX::F_SETFL(), fcntl($c->{out}, POSIX::F_GETFL(), 0) | POSIX::O_NONBLOCK());
    push @lingering, $c->{out};
    close(shift @lingering) while @lingering > $LINGERING;
  }
  my $status = $c->{status};
  my $code = POSIX::WIFEXITED($status) ? POSIX::WEXITSTATUS($status) : -1;
  my $signal = POSIX::WIFSIGNALED($status) ? POSIX::WTERMSIG($status) : 0;
  my $kept = $c->{tail} && length($c->{kept}) > $c->{cap} ? substr($c->{kept}, -$c->{cap}) : $c->{kept};
  print "D $c->{id} $code $signal $c->{total} " . length($kept) . "\n" . $kept;
  $call = undef;
}

sub refuse {
  my ($id, $message) = @_;
  print "E $id " . length($message) . "\n" . $message;
  return;
}
