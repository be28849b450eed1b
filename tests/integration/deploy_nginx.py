#!/usr/bin/python3
"""deploy_nginx.py RELAY SIGNAL TURNCHECK - docs/deploy.md's configuration,
as written there, works: the relay and signaling config blocks and the two
nginx snippets are taken from the document itself (only secrets, certificate
paths and the test's peer are replaced), and run in a network namespace of
the test's own (unshare -n -m) that plays the cloud VM behind a 1:1 NAT:

- the VM's private addresses 10.0.0.5 and 10.0.0.6 on its loopback device;
  the public 203.0.113.10 and .11 (TEST-NET-3) reach them through an
  nftables DNAT, and the relay's datagrams leave SNATed to 203.0.113.10, as
  a cloud's 1:1 NAT does; turn.example.org and app.example.org resolve to
  the public addresses (a private /etc/hosts bind-mounted in the namespace);
- two addresses: the relay's self-check passes over UDP, TCP and TLS with
  the public relayed address; tsunagu-turncheck from "outside" passes over
  turn: (UDP, TCP) and turns:turn.example.org:443 with --expect-ip
  203.0.113.10 and the certificate checked; a WebSocket through nginx
  (wss://app.example.org/ws, Origin https://app.example.org) joins a room
  and gets the document's four ICE server URLs with REST credentials;
  nginx's /metrics is closed (404);
- one address with the SNI split (nginx stream, ssl_preread): turns: to
  turn.example.org:443 reaches the relay through nginx, and wss to
  app.example.org on the same address:port reaches signaling;
- step 7's failure lines, from this VM: without `external-ip` the relay's
  self-check warns with the line step 1 quotes, and tsunagu-turncheck from
  outside fails with "relayed address 10.0.0.5 is private but the server is
  reached at public 203.0.113.10"; with the relayed-port range dropped for
  outside clients by a stateless filter, the self-check still
  passes (it cannot see that firewall, as the document says) and turncheck
  fails at data-from-peer naming the relayed-port range;
- the certbot deploy hook of the document parses (sh -n).
Nothing outside the namespace changes; every process is killed by PID."""
import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "docs", "deploy.md")
MULT = float(os.environ.get("TIMEOUT_MULT", "1"))
SECRET = "deploy-test-" + os.urandom(6).hex()


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def blocks(text):
    """(language, body) of every fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)


def section(text, title):
    i = text.index(title)
    j = text.find("\n## ", i + 1)
    return text[i:j if j > 0 else len(text)]


def sh(*args, inp=None):
    r = subprocess.run(args, input=inp, capture_output=True, text=True)
    if r.returncode:
        fail("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


class Procs:
    def __init__(self, d):
        self.d, self.procs = d, []

    def start(self, name, argv):
        log = open(os.path.join(self.d, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append((name, p))
        return p

    def log(self, name):
        return open(os.path.join(self.d, name + ".log"), errors="replace").read()

    def stop(self, name):
        for n, p in list(self.procs):
            if n == name and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                time.sleep(0.1)
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10 * MULT)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if n == name:
                self.procs.remove((n, p))

    def stop_all(self):
        for n, _ in list(reversed(self.procs)):
            self.stop(n)


def wait_for(cond, what, timeout=15):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    fail("timed out waiting for " + what)


def network():
    """The VM and its 1:1 NAT inside this namespace."""
    sh("ip", "link", "set", "lo", "up")
    for a in ("10.0.0.5/32", "10.0.0.6/32"):
        sh("ip", "addr", "add", a, "dev", "lo")
    # the "internet" side: clients here use 127.0.0.1 as their own address
    sh("ip", "route", "add", "203.0.113.0/24", "dev", "lo", "src", "127.0.0.1")
    # DNAT in (public -> private), SNAT out for what the VM itself starts
    # towards the internet; the relay's own datagrams between two of its
    # relayed ports (the self-check's peer) stay untracked: they never pass
    # the cloud's NAT, and here they would share its conntrack table
    sh("nft", "-f", "-", inp="""table ip vm_nat {
  chain raw {
    type filter hook output priority -300;
    ip saddr 10.0.0.5 ip daddr 10.0.0.5 notrack
  }
  chain out {
    type nat hook output priority -100;
    ip daddr 203.0.113.10 dnat to 10.0.0.5
    ip daddr 203.0.113.11 dnat to 10.0.0.6
  }
  chain post {
    type nat hook postrouting priority 100;
    ip saddr 10.0.0.5 ip daddr 127.0.0.0/8 snat to 203.0.113.10
  }
}
""")


def certs(d):
    """A test CA and two server certificates (turn.example.org, app.example.org)."""
    def ossl(*a):
        sh("openssl", *a)
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-days", "1", "-subj", "/CN=deploy test CA", "-keyout", ca_key, "-out", ca,
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name in ("turn.example.org", "app.example.org"):
        key, csr, crt = (os.path.join(d, name + x) for x in (".key", ".csr", ".crt"))
        ext = os.path.join(d, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n" % name)
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-subj", "/CN=" + name, "-keyout", key, "-out", csr)
        ossl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-days", "1", "-extfile", ext, "-out", crt)
    return ca


def confs(doc, d, split):
    """The relay's and signaling's config files from the document."""
    relay = [b for lang, b in blocks(section(doc, "## 4.")) if lang == ""][0]
    sig = [b for lang, b in blocks(section(doc, "## 6.")) if lang == ""][0]
    relay = relay.replace("5f0c...your-secret...", SECRET)
    relay = relay.replace("/etc/tsunagu/tls/turn.crt", os.path.join(d, "turn.example.org.crt"))
    relay = relay.replace("/etc/tsunagu/tls/turn.key", os.path.join(d, "turn.example.org.key"))
    if split:  # what the document says to change for the SNI split
        relay = relay.replace("tls-listen = 10.0.0.5:443", "tls-listen = 127.0.0.1:5349")
    # the test's turncheck peer: on this "internet" host
    relay += "allow-peer = 127.0.0.1/32\n"
    sig = sig.replace("5f0c...your-secret...", SECRET)
    sig = re.sub(r"^token-secret = \.\.\.\n", "", sig, flags=re.M)  # open rooms for the test
    for must in ("external-ip = 203.0.113.10/10.0.0.5", "self-check = true",
                 "tls-listen = " + ("127.0.0.1:5349" if split else "10.0.0.5:443")):
        if must not in relay:
            fail("relay config block of deploy.md lacks %r:\n%s" % (must, relay))
    paths = []
    for name, text in (("relay.conf", relay), ("signaling.conf", sig)):
        paths.append(os.path.join(d, name))
        with open(paths[-1], "w") as f:
            f.write(text)
    return paths


def nginx_conf(doc, d, split):
    ngx = [b for lang, b in blocks(section(doc, "## 6.")) if lang == "nginx"]
    if len(ngx) != 2:
        fail("deploy.md step 6 should have two nginx blocks, has %d" % len(ngx))
    http, stream = ngx
    http = http.replace("/etc/letsencrypt/live/app.example.org/fullchain.pem",
                        os.path.join(d, "app.example.org.crt"))
    http = http.replace("/etc/letsencrypt/live/app.example.org/privkey.pem",
                        os.path.join(d, "app.example.org.key"))
    http = http.replace("/var/www/letsencrypt", os.path.join(d, "www"))
    if split:  # the document's changes for one address
        http = http.replace("listen 10.0.0.6:443 ssl;", "listen 127.0.0.1:8443 ssl;")
        http = http.replace("    listen 10.0.0.6:80;\n", "")
    tmp = os.path.join(d, "ngx")
    os.makedirs(tmp, exist_ok=True)
    path = os.path.join(d, "nginx-%s.conf" % ("split" if split else "two"))
    with open(path, "w") as f:
        f.write("load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
                "pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\n%s\n"
                "http {\n  access_log off;\n"
                "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
                "  uwsgi_temp_path %s; scgi_temp_path %s;\n%s\n}\n"
                % ((tmp, tmp, stream if split else "") + (tmp,) * 5 + (http,)))
    return path


def turncheck(tc, ca, *urls):
    r = subprocess.run([tc, *urls, "--secret", SECRET, "--expect-ip", "203.0.113.10",
                        "--peer-ip", "127.0.0.1", "--ca", ca, "--timeout-ms", "2000"],
                       capture_output=True, text=True, timeout=60 * MULT)
    return r.returncode, r.stdout + r.stderr


async def ws_join(host_ip, ca):
    import websockets  # Debian's python3-websockets (scripts/deps.sh test)
    ctx = ssl.create_default_context(cafile=ca)
    async with websockets.connect("wss://app.example.org/ws", ssl=ctx,
                                  origin="https://app.example.org",
                                  open_timeout=10 * MULT) as ws:
        await ws.send(json.dumps({"type": "join", "room": "deploy", "name": "t"}))
        return json.loads(await asyncio.wait_for(ws.recv(), 10 * MULT))


def check_run(c, ps, exes, doc, d, ca, split):
    relay_exe, signal_exe, tc = exes
    tag = "one address, SNI split" if split else "two addresses"
    relay_conf, sig_conf = confs(doc, d, split)
    ngx = nginx_conf(doc, d, split)
    out = sh("nginx", "-t", "-c", ngx, "-e", os.path.join(d, "ngx", "error.log"))
    ps.start("relay", [relay_exe, "--config", relay_conf])
    ps.start("signal", [signal_exe, "--config", sig_conf])
    ps.start("nginx", ["nginx", "-c", ngx, "-e", os.path.join(d, "ngx", "error.log"),
                       "-g", "daemon off;"])
    summary = wait_for(lambda: re.search(r"\[self-check\] (summary: .*) \(rly_", ps.log("relay")),
                       "the relay's self-check", 30).group(1)
    c(summary == "summary: 3/3 transports passed (udp ok, tcp ok, tls ok), 0 warning(s)",
      "%s: the relay's self-check passes" % tag, summary + "\n" + ps.log("relay")[-3000:])
    c("ok   relayed-address: 203.0.113.10 (public, --external-ip for 10.0.0.5:" in ps.log("relay"),
      "%s: self-check sees the public relayed address" % tag)
    rc, out = turncheck(tc, ca, "turn:turn.example.org:3478",
                        "turn:turn.example.org:3478?transport=tcp", "turns:turn.example.org:443")
    print("# " + out.replace("\n", "\n# "))
    c(rc == 0 and out.count("ok   refresh: ") == 3 and
      "certificate valid for 'turn.example.org'" in out and
      "ok   relayed-address: 203.0.113.10 as expected" in out,
      "%s: turncheck from outside passes over udp, tcp and turns:...:443" % tag, out)
    joined = asyncio.run(ws_join("203.0.113.11", ca))
    urls = [u for s in joined.get("iceServers", []) for u in
            ([s["urls"]] if isinstance(s["urls"], str) else s["urls"])]
    creds = all(s.get("username") and s.get("credential") for s in joined.get("iceServers", [])
                if any(u.startswith("turn") for u in ([s["urls"]] if isinstance(s["urls"], str)
                                                      else s["urls"])))
    c(joined.get("type") == "joined" and sorted(urls) == sorted([
        "stun:turn.example.org:3478", "turn:turn.example.org:3478?transport=udp",
        "turn:turn.example.org:3478?transport=tcp", "turns:turn.example.org:443?transport=tcp"])
      and creds, "%s: wss://app.example.org/ws through nginx joins, four ICE URLs with "
                 "credentials" % tag, joined)
    ctx = ssl.create_default_context(cafile=ca)
    try:
        urllib.request.urlopen("https://app.example.org/metrics", context=ctx, timeout=5)
        code = 200
    except urllib.error.HTTPError as e:
        code = e.code
    c(code == 404, "%s: signaling's /metrics is not reachable through nginx" % tag, code)
    for n in ("nginx", "signal", "relay"):
        ps.stop(n)


def check_failures(c, ps, exes, doc, d, ca):
    """Step 7's table: what a missing external-ip and a closed relayed-port
    range look like from inside (self-check) and outside (turncheck)."""
    relay_exe, _, tc = exes
    relay_conf, _ = confs(doc, d, False)
    text = open(relay_conf).read()
    with open(relay_conf, "w") as f:
        f.write(text.replace("external-ip = 203.0.113.10/10.0.0.5\n", ""))
    ps.start("relay", [relay_exe, "--config", relay_conf])
    wait_for(lambda: "[self-check] summary: " in ps.log("relay"), "self-check", 30)
    want = ("warn relayed-address: relayed address 10.0.0.5 is private: clients outside its "
            "network cannot reach it; behind a 1:1 NAT (a cloud VM) set --external-ip "
            "PUBLIC/10.0.0.5")
    c(want in ps.log("relay") and " ".join(want.split()) in " ".join(doc.split()),
      "no external-ip: the self-check's warning, as step 1 quotes it", ps.log("relay")[-2000:])
    r = subprocess.run([tc, "turn:turn.example.org:3478", "--secret", SECRET, "--peer-ip",
                        "127.0.0.1", "--timeout-ms", "2000"], capture_output=True, text=True,
                       timeout=60 * MULT)
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    c(r.returncode == 1 and last == "FAIL relayed-address: relayed address 10.0.0.5 is private "
      "but the server is reached at public 203.0.113.10:3478: remote peers cannot reach it "
      "(set the relay's --external-ip)", "no external-ip: turncheck from outside names it",
      r.stdout)
    ps.stop("relay")
    confs(doc, d, False)  # the document's config again
    # a stateless filter in front of the VM (as AWS's network ACLs are) keeps the
    # relayed-port range closed to the internet: every datagram from outside to it
    # is dropped on its way in (after the NAT, so the sender is not told), also
    # those answering what the relay sent
    sh("nft", "-f", "-", inp="""table ip vm_fw {
  chain acl {
    type filter hook prerouting priority 0;
    ip saddr 127.0.0.1 ip daddr 10.0.0.5 udp dport 49152-65535 drop
  }
}
""")
    ps.start("relay", [relay_exe, "--config", relay_conf])
    summary = wait_for(lambda: re.search(r"\[self-check\] (summary: .*) \(rly_", ps.log("relay")),
                       "self-check", 30).group(1)
    rc, out = turncheck(tc, ca, "turn:turn.example.org:3478")
    last = out.strip().splitlines()[-1] if out.strip() else ""
    c(summary.startswith("summary: 3/3 transports passed") and rc == 1 and
      last.startswith("FAIL data-from-peer: nothing from the peer 127.0.0.1:") and
      "the relayed port 203.0.113.10:" in last and last.endswith(
          "is unreachable from it (a firewall in front of the relay's relayed-port range?)"),
      "relayed ports closed outside: self-check passes, turncheck names the range",
      summary + "\n" + out)
    ps.stop("relay")
    sh("nft", "delete", "table", "ip", "vm_fw")


def inner(exes):
    doc = open(DOC).read()
    d = tempfile.mkdtemp(prefix="deploy-nginx-")
    results = []

    def c(ok, name, detail=""):
        results.append((bool(ok), name, str(detail)[-2000:]))

    ps = Procs(d)
    try:
        network()
        hosts = os.path.join(d, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n203.0.113.10 turn.example.org\n"
                    "203.0.113.11 app.example.org\n")
        sh("mount", "--bind", hosts, "/etc/hosts")
        os.makedirs(os.path.join(d, "www"))
        ca = certs(d)
        hook = [b for lang, b in blocks(section(doc, "## 5.")) if b.startswith("#!/bin/sh")]
        r = subprocess.run(["sh", "-n"], input=hook[0] if hook else "", capture_output=True,
                           text=True)
        c(hook and r.returncode == 0 and "systemctl reload tsunagu-relay" in hook[0],
          "the certbot deploy hook parses and reloads the relay", r.stderr)
        check_run(c, ps, exes, doc, d, ca, split=False)
        # one address: app.example.org on the relay's public address too
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n203.0.113.10 turn.example.org app.example.org\n")
        check_run(c, ps, exes, doc, d, ca, split=True)
        check_failures(c, ps, exes, doc, d, ca)
    finally:
        ps.stop_all()
        if any(not ok for ok, _, _ in results):
            for n in ("relay", "signal", "nginx"):
                if os.path.exists(os.path.join(d, n + ".log")):
                    results.append((True, "log of " + n, ps.log(n)[-1500:]))
        shutil.rmtree(d, ignore_errors=True)
        print(json.dumps(results))


def main():
    if sys.argv[1] == "--inner":
        inner(sys.argv[2:5])
        return
    for tool in ("unshare", "nft", "nginx", "openssl"):
        if not shutil.which(tool):
            fail("%s missing (scripts/deps.sh test: nftables, nginx-light, "
                 "libnginx-mod-stream, openssl)" % tool)
    if not os.path.exists("/usr/lib/nginx/modules/ngx_stream_module.so"):
        fail("nginx's stream module missing: apt-get install libnginx-mod-stream")
    r = subprocess.run(["unshare", "-n", "-m", sys.executable, os.path.abspath(__file__),
                        "--inner"] + [os.path.abspath(a) for a in sys.argv[1:4]],
                       capture_output=True, text=True, timeout=240 * MULT)
    lines = r.stdout.strip().splitlines()
    for ln in lines[:-1]:  # what the namespace run printed besides its results
        print("# " + ln)
    try:
        results = json.loads(lines[-1])
    except (ValueError, IndexError):
        fail("namespace run failed (rc %d): %s %s" % (r.returncode, r.stdout[-2000:],
                                                       r.stderr[-3000:]))
    n = bad = 0
    for ok, name, detail in results:
        if name.startswith("log of "):
            print("# %s:\n# %s" % (name, detail.replace("\n", "\n# ")))
            continue
        n += 1
        bad += not ok
        print("%s %d - %s%s" % ("ok" if ok else "not ok", n, name, "" if ok else " " + detail))
    print("1..%d" % n)
    if bad or not n:
        sys.exit(1)


if __name__ == "__main__":
    main()
