"""chaos_procs.py - the daemons of the chaos suite and the faults done to
them: tsunagu-relay (SIGUSR2 live upgrade, SIGHUP reload, SIGKILL and a
restart within 1 s), two tsunagu-signal nodes on one redis-server (SIGTERM
and restart, SIGKILL and restart), redis-server (restart, SIGSTOP/SIGCONT);
/proc readings (RSS, descriptors, CPU) of each.

Every process is started here and killed by PID in close(), also on failure.
The relay's live upgrade forks its successor, which outlives its parent: the
suite makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER) so those
successors stay its descendants, learns their PIDs from the MAINPID=
notification the old relay sends to $NOTIFY_SOCKET (docs/relay.md), and
reaps them itself."""
import ctypes
import os
import signal
import socket
import subprocess
import time

from bot_harness import SECRET, free_port, wait_tcp
import signal_cluster

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise AssertionError("prctl(PR_SET_CHILD_SUBREAPER) failed: errno %d" % ctypes.get_errno())


def reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def alive(pid):
    reap(pid)
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid, secs):
    end = time.time() + secs
    while time.time() < end:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def proc_stat(pid):
    """(rss KiB, open descriptors, cpu seconds) of pid, None if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            rss = int([l for l in f if l.startswith("VmRSS:")][0].split()[1])
        fds = len(os.listdir("/proc/%d/fd" % pid))
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
        cpu = (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
        return rss, fds, cpu
    except (OSError, IndexError, ValueError):
        return None


class Cast:
    """relay + redis + two signaling nodes, in tmpdir."""

    def __init__(self, a, tmpdir, log):
        self.a = a
        self.dir = tmpdir
        self.log = log              # log(line): the suite's printer
        self.procs = []             # every Popen we started
        self.extra_pids = set()     # relay successors (descendants, not Popen children)
        self.relay_pid = None
        self.relay_argv = None
        self.nodes = [None, None]
        self.node_ports = [free_port(), free_port()]
        self.redis = None
        self.notify = None
        self.relay_gen = 0

    # --- plumbing ---
    def spawn(self, argv, logname, env=None, **kw):
        f = open(os.path.join(self.dir, logname), "ab")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env, **kw)
        f.close()
        self.procs.append(p)
        return p

    def logtext(self, name):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        pids = [p.pid for p in self.procs if p.poll() is None] + \
               [p for p in self.extra_pids if alive(p)]
        if self.redis and self.redis.proc and self.redis.proc.poll() is None:
            os.kill(self.redis.proc.pid, signal.SIGCONT)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for pid in self.extra_pids:
            wait_gone(pid, 5)
        if self.redis:
            self.redis.stop()
            self.redis.__exit__(None, None, None)
        if self.notify:
            self.notify.close()

    # --- start ---
    def start(self):
        become_subreaper()
        # appendonly: docs/cluster.md's delivery guarantee holds for a Redis that keeps
        # what it acknowledged; a process kill then loses nothing (the AOF is written
        # before the answer). --redis-arg replaces it (--redis-arg=--appendonly --redis-arg=no)
        self.redis = signal_cluster.Redis(*(self.a.redis_args or ["--appendonly", "yes"]))
        self.redis.start()
        self.start_relay()
        for i in (0, 1):
            self.start_node(i)

    def start_relay(self):
        npath = os.path.join(self.dir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(npath)
        self.notify.settimeout(0.1)
        self.turn_port = free_port(also_udp=True)
        self.relay_metrics = free_port()
        self.relay_argv = [os.path.abspath(self.a.relay_exe), "--listen",
                           "127.0.0.1:%d" % self.turn_port, "--auth-secret", SECRET,
                           "--realm", "tsunagu", "--metrics-listen",
                           "127.0.0.1:%d" % self.relay_metrics, "--threads", "2",
                           "--drain-seconds", "5", "--log-level", "info"]
        self.relay_env = dict(os.environ, NOTIFY_SOCKET=npath)
        self._spawn_relay()

    def _spawn_relay(self):
        self.relay_gen += 1
        p = self.spawn(self.relay_argv, "relay%d.log" % self.relay_gen, env=self.relay_env)
        self.relay_pid = p.pid
        wait_tcp(self.turn_port, 10, p, "tsunagu-relay")

    @property
    def turn_url(self):
        return "turn:127.0.0.1:%d" % self.turn_port

    def node_argv(self, i):
        return [os.path.abspath(self.a.signal_exe), "--listen",
                "127.0.0.1:%d" % self.node_ports[i], "--turn-url", self.turn_url,
                "--turn-secret", SECRET, "--max-connections-per-ip", "0",
                "--max-unjoined-per-ip", "0", "--max-joins-per-ip-per-sec", "0",
                "--max-room-creates-per-ip-per-min", "0", "--max-held-per-ip", "0",
                "--rate-limit", "1000", "--redis", self.redis.url, "--drain-seconds", "3",
                # the room streams (docs/cluster.md "Durable delivery") reach their steady
                # size --stream-seconds in, before the baseline (the warm-up is longer), so
                # Redis holds as much at the baseline as at the end (outages here < 4 s)
                "--redis-stream-seconds", str(self.a.stream_seconds),
                "--log-level", "info"]

    def start_node(self, i):
        p = self.spawn(self.node_argv(i), "node%d.log" % (i + 1))
        self.nodes[i] = p
        wait_tcp(self.node_ports[i], 10, p, "tsunagu-signal node %d" % (i + 1))

    def daemons(self):
        """name -> pid of each daemon now."""
        return {"relay": self.relay_pid, "signal-1": self.nodes[0].pid,
                "signal-2": self.nodes[1].pid, "redis": self.redis.proc.pid}

    def stats(self):
        return {k: proc_stat(v) for k, v in self.daemons().items()}

    # --- faults: each returns a short description of what happened ---
    def relay_usr2(self):
        while True:     # what the relay said before
            try:
                self.notify.recv(4096)
            except (socket.timeout, TimeoutError, BlockingIOError):
                break
        old = self.relay_pid
        t0 = time.time()
        os.kill(old, signal.SIGUSR2)
        new = None
        while time.time() - t0 < 15 and new is None:
            try:
                msg = self.notify.recv(4096).decode(errors="replace")
            except (socket.timeout, TimeoutError, BlockingIOError):
                continue
            for part in msg.split("\n"):
                if part.startswith("MAINPID="):
                    new = int(part[8:])
        if new is None:
            raise AssertionError("relay SIGUSR2: no MAINPID= from pid %d within 15 s" % old)
        self.extra_pids.add(new)
        self.relay_pid = new
        if not wait_gone(old, 10):
            raise AssertionError("relay SIGUSR2: the old process %d did not exit" % old)
        return "pid %d -> %d in %.0f ms" % (old, new, (time.time() - t0) * 1e3)

    def relay_hup(self):
        os.kill(self.relay_pid, signal.SIGHUP)
        return "pid %d" % self.relay_pid

    def relay_crash(self, down):
        old = self.relay_pid
        t0 = time.time()
        os.kill(old, signal.SIGKILL)
        if not wait_gone(old, 5):
            raise AssertionError("relay pid %d survived SIGKILL" % old)
        time.sleep(max(0.0, down - (time.time() - t0)))
        self._spawn_relay()
        back = time.time() - t0
        if back > 1.0 + 0.5:
            raise AssertionError("relay took %.2f s to come back (want about 1 s)" % back)
        return "pid %d killed, pid %d listening %.2f s later" % (old, self.relay_pid, back)

    def node_term(self, i):
        p = self.nodes[i]
        t0 = time.time()
        p.send_signal(signal.SIGTERM)
        try:
            code = p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError("signal-%d did not exit within 15 s of SIGTERM" % (i + 1))
        t_exit = time.time() - t0
        self.start_node(i)
        return "signal-%d exited %d after %.2f s, back after %.2f s" % (
            i + 1, code, t_exit, time.time() - t0)

    def node_kill(self, i, down):
        p = self.nodes[i]
        t0 = time.time()
        p.kill()
        p.wait(timeout=5)
        time.sleep(down)
        self.start_node(i)
        return "signal-%d SIGKILL, back after %.2f s" % (i + 1, time.time() - t0)

    def redis_restart(self, down):
        t0 = time.time()
        self.redis.stop()
        time.sleep(down)
        self.redis.start()
        return "redis SIGKILL, back after %.2f s" % (time.time() - t0)

    def redis_stop(self, secs):
        pid = self.redis.proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(secs)
        finally:
            os.kill(pid, signal.SIGCONT)
        return "redis SIGSTOP %.2f s, SIGCONT" % secs
