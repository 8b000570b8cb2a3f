# corral's launcher: pid 1 of a local sandbox (bubblewrap --as-pid-1). It runs each call corral
# sends in a bash of its own, in a session of its own, with a pipe of its own for stdout and stderr;
# it keeps at most the call's output cap of what the call writes, and answers with the exit status
# the kernel reports. The next call's bash is started ahead ("standby"), right after a call ends,
# and waits for its script on its stdin, so that a call does not wait for bash to start.
#
# Its own stdin and stdout (corral's channel) are out of the sandbox's reach: it is not dumpable,
# so /proc/1/fd, /proc/1/mem and ptrace are closed to the sandbox's user, and as the namespace's
# init it takes no signal from inside it that it has no handler for (its only one is SIGCHLD's,
# which just wakes it). Corral stops calls itself, from outside the sandbox.
#
# Requests (stdin):  C <id> <cap> <tail 0|1> <count>\n then <count> times <length>\n<bytes>
#                    (the script, then its arguments)
#                    K <id>\n (corral is stopping the call: no standby is started after it, which
#                    the stop could take for one of the call's)
#                    P\n (ping)
# Answers (stdout):  H 1\n once started; P\n;
#                    S <id> <pid>\n               (the call's bash, its pid in here)
#                    D <id> <exit code or -1> <signal> <total bytes> <length>\n<kept output>
#                    E <id> <length>\n<message>   (the call could not start)
#                    F <message>\n                (the launcher gives up)
#
# With the arguments "egress <port>", it also keeps a forwarder running (its child, restarted if it
# dies): 127.0.0.1:<port> in the sandbox's own network namespace, to the egress proxy's Unix socket
# at /run/corral/egress.sock, which corral serves only while the sandbox may reach something. The
# calls get HTTP_PROXY and HTTPS_PROXY pointing at it. The forwarder holds no secret and decides
# nothing: corral's proxy, outside the sandbox, checks every connection.
#
# Only perl-base is needed, and no module but Config (POSIX alone would triple its start time):
# system calls by number, Linux's constants by value.
use strict;
use warnings;
use Config;

# prctl and setsid, per architecture
my %SYSCALLS = (x86_64 => [157, 112], aarch64 => [167, 157], i386 => [172, 66], i686 => [172, 66]);
my ($arch) = $Config{archname} =~ /^([^-]+)/;
my ($PRCTL, $SETSID) = @{ $SYSCALLS{$arch} or fail("no system call numbers known for $arch") };
my ($F_GETFL, $F_SETFL, $O_NONBLOCK, $WNOHANG, $PR_SET_DUMPABLE) = (3, 4, 04000, 1, 4);
syscall($PRCTL, $PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 or fail("prctl(PR_SET_DUMPABLE): $!");
open(STDERR, '>', '/dev/null') or fail("stderr: $!");
binmode STDIN;
binmode STDOUT;
$| = 1;
$SIG{PIPE} = 'IGNORE';   # a standby that died must not take the launcher with it
$SIG{CHLD} = sub { };    # ends select() early when a child ends

my %ENVIRONMENT = (
  PATH => '/usr/local/bin:/usr/bin:/bin',
  HOME => '/workspace',
  LANG => 'C.UTF-8',
  TERM => 'dumb',
);
my $LINGERING = 8;       # pipes of ended calls still held by processes they left running
my $MAX_REQUEST = 8 << 20;
my $LINGER = 0.02;       # seconds a call's last writes may take to arrive after it ended
my $FLOOD = 1 << 20;     # bytes of a call's output read at full speed

# What a standby bash runs: it reads the call (a count, then each part as its length and bytes;
# the script first), stops reading its stdin, and runs the script with the arguments in
# __corral_a. read -N counts bytes in the C locale.
my $STANDBY = <<'BASH';
LC_ALL=C IFS= read -r __corral_n || exit 0
__corral_p=()
while (( __corral_n-- > 0 )); do
  LC_ALL=C IFS= read -r __corral_l || exit 0
  LC_ALL=C IFS= read -r -d '' -N "$__corral_l" __corral_v
  __corral_p+=("$__corral_v")
done
exec </dev/null
__corral_c=${__corral_p[0]}
__corral_a=("${__corral_p[@]:1}")
unset __corral_n __corral_l __corral_v __corral_p
eval "$__corral_c"
BASH

my ($EGRESS_PORT) = @ARGV && $ARGV[0] eq 'egress' ? ($ARGV[1] =~ /^(\d+)$/) : ();
if ($EGRESS_PORT) {
  my $proxy = "http://127.0.0.1:$EGRESS_PORT";
  $ENVIRONMENT{$_} = $proxy for qw(HTTP_PROXY HTTPS_PROXY http_proxy https_proxy);
  $ENVIRONMENT{$_} = 'localhost,127.0.0.1,::1' for qw(NO_PROXY no_proxy);
}
my $forwarder;           # the forwarder's pid
my $forwarded_at = 0;    # when it was last started

my $in = '';             # what corral sent and is not yet parsed
my $call;                # the call under way
my $standby;             # the next call's bash, waiting for its script
my @lingering;           # pipes of ended calls: drained and discarded until their writers close
                         # (past $LINGERING, each by a child of its own: see linger)

print "H 1\n";
$standby = standby();
forward() if $EGRESS_PORT;

while (1) {
  my $rin = '';
  vec($rin, 0, 1) = 1;
  vec($rin, fileno($call->{out}), 1) = 1 if $call && $call->{out};
  vec($rin, fileno($_), 1) = 1 for @lingering;
  my $ready = select(my $rout = $rin, undef, undef, $call ? 0.05 : 1.0);
  if ($ready > 0) {
    if (vec($rout, 0, 1)) {
      my $got = sysread(STDIN, $in, 65536, length $in);
      exit 0 if defined $got && $got == 0;    # corral is gone
      fail("stdin: $!") if !defined $got && !$!{EINTR};
      fail('request too large') if length($in) > $MAX_REQUEST;
      requests();
    }
    collect($call) if $call && $call->{out} && vec($rout, fileno($call->{out}), 1);
    drain(grep { vec($rout, fileno($_), 1) } @lingering);
  }
  reap();
  if ($call && defined $call->{status}) {
    pending();
    my $stopped = $call->{stopped};
    finish();
    $standby = standby() unless $standby || $stopped;
  }
}

sub fail {
  print "F $_[0]\n";
  exit 1;
}

# Takes whole requests out of $in.
sub requests {
  while ((my $nl = index($in, "\n")) >= 0) {
    my $line = substr($in, 0, $nl);
    if ($line eq 'P') {
      substr($in, 0, $nl + 1) = '';
      print "P\n";
      next;
    }
    if ($line =~ /^K (\S+)$/) {
      substr($in, 0, $nl + 1) = '';
      $call->{stopped} = 1 if $call && $call->{id} eq $1;
      next;
    }
    $line =~ /^C (\S+) (\d+) ([01]) (\d+)$/ or fail('bad request');
    my ($id, $cap, $tail, $count) = ($1, $2, $3, $4);
    my $at = $nl + 1;
    for (1 .. $count) {
      my $end = index($in, "\n", $at);
      return if $end < 0;
      my $length = substr($in, $at, $end - $at);
      $length =~ /^\d+$/ or fail('bad length');
      return if length($in) < $end + 1 + $length;
      $at = $end + 1 + $length;
    }
    my $parts = substr($in, $nl + 1, $at - $nl - 1);
    substr($in, 0, $at) = '';
    start($id, $cap, $tail, $count, $parts);
  }
}

# Requests already sent (a K written before the call was killed), without waiting for more.
sub pending {
  my $rin = '';
  vec($rin, 0, 1) = 1;
  return unless select(my $rout = $rin, undef, undef, 0) > 0;
  my $got = sysread(STDIN, $in, 65536, length $in);
  return if !defined $got && $!{EINTR};
  exit 0 unless $got;
  fail('request too large') if length($in) > $MAX_REQUEST;
  requests();
}

# A bash in a session of its own, reading its call from a socket, writing to a pipe. The script
# comes on a socket (AF_UNIX, SOCK_STREAM): any process of the sandbox's user can open another's
# pipe through /proc/PID/fd, and a job left running wrote a script of its own into the waiting
# bash that way, and swallowed the real one; a socket cannot be opened so (ENXIO).
sub standby {
  socketpair(my $script, my $feed, 1, 1, 0) or return;    # AF_UNIX, SOCK_STREAM
  shutdown($script, 1);
  shutdown($feed, 0);
  pipe(my $out, my $write) or return;
  my $pid = fork();
  return unless defined $pid;
  if ($pid == 0) {
    syscall($SETSID);
    open(STDIN, '<&', $script);
    open(STDOUT, '>&', $write);
    open(STDERR, '>&', $write);
    chdir '/workspace';
    %ENV = %ENVIRONMENT;
    $SIG{$_} = 'DEFAULT' for qw(PIPE CHLD);
    { no warnings 'exec'; exec { '/bin/bash' } 'bash', '--noprofile', '--norc', '-c', $STANDBY, 'corral'; }
    print STDERR "corral: the call could not start bash: $!\n";
    CORE::exit(127);
  }
  close $script;
  close $write;
  nonblocking($out);
  return { pid => $pid, feed => $feed, out => $out };
}

sub start {
  my ($id, $cap, $tail, $count, $parts) = @_;
  return refuse($id, 'another call is running in this sandbox') if $call;
  reap();    # a standby that was killed (a shell restart) is replaced
  my $bash = $standby // standby();
  $standby = undef;
  return refuse($id, 'the sandbox could not start a process: it runs as many as it may; processes'
      . ' that earlier calls left running hold them, and a restart of the shell (restart: true)'
      . ' stops them') unless $bash;
  my $fed = feed($bash, "$count\n" . $parts);
  unless ($fed eq 'fed') {
    kill 'KILL', -$bash->{pid};    # its session: the stopped bash and anything it forked
    close $bash->{feed};
    close $bash->{out};
    return refuse($id, $fed eq 'idle'
      ? 'the call could not start: its shell took none of its script for 2 s (a process of the'
        . ' sandbox may be stopping it); nothing ran'
      : 'the call could not start: its shell ended before it read its script (a process of the'
        . ' sandbox may have killed it); nothing ran');
  }
  close $bash->{feed};
  print "S $id $bash->{pid}\n";
  $call = { id => $id, pid => $bash->{pid}, out => $bash->{out}, cap => $cap, tail => $tail,
            kept => '', total => 0 };
}

# Writes a call's request to its standby bash, waking it each time (a job an earlier call left
# running may have stopped it). Gives up when the bash takes nothing for 2 s: a blocking write to a
# bash that a job keeps stopping held the launcher, and with it the whole sandbox, for good.
# Returns 'fed', 'idle' (nothing taken for 2 s) or 'gone' (the bash closed its end: it died, and
# what it ran, if anything, was not this call).
sub feed {
  my ($bash, $data) = @_;
  my $fh = $bash->{feed};
  nonblocking($fh);
  my ($offset, $idle) = (0, 0);
  while ($offset < length $data) {
    kill 'CONT', $bash->{pid};
    my $wrote = syswrite($fh, $data, length($data) - $offset, $offset);
    if ($wrote) {
      ($offset, $idle) = ($offset + $wrote, 0);
      next;
    }
    return 'gone' if !defined $wrote && !$!{EAGAIN} && !$!{EINTR};
    return 'idle' if $idle > 2;
    my $win = '';
    vec($win, fileno($fh), 1) = 1;
    # a wait that a signal (a child's end) cut short counts for little, one that timed out in full
    $idle += select(undef, $win, undef, 0.01) == 0 ? 0.01 : 0.001;
  }
  return 'fed';
}

# Reads what the call wrote: keeps the first cap bytes, or the last cap bytes, and counts all.
# Past $FLOOD bytes it reads one chunk a millisecond (64 MB/s): what it reads then only counts, and
# a command that writes without end waits on its full pipe instead of burning the machine's memory
# bandwidth.
sub collect {
  my ($c, $ending) = @_;    # ending: the call ended; read what is left at once (up to $FLOOD)
  my $budget = $FLOOD;
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
    if ($ending) {
      return if ($budget -= $got) <= 0;
    } elsif ($c->{total} > $FLOOD) {
      select(undef, undef, undef, 0.001);
      return;
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

# As init it reaps every orphan; the call's own status is kept, and a standby that died is
# replaced when the next call comes.
sub reap {
  while ((my $pid = waitpid(-1, $WNOHANG)) > 0) {
    if ($call && $pid == $call->{pid}) {
      $call->{status} = $?;
    } elsif ($standby && $pid == $standby->{pid}) {
      close $standby->{feed};
      close $standby->{out};
      $standby = undef;
    } elsif ($forwarder && $pid == $forwarder) {
      $forwarder = undef;
    }
  }
  forward() if $EGRESS_PORT && !$forwarder && time() > $forwarded_at;    # at most once a second
}

# Starts the forwarder (see the top): one process, every connection in one select loop, at most
# 64 at once, 256 KB buffered each way per connection.
sub forward {
  $forwarded_at = time();
  my $pid = fork();
  return unless defined $pid;
  if ($pid) {
    $forwarder = $pid;
    return;
  }
  # (no session of its own: a call's stop never takes a process of the launcher's session for
  # one of the call's)
  $0 = 'corral-egress-forwarder';
  $SIG{CHLD} = 'DEFAULT';
  let_go();
  my ($AF_UNIX, $AF_INET, $SOCK_STREAM, $SOL_SOCKET, $SO_REUSEADDR, $SHUT_WR) = (1, 2, 1, 1, 2, 1);
  my ($BUFFER, $MAX) = (256 << 10, 64);
  socket(my $listener, $AF_INET, $SOCK_STREAM, 0) or CORE::exit(1);
  setsockopt($listener, $SOL_SOCKET, $SO_REUSEADDR, pack('i', 1));
  bind($listener, pack('S n C4 x8', $AF_INET, $EGRESS_PORT, 127, 0, 0, 1)) or CORE::exit(1);
  listen($listener, 128) or CORE::exit(1);
  nonblocking($listener);
  my @pairs;    # [client, proxy, client->proxy bytes, proxy->client bytes, client eof, proxy eof]
  while (1) {
    my ($rin, $win) = ('', '');
    vec($rin, fileno($listener), 1) = 1 if @pairs < $MAX;
    for my $p (@pairs) {
      vec($rin, fileno($p->[0]), 1) = 1 if !$p->[4] && length($p->[2]) < $BUFFER;
      vec($rin, fileno($p->[1]), 1) = 1 if !$p->[5] && length($p->[3]) < $BUFFER;
      vec($win, fileno($p->[1]), 1) = 1 if length $p->[2];
      vec($win, fileno($p->[0]), 1) = 1 if length $p->[3];
    }
    next if select(my $rout = $rin, my $wout = $win, undef, undef) <= 0;
    if (vec($rout, fileno($listener), 1) && accept(my $client, $listener)) {
      socket(my $proxy, $AF_UNIX, $SOCK_STREAM, 0);
      if ($proxy && connect($proxy, pack('S Z108', $AF_UNIX, '/run/corral/egress.sock'))) {
        setsockopt($client, 6, 1, pack('i', 1));    # IPPROTO_TCP, TCP_NODELAY: no small write waits
        nonblocking($client);
        nonblocking($proxy);
        push @pairs, [$client, $proxy, '', '', 0, 0];
      } else {
        my $body = "corral egress: this sandbox has no network (its environment's networking is none)\n";
        syswrite($client, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: "
          . length($body) . "\r\nConnection: close\r\n\r\n$body");
        close $client;
      }
    }
    for my $p (@pairs) {
      for my $side (0, 1) {    # 0: client -> proxy, 1: proxy -> client
        my ($from, $to, $pending, $eof) = ($p->[$side], $p->[1 - $side], 2 + $side, 4 + $side);
        if (!$p->[$eof] && vec($rout, fileno($from), 1)) {
          my $got = sysread($from, $p->[$pending], 65536, length $p->[$pending]);
          if (defined $got && $got == 0) {
            $p->[$eof] = 1;
          } elsif (!defined $got && !$!{EAGAIN} && !$!{EINTR}) {
            $p->[6] = 1;
          }
        }
        # write at once what was just read (the socket is almost always writable): a select round
        # less per hop
        if (length $p->[$pending] && (vec($wout, fileno($to), 1) || vec($rout, fileno($from), 1))) {
          my $put = syswrite($to, $p->[$pending]);
          if (defined $put) {
            substr($p->[$pending], 0, $put) = '';
          } elsif (!$!{EAGAIN} && !$!{EINTR}) {
            $p->[6] = 1;
          }
        }
        if ($p->[$eof] == 1 && !length $p->[$pending]) {    # all sent: pass the end on
          shutdown($to, $SHUT_WR);
          $p->[$eof] = 2;
        }
      }
    }
    for my $p (grep { $_->[6] || ($_->[4] == 2 && $_->[5] == 2) } @pairs) {
      close $p->[0];
      close $p->[1];
    }
    @pairs = grep { !$_->[6] && !($_->[4] == 2 && $_->[5] == 2) } @pairs;
  }
}

sub finish {
  my $c = $call;
  close $c->{feed} if $c->{feed};
  collect($c, 1) if $c->{out};
  if ($c->{out}) {    # its last writes may still be in flight, or a process it left holds the pipe
    my $rin = '';
    vec($rin, fileno($c->{out}), 1) = 1;
    select(my $rout = $rin, undef, undef, $LINGER);
    collect($c, 1);
  }
  if ($c->{out}) {    # a process the call left running holds its pipe
    linger($c->{out});
  }
  my $status = $c->{status};
  my $signal = $status & 127;
  my $code = $signal ? -1 : $status >> 8;
  my $kept = $c->{tail} && length($c->{kept}) > $c->{cap} ? substr($c->{kept}, -$c->{cap}) : $c->{kept};
  print "D $c->{id} $code $signal $c->{total} " . length($kept) . "\n" . $kept;
  $call = undef;
}

# Keeps draining a pipe of an ended call that a process the call left running still holds:
# here while there are at most $LINGERING, then in a child of its own. Closing it killed its
# writer with SIGPIPE at its next write: a server started with & died a few calls later.
sub linger {
  push @lingering, $_[0];
  return if @lingering <= $LINGERING;
  my $oldest = shift @lingering;
  my $pid = fork();
  if (!defined $pid || $pid) {    # (no process to spare: the pipe is closed, as before)
    close $oldest;
    return;
  }
  $0 = 'corral-drain';
  $SIG{CHLD} = 'DEFAULT';
  let_go();
  while (1) {
    my $got = sysread($oldest, my $discard, 65536);
    if (defined $got) {
      CORE::exit(0) unless $got;
      select(undef, undef, undef, 0.001);    # at most 64 MB/s of discarded output
      next;
    }
    CORE::exit(0) unless $!{EAGAIN} || $!{EINTR};
    my $rin = '';
    vec($rin, fileno($oldest), 1) = 1;
    select(my $rout = $rin, undef, undef, undef);
  }
}

# In a child of the launcher: corral's channel and the calls' pipes are not the child's to hold
# open.
sub let_go {
  open(STDIN, '<', '/dev/null');
  open(STDOUT, '>', '/dev/null');
  close $_ for grep { defined } ($standby ? @$standby{qw(feed out)} : ()), ($call ? $call->{out} : ()), @lingering;
}

sub nonblocking {
  my ($fh) = @_;
  fcntl($fh, $F_SETFL, fcntl($fh, $F_GETFL, 0) | $O_NONBLOCK) or fail("fcntl: $!");
}

sub refuse {
  my ($id, $message) = @_;
  print "E $id " . length($message) . "\n" . $message;
  return;
}
