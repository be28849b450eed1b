"""netlab.py - a small internet in network namespaces, for tests that must show
calls crossing NATs and firewalls (issue 10; ../../docs/netlab.md).

Standard library only; run as root with /usr/bin/python3. A Lab builds:
- an "internet": one namespace holding a bridge (br0) that every public host
  and every router's outside interface is plugged into;
- public hosts (an address in a documentation range on the bridge);
- routers (outside on the bridge, inside on a LAN veth) with nftables rules:
  symmetric NAT, port-restricted cone NAT, a TCP-443-only firewall, plain
  routing (IPv6), and 1:1 NAT (DNAT/SNAT) for a server behind it;
- LAN hosts behind a router (default route via the router, nothing else).

Containment (../shared/notes/netlab.md): every address lives inside the
namespaces the lab created; nothing touches the host's interfaces; no
namespace has a route to the host or out of the machine. Names carry a
per-run suffix (tsu<pid>-<name>) so two runs never collide.

Teardown: every process started through the lab is tracked by PID and killed
(SIGTERM, then SIGKILL), every other process still inside a lab namespace
too, then every namespace is deleted (the veths and bridge go with it). This
runs when the `with Lab()` block ends, at interpreter exit (atexit) and on
SIGTERM/SIGHUP (turned into SystemExit so the same path runs). Namespaces of
earlier runs whose PID is gone are removed at start (`cleanup_stale`).

Stable API (other tests build on it; only add to it):
    with Lab("a") as lab:
        wan = lab.internet()                                 # bridge namespace
        srv = lab.public_host("srv", "203.0.113.10/24")      # Netns
        r1  = lab.router("r1", "203.0.113.21/24", "198.18.1.1/24", nat="symmetric")
        c1  = lab.lan_host("c1", r1, "198.18.1.2/24")
        p   = srv.spawn([exe, ...], "relay.log")             # Popen, tracked
        srv.wait_tcp("203.0.113.10", 3478, 10, proc=p)
        body = c1.http_get("http://203.0.113.10:9641/metrics")
        lab.log("relay.log")                                 # text of a log
"""
import atexit, os, re, shutil, signal, subprocess, sys, tempfile, time

PREFIX = "tsu"
IP = shutil.which("ip") or "/usr/sbin/ip"
NFT = shutil.which("nft") or "/usr/sbin/nft"
TIMEOUT_MULT = float(os.environ.get("TIMEOUT_MULT", "1") or 1)
NAT_KINDS = ("none", "symmetric", "cone", "firewall443")


class LabError(Exception):
    """A lab step failed (a command's exit status, a timeout)."""


def fail(msg):
    """Print FAIL and exit 1 (the lab is torn down on the way out)."""
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def need_tools():
    """Root, ip and nft present: a missing tool fails the test loudly."""
    if os.geteuid() != 0:
        fail("the network lab needs root (network namespaces)")
    for t in (IP, NFT):
        if not os.access(t, os.X_OK):
            fail("%s not found: bash scripts/deps.sh test (iproute2, nftables)" % t)


def sh(argv, timeout=20, check=True, input=None):
    """Run a command, bounded in time; return CompletedProcess (text)."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * TIMEOUT_MULT,
                           input=input)
    except subprocess.TimeoutExpired:
        raise LabError("timed out after %ss: %s" % (timeout, " ".join(argv)))
    if check and r.returncode != 0:
        raise LabError("%s: exit %d: %s" % (" ".join(argv), r.returncode,
                                            (r.stderr or r.stdout).strip()[-800:]))
    return r


def cleanup_stale():
    """Remove lab namespaces left by runs that died without teardown
    (SIGKILL): named tsu<pid>-..., where no process <pid> exists."""
    r = sh([IP, "netns", "list"], check=False)
    for line in r.stdout.splitlines():
        m = re.match(r"^(%s(\d+)-\S+)" % PREFIX, line)
        if m and not os.path.exists("/proc/%s" % m.group(2)):
            for pid in sh([IP, "netns", "pids", m.group(1)], check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            sh([IP, "netns", "del", m.group(1)], check=False)


class Netns:
    """One namespace of the lab."""

    def __init__(self, lab, short):
        self.lab = lab
        self.short = short
        self.name = "%s%d-%s" % (PREFIX, os.getpid(), short)
        self.addrs = []      # "ADDR/LEN" given to its interfaces, in order
        self.ifaces = []

    def __repr__(self):
        return "Netns(%s)" % self.name

    def cmd(self, argv):
        """argv prefixed to run inside this namespace."""
        return [IP, "netns", "exec", self.name] + list(argv)

    def run(self, argv, timeout=20, check=True, input=None):
        """Run a command inside the namespace and wait (bounded)."""
        return sh(self.cmd(argv), timeout=timeout, check=check, input=input)

    def ip(self, *args, check=True):
        return sh([IP, "-n", self.name] + list(args), check=check)

    def sysctl(self, key, value):
        self.run(["sysctl", "-qw", "%s=%s" % (key, value)])

    def nft(self, ruleset):
        """Load an nftables ruleset (text, one statement per line) here."""
        self.run([NFT, "-f", "-"], input=ruleset)
        self.lab.rulesets.append((self.name, ruleset))

    def addr(self, dev, cidr):
        """Add an address; IPv6 ones without duplicate address detection, so
        they are usable at once."""
        args = ["addr", "add", cidr, "dev", dev]
        if ":" in cidr:
            args.append("nodad")
        self.ip(*args)
        self.addrs.append(cidr)

    def route(self, dest, via):
        self.ip("-6" if ":" in via else "-4", "route", "add", dest, "via", via)

    def spawn(self, argv, log, env=None):
        """Start a process inside the namespace, stdout+stderr to the lab's
        log file `log`; tracked by PID and killed at teardown."""
        return self.lab._spawn(self.cmd(argv), log, env)

    def wait_tcp(self, host, port, secs, proc=None, what="server"):
        """Wait until a TCP connect from inside this namespace succeeds."""
        end = time.time() + secs * TIMEOUT_MULT
        code = ("import socket,sys\ntry:\n socket.create_connection((%r,%d),timeout=1).close()\n"
                "except OSError:\n sys.exit(1)\n" % (host, port))
        while time.time() < end:
            if proc is not None and proc.poll() is not None:
                raise LabError("%s exited early (code %s)" % (what, proc.returncode))
            if self.run([sys.executable, "-c", code], timeout=10, check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise LabError("%s did not listen on %s:%d within %.0f s" % (what, host, port,
                                                                     secs * TIMEOUT_MULT))

    def http_get(self, url, timeout=5):
        """Body of an HTTP GET made from inside this namespace (the relay's
        /metrics, say); LabError when it fails."""
        code = ("import sys,urllib.request\n"
                "sys.stdout.write(urllib.request.urlopen(%r,timeout=%r).read().decode())\n"
                % (url, timeout))
        r = self.run([sys.executable, "-c", code], timeout=timeout + 10, check=False)
        if r.returncode != 0:
            raise LabError("GET %s from %s: %s" % (url, self.name, r.stderr.strip()[-300:]))
        return r.stdout

    def pids(self):
        r = sh([IP, "netns", "pids", self.name], check=False)
        return [int(p) for p in r.stdout.split() if p.isdigit()]


class Lab:
    """The namespaces, links and processes of one test run; a context
    manager that tears all of it down, also on failure and on SIGTERM."""

    def __init__(self, tag="lab", keep_logs=None):
        need_tools()
        self.tag = tag
        self.ns = {}           # short name -> Netns, in creation order
        self.links = []        # (ns, ifname, peer ns, peer ifname)
        self.procs = []        # Popen of every process started
        self.rulesets = []     # (ns name, nft text) loaded
        self.wan = None
        self.dir = tempfile.mkdtemp(prefix="netlab-%s-" % tag)
        self.keep_logs = os.environ.get("NETLAB_KEEP") if keep_logs is None else keep_logs
        self._torn = False
        self._old = {}
        atexit.register(self.teardown)
        for s in (signal.SIGTERM, signal.SIGHUP):
            self._old[s] = signal.signal(s, self._on_signal)
        cleanup_stale()

    def __enter__(self):
        return self

    def __exit__(self, etype, e, tb):
        if etype is not None and not (etype is SystemExit and e.code in (0, None)):
            self.dump_logs()
        self.teardown()
        return False

    def _on_signal(self, signum, frame):
        # SystemExit unwinds through every finally/with, which tear down
        raise SystemExit(128 + signum)

    # --- namespaces and links ---
    def netns(self, short):
        """A new namespace with lo up."""
        if short in self.ns:
            raise LabError("namespace %s already exists" % short)
        n = Netns(self, short)
        sh([IP, "netns", "add", n.name])
        self.ns[short] = n
        n.ip("link", "set", "lo", "up")
        return n

    def link(self, a, a_if, b, b_if):
        """A veth pair from namespace a (a_if) to namespace b (b_if), both
        ends up. The pair is made directly inside the namespaces: never on
        the host."""
        sh([IP, "link", "add", a_if, "netns", a.name, "type", "veth",
            "peer", "name", b_if, "netns", b.name])
        self.links.append((a, a_if, b, b_if))
        a.ifaces.append(a_if)
        b.ifaces.append(b_if)
        a.ip("link", "set", a_if, "up")
        b.ip("link", "set", b_if, "up")

    def internet(self):
        """The bridge namespace ("wan") every public address hangs off."""
        if self.wan is None:
            self.wan = self.netns("wan")
            self.wan.ip("link", "add", "br0", "type", "bridge")
            self.wan.ip("link", "set", "br0", "up")
            self.wan.ifaces.append("br0")
        return self.wan

    def _plug(self, n, dev, addrs):
        """Plug namespace n into the internet bridge as `dev` with addrs."""
        wan = self.internet()
        port = "p-%s" % n.short[:12]
        self.link(n, dev, wan, port)
        wan.ip("link", "set", port, "master", "br0")
        for a in addrs:
            n.addr(dev, a)

    def public_host(self, short, *addrs):
        """A host on the internet: addresses "203.0.113.10/24" (and IPv6
        "2001:db8::10/64") on its interface "eth0"."""
        n = self.netns(short)
        self._plug(n, "eth0", addrs)
        return n

    def router(self, short, wan_addrs, lan_addrs, nat="none"):
        """A router: "wan0" on the internet, "lan0" towards its LAN (the LAN
        end is made by lan_host). nat: "none" (plain routing), "symmetric"
        (masquerade fully-random: a new random port per destination),
        "cone" (masquerade keeping ports, unsolicited inbound dropped:
        port-restricted cone), "firewall443" (no NAT; forward only TCP to
        port 443 and replies, everything else dropped, UDP included).
        wan_addrs/lan_addrs: one "ADDR/LEN" or a list."""
        if nat not in NAT_KINDS:
            raise LabError("unknown nat kind %r" % nat)
        wan_addrs = [wan_addrs] if isinstance(wan_addrs, str) else list(wan_addrs)
        lan_addrs = [lan_addrs] if isinstance(lan_addrs, str) else list(lan_addrs)
        n = self.netns(short)
        n.nat = nat
        n.lan_addrs = lan_addrs
        n.lan_hosts = 0
        self._plug(n, "wan0", wan_addrs)
        n.sysctl("net.ipv4.ip_forward", 1)
        n.sysctl("net.ipv6.conf.all.forwarding", 1)
        if nat == "symmetric":
            n.nft(NFT_SYMMETRIC)
        elif nat == "cone":
            n.nft(NFT_CONE)
        elif nat == "firewall443":
            n.nft(NFT_FIREWALL_443)
        return n

    def lan_host(self, short, router, *addrs):
        """A host on router's LAN: its "eth0" linked to the router's "lan0"
        (the first LAN host makes the link), default routes via the
        router's LAN addresses of each family."""
        if router.lan_hosts:
            raise LabError("one LAN host per router in this lab (a bridge would be needed)")
        n = self.netns(short)
        self.link(router, "lan0", n, "eth0")
        router.lan_hosts += 1
        router.lan_ns = n
        for a in router.lan_addrs:
            router.addr("lan0", a)
        for a in addrs:
            n.addr("eth0", a)
        for ra in router.lan_addrs:
            gw = ra.split("/")[0]
            n.ip("-6" if ":" in gw else "-4", "route", "add", "default", "via", gw)
        return n

    def one_to_one_nat(self, router, public, private):
        """1:1 NAT on `router` (made with nat="none"): traffic to `public`
        (an address the router holds on wan0) goes to `private` (a LAN
        host's address), and the LAN host's traffic leaves as `public`.
        It hairpins: a packet the LAN host sends to `public` comes back to
        it with its source kept (so the relay's --self-check can send to
        its own public address); for that the LAN host, when lan_host was
        called before, accepts packets from its own address on eth0."""
        router.nft(NFT_ONE_TO_ONE % {"public": public, "private": private})
        router.sysctl("net.ipv4.conf.all.send_redirects", 0)
        router.sysctl("net.ipv4.conf.lan0.send_redirects", 0)
        h = getattr(router, "lan_ns", None)
        if h is not None:
            for k in ("all", "eth0"):
                h.sysctl("net.ipv4.conf.%s.rp_filter" % k, 0)
            h.sysctl("net.ipv4.conf.eth0.accept_local", 1)

    # --- processes ---
    def _spawn(self, argv, log, env):
        path = os.path.join(self.dir, log)
        f = open(path, "ab")
        try:
            p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env,
                                 stdin=subprocess.DEVNULL)
        finally:
            f.close()
        p.log = path
        self.procs.append(p)
        return p

    def log(self, name):
        try:
            with open(os.path.join(self.dir, name), "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def path(self, name):
        """A file path in the lab's run directory (reports, configs)."""
        return os.path.join(self.dir, name)

    def stop(self, p, sig=signal.SIGTERM, wait=5):
        """Stop one tracked process: sig, then SIGKILL after `wait` s."""
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        return p.returncode

    def dump_logs(self, tail=3000):
        for name in sorted(os.listdir(self.dir)) if os.path.isdir(self.dir) else []:
            if name.endswith(".log"):
                print("# --- %s (tail) ---\n%s" % (name, self.log(name)[-tail:]), flush=True)

    # --- teardown ---
    def teardown(self):
        """Kill every process (tracked ones by PID, then anything else still
        in a lab namespace), delete every namespace. Idempotent."""
        if self._torn:
            return
        self._torn = True
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        end = time.time() + 5
        for p in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, end - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    print("# netlab: pid %d survived SIGKILL" % p.pid, flush=True)
        left = []
        for n in reversed(list(self.ns.values())):
            for pid in n.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                    left.append(pid)
                except OSError:
                    pass
        if left:
            print("# netlab: killed %d stray process(es) in lab namespaces: %s" % (len(left), left))
            time.sleep(0.2)
        errors = []
        for n in reversed(list(self.ns.values())):
            r = sh([IP, "netns", "del", n.name], check=False)
            if r.returncode != 0:
                errors.append("%s: %s" % (n.name, r.stderr.strip()))
        self.ns.clear()
        if self.keep_logs:
            print("# netlab: logs kept in " + self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        for s, h in self._old.items():
            try:
                signal.signal(s, h)
            except (ValueError, TypeError):
                pass
        if errors:
            print("# netlab teardown problems: " + "; ".join(errors), flush=True)

    def leftovers(self):
        """Namespaces of this run still present (for tests of the teardown)."""
        tag = "%s%d-" % (PREFIX, os.getpid())
        return [l.split()[0] for l in sh([IP, "netns", "list"], check=False).stdout.splitlines()
                if l.startswith(tag)]


# nftables rulesets. nft wants a rule on its own line (notes/netlab.md).
# Symmetric NAT: each new flow gets a random port of wan0's address, so the
# mapping depends on the destination: a STUN server sees a port no peer can use.
NFT_SYMMETRIC = """table ip nat {
  chain post {
    type nat hook postrouting priority 100;
    oifname "wan0" masquerade fully-random
  }
}
"""

# Port-restricted cone NAT: masquerade keeps the source port when it is free,
# so one mapping serves every destination; inbound packets pass only as
# replies to flows the inside opened (conntrack, address and port).
NFT_CONE = """table ip nat {
  chain post {
    type nat hook postrouting priority 100;
    oifname "wan0" masquerade
  }
}
table inet filter {
  chain forward_filter {
    type filter hook forward priority 0; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" drop
  }
  chain input_filter {
    type filter hook input priority 0; policy accept;
    iifname "wan0" ct state established,related accept
    iifname "wan0" drop
  }
}
"""

# Corporate firewall, no NAT: the LAN may open TCP connections to port 443
# and get their replies; everything else (UDP included) is dropped.
NFT_FIREWALL_443 = """table inet filter {
  chain forward_filter {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" tcp dport 443 accept
  }
}
"""

# 1:1 NAT for a server (cloud VM): public address DNATed to the private one,
# the private one SNATed to the public one on the way out.
NFT_ONE_TO_ONE = """table ip nat {
  chain pre {
    type nat hook prerouting priority -100;
    ip daddr %(public)s dnat to %(private)s
  }
  chain post {
    type nat hook postrouting priority 100;
    ip saddr %(private)s oifname "wan0" snat to %(public)s
  }
}
"""


def metric_sum(body, name):
    """Sum of every sample of metric `name` (any labels) in a /metrics body."""
    total = 0.0
    for m in re.finditer(r"^%s(?:\{[^}]*\})?\s+([0-9.e+-]+)\s*$" % re.escape(name), body, re.M):
        total += float(m.group(1))
    return total
