#!/usr/bin/python3
"""lab_selftest.py - the lab itself does what the topologies rely on, shown with
a tiny UDP/TCP echo in the namespaces (no tsunagu binary involved):
- symmetric NAT: one inside socket gets a different outside port per
  destination (what defeats server-reflexive candidates);
- port-restricted cone NAT: one outside port for every destination, and an
  unsolicited packet from the internet does not get in;
- firewall443: UDP out is dropped, TCP to 443 passes, TCP to 80 does not;
- 1:1 NAT: the private server is reached at the public address and its
  replies come from the public address; from the inside, the public address
  leads back to the server (hairpin) with the source kept;
- IPv6 routed: a LAN host reaches a public host over 2001:db8::/32;
- teardown: nothing of the run is left, after a normal end, after an
  exception, and after SIGTERM to a run in progress (a child process).

usage: lab_selftest.py [--child-sigterm]   (the second form is the SIGTERM victim)"""
import os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netlab  # noqa: E402
from netlab import Lab, fail  # noqa: E402

# Echo server: UDP answers "ip:port" of the sender; TCP likewise, one line.
ECHO = r"""
import socket, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
u = socket.socket(fam, socket.SOCK_DGRAM); u.bind((host, port))
t = socket.socket(fam, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind((host, port)); t.listen(8)
def tcp():
    while True:
        c, a = t.accept(); c.sendall(("%s:%d\n" % a[:2]).encode()); c.close()
threading.Thread(target=tcp, daemon=True).start()
end = time.time() + 60
while time.time() < end:
    d, a = u.recvfrom(2048); u.sendto(("%s:%d" % a[:2]).encode(), a)
"""

# Client: one UDP socket asks each server in turn; prints what each saw.
ASK_UDP = r"""
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(1.5); s.bind((sys.argv[1], 40000))
for hp in sys.argv[2:]:
    h, p = hp.rsplit(':', 1)
    s.sendto(b'?', (h.strip('[]'), int(p)))
    try: print(s.recvfrom(2048)[0].decode())
    except OSError: print('timeout')
"""

ASK_TCP = r"""
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5)
    print(c.recv(100).decode().strip())
except OSError as e:
    print('refused' if isinstance(e, ConnectionRefusedError) else 'timeout')
"""

checks = 0


def expect(cond, msg):
    global checks
    if not cond:
        fail(msg)
    checks += 1


def echo(lab, n, host, port):
    p = n.spawn([sys.executable, "-c", ECHO, host, str(port)], "echo-%s-%d.log" % (n.short, port))
    n.wait_tcp(host, port, 5, proc=p, what="echo")
    return p


def ask_udp(n, src, *dests):
    return n.run([sys.executable, "-c", ASK_UDP, src] + list(dests), timeout=15).stdout.split()


def ask_tcp(n, host, port):
    return n.run([sys.executable, "-c", ASK_TCP, host, str(port)], timeout=10).stdout.strip()


def nat_shapes():
    with Lab("selftest") as lab:
        s1 = lab.public_host("s1", "203.0.113.10/24", "2001:db8:0:1::10/64")
        s2 = lab.public_host("s2", "203.0.113.11/24")
        sym = lab.router("rsym", "203.0.113.21/24", "198.18.1.1/24", nat="symmetric")
        csym = lab.lan_host("csym", sym, "198.18.1.2/24")
        cone = lab.router("rcone", "203.0.113.22/24", "198.18.2.1/24", nat="cone")
        ccone = lab.lan_host("ccone", cone, "198.18.2.2/24")
        fw = lab.router("rfw", ["203.0.113.23/24"], ["198.51.100.1/24"], nat="firewall443")
        cfw = lab.lan_host("cfw", fw, "198.51.100.2/24")
        s1.route("198.51.100.0/24", "203.0.113.23")
        one = lab.router("r11", ["203.0.113.24/24", "203.0.113.30/24"], "192.168.7.1/24")
        priv = lab.lan_host("priv", one, "192.168.7.10/24")
        lab.one_to_one_nat(one, "203.0.113.30", "192.168.7.10")
        v6r = lab.router("r6", "2001:db8:0:1::1/64", "2001:db8:0:2::1/64")
        v6c = lab.lan_host("c6", v6r, "2001:db8:0:2::2/64")
        s1.route("2001:db8:0:2::/64", "2001:db8:0:1::1")
        echo(lab, s1, "203.0.113.10", 3478)
        echo(lab, s2, "203.0.113.11", 3478)
        echo(lab, s1, "203.0.113.10", 443)
        echo(lab, s1, "203.0.113.10", 80)
        echo(lab, priv, "192.168.7.10", 3478)
        echo(lab, s1, "2001:db8:0:1::10", 3479)

        got = ask_udp(csym, "198.18.1.2", "203.0.113.10:3478", "203.0.113.11:3478")
        print("# symmetric NAT mappings: %s" % got)
        expect(len(got) == 2 and all(g.startswith("203.0.113.21:") for g in got),
               "symmetric NAT: not mapped to 203.0.113.21: %s" % got)
        expect(got[0] != got[1], "symmetric NAT: same mapping for two destinations %s" % got)

        got = ask_udp(ccone, "198.18.2.2", "203.0.113.10:3478", "203.0.113.11:3478")
        print("# cone NAT mappings: %s" % got)
        expect(got == ["203.0.113.22:40000"] * 2,
               "cone NAT: want 203.0.113.22:40000 for both destinations, got %s" % got)
        # unsolicited: s2 sends from its echo port's neighbour to the mapping
        r = s2.run([sys.executable, "-c", ASK_UDP, "203.0.113.11", "203.0.113.22:40000"],
                   timeout=10).stdout.split()
        expect(r == ["timeout"], "cone NAT let an unsolicited packet in: %s" % r)

        got = ask_udp(cfw, "198.51.100.2", "203.0.113.10:3478")
        expect(got == ["timeout"], "firewall443 let UDP out: %s" % got)
        got = ask_tcp(cfw, "203.0.113.10", 443)
        expect(got == "198.51.100.2:" + got.split(":")[-1] and got != "timeout",
               "firewall443: TCP 443 did not pass: %s" % got)
        got = ask_tcp(cfw, "203.0.113.10", 80)
        expect(got == "timeout", "firewall443 let TCP 80 through: %s" % got)
        print("# firewall443: UDP dropped, TCP 443 passed, TCP 80 dropped")

        got = ask_udp(s2, "203.0.113.11", "203.0.113.30:3478")
        expect(got == ["203.0.113.11:40000"], "1:1 NAT: public address not DNATed: %s" % got)
        got = ask_udp(priv, "192.168.7.10", "203.0.113.11:3478")
        expect(got == ["203.0.113.30:40000"], "1:1 NAT: private server not SNATed: %s" % got)
        got = ask_udp(priv, "192.168.7.10", "203.0.113.30:3478")
        expect(got == ["192.168.7.10:40000"], "1:1 NAT does not hairpin (source kept): %s" % got)
        print("# 1:1 NAT: 203.0.113.30 <-> 192.168.7.10, hairpin from the inside")

        got = ask_udp(v6c, "2001:db8:0:2::2", "[2001:db8:0:1::10]:3479")
        expect(got == ["2001:db8:0:2::2:40000"], "IPv6 routed: %s" % got)
        expect(len(lab.leftovers()) == len(lab.ns), "namespaces listed: %s" % lab.leftovers())
        names = list(lab.ns)
    expect(lab.leftovers() == [], "left after the run: %s" % lab.leftovers())
    print("# %d namespaces built and removed" % len(names))


def teardown_on_exception():
    lab = None
    try:
        with Lab("selftest-exc") as lab:
            h = lab.public_host("h", "203.0.113.10/24")
            h.spawn(["sleep", "60"], "sleep.log")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    expect(lab.leftovers() == [], "left after an exception: %s" % lab.leftovers())
    expect(all(p.poll() is not None for p in lab.procs), "a process survived the exception")


def teardown_on_sigterm():
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child-sigterm"],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    expect(len(line) == 2 and line[0] == "ready", "SIGTERM victim did not start: %s" % line)
    p.terminate()
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        fail("the lab did not exit within 15 s of SIGTERM")
    child_sleep = int(line[1])
    expect(not os.path.exists("/proc/%d" % child_sleep) or
           open("/proc/%d/stat" % child_sleep).read().split()[2] == "Z",
           "process %d started in the lab survived SIGTERM" % child_sleep)
    left = [l for l in netlab.sh([netlab.IP, "netns", "list"]).stdout.splitlines()
            if l.startswith("%s%d-" % (netlab.PREFIX, p.pid))]
    expect(left == [], "namespaces left after SIGTERM: %s" % left)
    expect(p.returncode == 128 + 15, "SIGTERM victim exit %s, want 143" % p.returncode)


def child_sigterm():
    with Lab("selftest-term") as lab:
        h = lab.public_host("h", "203.0.113.10/24")
        s = h.spawn(["sleep", "60"], "sleep.log")
        # the PID inside the namespace: `ip netns exec` execs, so the same
        print("ready %d" % s.pid, flush=True)
        time.sleep(30)


def main():
    if sys.argv[1:] == ["--child-sigterm"]:
        child_sigterm()
        return
    t0 = time.time()
    nat_shapes()
    teardown_on_exception()
    teardown_on_sigterm()
    print("PASS (%d checks, %.1f s)" % (checks, time.time() - t0))


if __name__ == "__main__":
    main()
