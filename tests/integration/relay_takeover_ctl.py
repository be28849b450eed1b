#!/usr/bin/python3
"""relay_takeover_ctl.py - takeover between relays that are not parent and
child (docs/relay.md "Takeover between processes"): --control-socket PATH
on the running relay, --takeover-from PATH on the new one, as two containers
sharing the socket's directory and the host network would run them.

Real binaries on loopback. Relay A runs from a copy "v1" of the binary
with --control-socket; the test (not A) starts each new relay.
1. B ("v2", another copy) --takeover-from PATH under ~1400 UDP messages/s on
   22 allocations (channel pairs, Send/Data to an IPv4 and an IPv6 peer, a
   dual allocation): every message arrives once and in order; B answers on
   the adopted listeners (/healthz, a new UDP Allocate, requests on moved
   allocations with A's nonce); PATH is now B's socket (SO_PEERCRED pid,
   mode 0600); A keeps its TCP and TLS allocations relaying (drained)
   until they are released, then exits 0.
2. Rollback: C from the v1 copy takes over from B the same way (zero loss),
   B exits 0; C runs v1 (inode of /proc/PID/exe).
3. SIGUSR2 still works after a control-socket takeover: C's child D takes
   over (zero loss) and serves the control socket at PATH; then E takes
   over from D through PATH (zero loss); then F, in a PID namespace of its
   own (unshare, as another container), takes over from E, and G on the
   host's side takes over from F (zero loss both times; F sees E, then G,
   as pid 0, and must not signal or wait for "pid 0").
4. Refusals, under continuous traffic (zero loss through all of them), each
   with exit status 2 and a message naming the cause, the running relay
   serving on: an incompatible configuration (--threads 3); nothing at a
   path; a stale socket nobody listens on; PATH chowned to another uid;
   PATH with mode 0660; a client of another uid on PATH (made 0666 for it:
   SO_PEERCRED refuses it); a client sending junk (closed at once); a silent
   client (closed after 3 s; a takeover meanwhile is refused as busy); a
   HELO of version 2 (refused naming both versions); a fake relay sending a
   version-2 blob (the new relay refuses naming both versions, tells it
   NAK_, exits 2); --control-socket on a regular file or on a live relay's
   socket (a fresh start refused). None of the junk counts as a failed
   takeover; the two real attempts do.

Usage: relay_takeover_ctl.py PATH/TO/tsunagu-relay
"""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import *  # noqa: E402,F401,F403
from relay_takeover import (kill_relays, Traffic, check_moved, log_text, metric,  # noqa: E402
                            no_sanitizer_report, pid_gone, setup_udp, setup_v6, stop_cleanly,
                            tls_allocate, wait_gone, wait_log)

TM = TIMEOUT_MULT
N_ALLOCS = 8 * 2 + 4 + 2


def peer_pid(path):
    """The pid serving the unix socket at path (SO_PEERCRED), or None."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect(path)
        pid, _, _ = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        return pid
    except OSError:
        return None
    finally:
        s.close()


def ctl_client(path, send=None, wait=5.0):
    """Connect to path, send `send` (bytes) if given, and read what the relay
    answers until it closes. (list of messages, seconds until closed)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    t0 = time.monotonic()
    if send is not None:
        s.send(send)
    s.settimeout(wait * TM)
    got = []
    try:
        while True:
            m = s.recv(4096)
            if not m:
                break
            got.append(m)
    except (socket.timeout, TimeoutError, ConnectionResetError):
        pass
    s.close()
    return got, time.monotonic() - t0


def main():
    exe = os.path.abspath(relay_exe())
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="relay-takeover-ctl-")
    os.chmod(tmp, 0o755)  # a uid-65534 client must reach the socket in step 4
    conf = os.path.join(tmp, "relay.conf")
    with open(conf, "w") as f:
        f.write("threads = 2\nuser = alice:pa55\nallow-peer = 127.0.0.1/32\n"
                "allow-peer = ::1/128\ndrain-seconds = 60\n")
    if not shutil.which("openssl"):
        raise SystemExit("openssl command missing: install Debian package 'openssl'")
    for tool in ("setpriv", "unshare"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing: install Debian package 'util-linux'")
    cert, key = os.path.join(tmp, "relay.crt"), os.path.join(tmp, "relay.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=ctl", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    v1, v2 = os.path.join(tmp, "v1-tsunagu-relay"), os.path.join(tmp, "v2-tsunagu-relay")
    # v1: $TSUNAGU_OLD_RELAY when set (an earlier build that has
    # --control-socket), else this binary; v2 is always this binary, and
    # every refusal below is this binary's
    old_exe = os.path.abspath(os.environ.get("TSUNAGU_OLD_RELAY") or exe)
    print(f"# v1 {old_exe}\n# v2 {exe}", flush=True)
    shutil.copy2(old_exe, v1)
    shutil.copy2(exe, v2)
    ctl = os.path.join(tmp, "relay.ctl")
    tport = free_port(socket.SOCK_STREAM)
    relay = Relay(v1, "--tls-listen", f"127.0.0.1:{tport}", "--cert", cert, "--key", key,
                  "--control-socket", ctl, config=conf, v6=True)
    procs = []  # Popen of every relay the test starts after A
    pids = [relay.proc.pid]
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    peer6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    peer6.bind(("::1", 0))
    tpeer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tpeer.bind(("127.0.0.1", 0))
    traffic = Traffic()

    def start(binary, *extra, prefix=()):
        """A new relay with A's flags plus extra, logging to the shared log
        (run under `prefix`, e.g. unshare, when given)."""
        p = subprocess.Popen(list(prefix) + [binary] + relay.args + list(extra),
                             stdout=relay.log, stderr=relay.log)
        procs.append(p)
        pids.append(p.pid)
        return p

    def refused(what, binary, extra, want):
        """A new relay that must exit 2 with `want` in its output; returns
        the Popen (or None) once it exited."""
        p = subprocess.Popen([binary] + relay.args + list(extra), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        pids.append(p.pid)
        try:
            out, _ = p.communicate(timeout=15 * TM)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        last = [l for l in out.splitlines() if "tsunagu-relay:" in l and "warn" not in l]
        no_sanitizer_report(c, out, f"{what}: no sanitizer report in the refused relay's output")
        c.ok(p.returncode == 2 and re.search(want, out) is not None,
             f"{what}: exit 2 and the message says why", f"rc={p.returncode}: {out[-1500:]}")
        if last:
            print(f"# {what}: {last[-1]}", flush=True)
        return out

    def takeover(binary, old_pid, what, extra=("--takeover-from",)):
        """Start a relay taking over from PATH under traffic; its Popen."""
        mark = len(log_text(relay))
        box = {}
        traffic.run(2.0, lambda: box.setdefault("p", start(binary, *extra, ctl)))
        p = box["p"]
        m = wait_log(relay, r"pid (\d+) took over from pid (\d+)[^\n]*", 10, mark)
        if m:
            print(f"# {what}: {m.group(0)}", flush=True)
        c.ok(m is not None and int(m.group(1)) == p.pid and int(m.group(2)) == old_pid,
             f"{what}: pid {p.pid} took over from pid {old_pid}", log_text(relay)[mark:][-3000:])
        pw = wait_log(relay, r"workers paused (\d+) ms", 5, mark)
        print(f"# {what}: workers paused {pw.group(1) if pw else '?'} ms", flush=True)
        traffic.check(c, f"{what}: UDP flows on the same allocations")
        deadline = time.time() + 3 * TM
        while peer_pid(ctl) != p.pid and time.time() < deadline:
            time.sleep(0.05)
        st = os.lstat(ctl)
        c.ok(peer_pid(ctl) == p.pid and (st.st_mode & 0o777) == 0o600,
             f"{what}: the new relay serves the control socket at the same path, mode 0600",
             f"peer {peer_pid(ctl)}, mode {st.st_mode & 0o777:o}")
        return p

    try:
        st = os.lstat(ctl)
        c.ok(stat_is_sock(st) and (st.st_mode & 0o777) == 0o600 and peer_pid(ctl) == pids[0],
             "A serves its control socket, mode 0600")
        clients, pairs, senders = setup_udp(relay, c, traffic, peer)
        clients += setup_v6(relay, c, traffic, peer6)
        traffic.clients = clients
        # a TCP allocation relaying to tpeer over a channel, both ways (flows)
        t = Client(relay.addr, "tcp", "alice", "pa55")
        c.success(t.allocate(), "TCP allocation in A")
        c.success(t.bind(0x4300, tpeer.getsockname()), "TCP allocation: channel to a UDP peer")
        tcp_flows = [traffic.flow(lambda p: t.send_chan(0x4300, p)),
                     traffic.flow(lambda p: tpeer.sendto(p, t.relayed))]
        traffic.watch(t.sock, "tcp")
        traffic.watch(tpeer, "udp")
        tl = tls_allocate(tport)
        c.ok(tl is not None, "TLS allocation in A")
        c.ok(tl is not None and tl.permit(tpeer.getsockname()).cls == SUCCESS,
             "TLS allocation: permission for the UDP peer")
        traffic.start_rx()
        traffic.run(0.5)
        traffic.check(c, "before: flows through A")

        # ---- 1. B (v2) takes over from A through the control socket
        a_pid = pids[0]
        b = takeover(v2, a_pid, "A -> B (--takeover-from)")
        c.ok(b.poll() is None and relay.proc.poll() is None,
             "B serves; A stays while its TCP/TLS allocations live")
        c.ok(relay.http("/healthz")[0] == 200, "/healthz answers (B, adopted listener)")
        c.ok(metric(relay, "tsunagu_relay_allocations") == N_ALLOCS,
             f"B holds the {N_ALLOCS} UDP allocations",
             str(metric(relay, "tsunagu_relay_allocations")))
        c.ok(metric(relay, 'tsunagu_relay_takeovers_total{result="ok"}') == 1,
             "B counts the takeover")
        with traffic.rx_lock:
            check_moved(c, relay, pairs, senders, peer, "A -> B")
        n = Client(relay.addr, "udp", "alice", "pa55")
        c.success(n.allocate(), "A -> B: a new UDP Allocate on the adopted listener")
        c.success(n.refresh(0), "...released")
        n.close()
        # the TLS allocation is still A's: it refreshes and relays both ways
        if tl:
            c.success(tl.refresh(600), "TLS allocation in draining A: Refresh")
            tpeer.sendto(b"TKOV-tls", tl.relayed)
            got = tl.recv_data(3 * TM)
            c.ok(got is not None and got[2] == b"TKOV-tls",
                 "TLS allocation in draining A: peer -> client", repr(got))
        traffic.run(0.5)
        traffic.check(c, "TCP allocation relays on in draining A", tcp_flows)
        traffic.senders = [s for s in traffic.senders if s[0] not in tcp_flows]
        with traffic.rx_lock:
            traffic.sel.unregister(t.sock)
            traffic.sel.unregister(tpeer)
            c.success(t.refresh(0), "TCP allocation released")
            if tl:
                c.success(tl.refresh(0), "TLS allocation released")
        t.close()
        if tl:
            tl.close()
        try:
            rc = relay.proc.wait(10 * TM)
        except subprocess.TimeoutExpired:
            rc = None
        c.ok(rc == 0, "A exits 0 once its TCP/TLS allocations are gone", f"rc={rc}")
        c.ok(os.path.exists(ctl) and peer_pid(ctl) == b.pid,
             "A's exit left B's control socket in place")

        # ---- 2. rollback: C from the v1 binary takes over from B the same way
        cc = takeover(v1, b.pid, "B -> C rollback (--takeover-from)")
        try:
            rc = b.wait(10 * TM)
        except subprocess.TimeoutExpired:
            rc = None
        c.ok(rc == 0, "B exits 0 (nothing to drain)", f"rc={rc}")
        c.ok(os.stat(f"/proc/{cc.pid}/exe").st_ino == os.stat(v1).st_ino,
             "C runs the v1 binary (rollback)")
        c.ok(metric(relay, 'tsunagu_relay_takeovers_total{result="ok"}') == 2,
             "the takeover count crossed both processes: 2")

        # ---- 3. SIGUSR2 on C (it was started with --takeover-from: its
        # child must use the socketpair, not PATH), then E through PATH
        mark = len(log_text(relay))
        traffic.run(2.0, lambda: os.kill(cc.pid, signal.SIGUSR2))
        m = wait_log(relay, r"pid (\d+) took over from pid (\d+)", 10, mark)
        c.ok(m is not None and int(m.group(2)) == cc.pid, "SIGUSR2 on C: a child took over",
             log_text(relay)[mark:][-3000:])
        d_pid = int(m.group(1)) if m else None
        if d_pid:
            pids.append(d_pid)
        traffic.check(c, "SIGUSR2 after control-socket takeovers")
        try:
            rc = cc.wait(10 * TM)
        except subprocess.TimeoutExpired:
            rc = None
        c.ok(rc == 0, "C exits 0 after SIGUSR2", f"rc={rc}")
        deadline = time.time() + 3 * TM
        while d_pid and peer_pid(ctl) != d_pid and time.time() < deadline:
            time.sleep(0.05)
        c.ok(d_pid is not None and peer_pid(ctl) == d_pid,
             "the SIGUSR2 child serves the control socket at PATH")
        e = takeover(v2, d_pid or 0, "D -> E (--takeover-from after SIGUSR2)")
        c.ok(wait_gone(d_pid or e.pid, 10), "D exits")
        c.ok(metric(relay, 'tsunagu_relay_takeovers_total{result="ok"}') == 4,
             "takeovers ok 4 (two by PATH, one by SIGUSR2, one by PATH)")

        # ---- 3b. F in a PID namespace of its own, as in another container:
        # each side sees the other's pid as 0 (SO_PEERCRED across namespaces),
        # and the old relay must neither signal nor wait for "pid 0"
        mark = len(log_text(relay))
        box = {}
        traffic.run(2.0, lambda: box.setdefault("p", start(
            v2, "--takeover-from", ctl, prefix=("unshare", "--pid", "--fork", "--kill-child"))))
        m = wait_log(relay, r"pid (\d+) took over from pid (\d+)[^\n]*", 10, mark)
        c.ok(m is not None and m.group(1) == "1" and m.group(2) == "0",
             "E -> F (another PID namespace): F is pid 1 there and sees E as pid 0",
             log_text(relay)[mark:][-3000:])
        traffic.check(c, "E -> F (another PID namespace): UDP flows on the same allocations")
        c.ok(wait_gone(e.pid, 10), "E exits after handing over to F")
        f_pid = None
        deadline = time.time() + 3 * TM
        while f_pid is None and time.time() < deadline:
            try:
                with open(f"/proc/{box['p'].pid}/task/{box['p'].pid}/children") as fh:
                    kids = [int(x) for x in fh.read().split()]
                f_pid = kids[0] if kids else None
            except OSError:
                pass
            if f_pid is None:
                time.sleep(0.05)
        if f_pid:
            pids.append(f_pid)
        while f_pid and peer_pid(ctl) != f_pid and time.time() < deadline:
            time.sleep(0.05)
        c.ok(f_pid is not None and peer_pid(ctl) == f_pid,
             "F serves the control socket at PATH", f"F {f_pid}, peer {peer_pid(ctl)}")
        # and back to the host's namespace: now the old relay (F) sees the
        # new one as pid 0, and must neither signal nor wait for it
        mark = len(log_text(relay))
        e = takeover(v1, f_pid or 0, "F -> G (back from another PID namespace)")
        c.ok(wait_log(relay, r"takeover: pid 0 took 22 UDP allocation", 3, mark) is not None,
             "F -> G: F sees G as pid 0", log_text(relay)[mark:][-2000:])
        c.ok(wait_gone(f_pid or e.pid, 10), "F exits after handing over to G")
        c.ok(not pid_gone(e.pid), "G serves")  # the refusals below run against G

        # ---- 4. refusals, with traffic flowing through G the whole time
        tx = threading.Thread(target=traffic._tx, args=(600,), daemon=True)
        tx.start()
        mark = len(log_text(relay))
        refused("incompatible configuration (threads 3)", v2,
                ["--threads", "3", "--takeover-from", ctl],
                r"takeover refused: threads: the running relay has 2 worker\(s\), these "
                r"settings make 3")
        c.ok(wait_log(relay, r"takeover by pid \d+ failed, this process keeps serving: the new "
                      r"process refused: threads", 5, mark) is not None,
             "the running relay logs the refusal naming threads")
        refused("nothing at the path", v2, ["--takeover-from", os.path.join(tmp, "none.ctl")],
                r"takeover-from \S+none.ctl: No such file or directory: no relay serves a "
                r"control socket there")
        stale = os.path.join(tmp, "stale.ctl")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.bind(stale)
        s.close()
        os.chmod(stale, 0o600)
        refused("a stale socket nobody listens on", v2, ["--takeover-from", stale],
                r"Connection refused: no relay serves a control socket there")
        os.chown(ctl, 65534, 65534)
        refused("the control socket owned by another uid", v2, ["--takeover-from", ctl],
                r"owned by uid 65534 with mode 600")
        os.chown(ctl, 0, 0)
        os.chmod(ctl, 0o660)
        refused("the control socket with mode 0660", v2, ["--takeover-from", ctl],
                r"owned by uid 0 with mode 660; a relay's control socket is owned by uid 0 "
                r"\(or root\) with mode 0600")
        # a client of another uid: the mode would stop it, so open the mode
        # to reach SO_PEERCRED's check
        os.chmod(ctl, 0o666)
        mark = len(log_text(relay))
        # the relay may close before our HELO is read: the send or the first
        # receive then fails with the reset, and the NAK_ waits behind it
        code = ("import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_SEQPACKET)\n"
                "s.connect(sys.argv[1]);s.settimeout(5)\n"
                "try:\n s.send(b'HELO\\x00\\x01')\nexcept OSError:\n pass\n"
                "for i in range(2):\n try:\n  print(s.recv(512)); break\n"
                " except ConnectionResetError:\n  pass\n")
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            sys.executable, "-c", code, ctl], capture_output=True, text=True,
                           timeout=20 * TM)
        os.chmod(ctl, 0o600)
        c.ok("NAK_permission denied" in r.stdout and
             wait_log(relay, r"control socket: connection from pid \d+ uid 65534 refused: not "
                      r"uid 0 or root", 3, mark) is not None,
             "a client of uid 65534 is refused by SO_PEERCRED (NAK_, log line)",
             r.stdout + r.stderr + log_text(relay)[mark:][-800:])
        got, secs = ctl_client(ctl, b"JUNKjunk")
        c.ok(got and got[0].startswith(b"NAK_no valid HELO") and secs < 1,
             "a client sending junk is told NAK_ and closed at once", f"{got} {secs:.2f}s")
        got, secs = ctl_client(ctl, b"HELO\x00\x02")
        c.ok(got and b"reads takeover version 2, this relay writes version 1" in got[0],
             "a HELO of version 2 is refused naming both versions", repr(got))
        # a silent client holds the one takeover slot for 3 s: a takeover
        # meanwhile is refused as busy, and the silent one is then closed
        box = {}
        th = threading.Thread(target=lambda: box.setdefault("r", ctl_client(ctl, None, 10)))
        th.start()
        time.sleep(0.5)
        refused("a takeover while another connection holds the slot", v2,
                ["--takeover-from", ctl],
                r"the running relay refused: another takeover is in progress")
        th.join(20 * TM)
        got, secs = box.get("r", ([], 0))
        c.ok(got and got[0].startswith(b"NAK_no HELO within 3 s") and 2.5 < secs < 6 * TM,
             "a silent client is closed after 3 s", f"{got} {secs:.2f}s")
        # a fake relay serving a version-2 blob: the new relay refuses it
        fake_path = os.path.join(tmp, "fake.ctl")
        fake = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fake.bind(fake_path)
        os.chmod(fake_path, 0o600)
        fake.listen(1)
        fake.settimeout(10 * TM)
        fbox = {}

        def fake_v2():
            conn, _ = fake.accept()
            conn.settimeout(10 * TM)
            fbox["helo"] = conn.recv(64)
            blob = b"TSGT" + struct.pack("!HHI", 2, 0, 4) + b"\0\0\0\0"
            conn.send(b"SIZE" + struct.pack("!II", len(blob), 0))
            conn.send(b"BLOB" + blob)
            try:
                fbox["nak"] = conn.recv(600)
            except OSError as ex:
                fbox["nak"] = repr(ex).encode()
            conn.close()

        ft = threading.Thread(target=fake_v2, daemon=True)
        ft.start()
        refused("a version-2 blob from the running relay", v2, ["--takeover-from", fake_path],
                r"takeover refused: takeover state: version 2, this binary speaks 1")
        ft.join(10 * TM)
        fake.close()
        c.ok(fbox.get("helo") == b"HELO\x00\x01" and
             fbox.get("nak", b"").startswith(b"NAK_takeover state: version 2, this binary "
                                              b"speaks 1"),
             "the new relay said HELO 1 and answered the v2 blob with NAK_ naming both versions",
             repr(fbox))
        regular = os.path.join(tmp, "regular.ctl")
        with open(regular, "w") as f:
            f.write("not a socket\n")
        refused("--control-socket on a regular file", v2,
                      ["--control-socket", regular],
                      r"control-socket: \S+regular.ctl exists and is not a socket; not replaced")
        c.ok(open(regular).read() == "not a socket\n", "the regular file is left alone")
        refused("--control-socket on a live relay's socket (fresh start)", v2,
                ["--control-socket", ctl],
                r"control-socket: a relay serves \S+relay.ctl; to replace it start this one "
                r"with --takeover-from")
        traffic.stop_tx = True
        tx.join(30)
        time.sleep(0.5 * TM)
        traffic.stop_tx = False
        traffic.check(c, "through every refusal: UDP flows on G")
        c.ok(not pid_gone(e.pid) and peer_pid(ctl) == e.pid, "G serves on, control socket too")
        c.ok(metric(relay, 'tsunagu_relay_takeovers_total{result="failed"}') == 1,
             "takeovers failed 1: the threads refusal; junk, silence, another uid, a v2 HELO "
             "and a busy refusal are not takeovers",
             str(metric(relay, 'tsunagu_relay_takeovers_total{result="failed"}')))
        stop_cleanly(c, relay, e.pid)
        c.ok(not os.path.exists(ctl), "G's clean stop removed its control socket")
    finally:
        traffic.stop_tx = traffic.stop_rx = True
        kill_relays(relay, pids)
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(5)
        peer.close()
        peer6.close()
        tpeer.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return c.done()


def stat_is_sock(st):
    import stat
    return stat.S_ISSOCK(st.st_mode)


if __name__ == "__main__":
    sys.exit(main())
