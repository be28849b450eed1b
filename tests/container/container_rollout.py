#!/usr/bin/python3
"""container_rollout.py - release and roll back in containers while calls run
(issue 11, docs/containers.md).

1. scripts/image.sh builds localhost/tsunagu:v1 from this checkout and :v2 from a copy
   of the same sources committed once more (so v2's binaries report another git
   describe in --version and tsunagu_build_info: "the running version changed" is read
   from the process, not from a tag), plus localhost/tsunagu-redis.
2. Containers, host network, free ports: redis, the relay (rollout.sh start relay v1,
   its control socket on a shared run dir), one signaling node (rollout.sh start signal
   v1, slots BLUE/GREEN behind a /healthz load balancer, tests/integration/lb_proxy.py),
   and 2 calls of bots (4 tsunagu-bot containers, relay only, through the balancer).
3. While the calls run: rollout.sh relay v2 (container takeover), rollout.sh --rollback
   (v1 again), rollout.sh signal v2 (blue-green: the members resume on the new node),
   rollout.sh --rollback. After each: the served tsunagu_build_info commit is the new
   image's, the old container is gone, the health check passes.
4. Every bot: 1 call, 0 RTP packets lost, joined once, no peer-left, no renegotiation,
   resumed once per signaling move. No container of the run is left (checked after the
   cleanup, which also runs on failure and on SIGTERM).
Prints image size, build times, release/rollback times.

usage: container_rollout.py --src DIR --work DIR [--duration S]"""
import argparse, json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from lb_proxy import HealthProxy  # noqa: E402
from signal_cluster import resp  # noqa: E402
from ports import free_both  # noqa: E402

SECRET = "container-test-secret"
checks = 0
T0 = time.time()


def fail(msg):
    print("FAIL: " + msg, flush=True)
    raise SystemExit(1)


def ok(msg):
    global checks
    checks += 1
    print("ok - %s [t+%.0f s]" % (msg, time.time() - T0), flush=True)


class Podman:
    """podman, image.sh and rollout.sh with the work dir's store (scripts/podman-env.sh)."""

    def __init__(self, src, work, deploy):
        self.src, self.work, self.deploy = src, work, deploy
        self.env = dict(os.environ, TSUNAGU_PODMAN_WORK=work, TSUNAGU_DEPLOY=deploy)
        out = subprocess.run(["bash", "-c", '. "$1/scripts/podman-env.sh" "$2" && env -0', "-",
                              src, work], capture_output=True, env=self.env)
        if out.returncode:
            fail("podman-env.sh: " + out.stderr.decode())
        for kv in out.stdout.split(b"\0"):
            k, _, v = kv.decode().partition("=")
            if k in ("CONTAINERS_STORAGE_CONF", "CONTAINERS_CONF", "TMPDIR"):
                self.env[k] = v

    def run(self, *args, check=True, timeout=120):
        p = subprocess.run(["podman"] + list(args), capture_output=True, text=True,
                           env=self.env, timeout=timeout)
        if check and p.returncode:
            fail("podman %s: %s" % (" ".join(args[:3]), p.stderr[-2000:]))
        return p.stdout

    def script(self, name, *args, timeout=300):
        t0 = time.time()
        p = subprocess.run(["bash", os.path.join(self.src, "scripts", name)] + list(args),
                           capture_output=True, text=True, env=self.env, timeout=timeout)
        dt = time.time() - t0
        out = p.stdout
        sys.stdout.write("".join("#   " + l + "\n" for l in out.splitlines()))
        if p.returncode:
            fail("%s %s: exit %d\n%s%s" % (name, " ".join(args), p.returncode, out,
                                           "\n".join(l for l in p.stderr.splitlines()
                                                     if "systemd connection" not in l)[-3000:]))
        return out, dt

    def ours(self):
        """Names of every container of this run (the deployment's and the test's)."""
        names = set()
        for lab in ("tsunagu.deploy=" + self.deploy, "tsunagu.test=" + self.deploy):
            names |= set(self.run("ps", "-a", "--filter", "label=" + lab, "--format",
                                  "{{.Names}}", check=False).split())
        return names

    def cleanup(self):
        names = self.ours()
        if names:
            self.run("rm", "-f", "-t", "0", *sorted(names), check=False)


def prepare_v2(src, dst):
    """dst: a git clone of src holding exactly src's working tree (tracked and untracked,
    not ignored), committed on top: the same sources, another `git describe`. Kept between
    runs so meson rebuilds only what changed (files are rewritten only when they differ,
    so their times say so)."""
    git = ["git", "-c", "user.name=container test", "-c", "user.email=test@example.invalid"]
    if not os.path.isdir(os.path.join(dst, ".git")):
        shutil.rmtree(dst, ignore_errors=True)
        subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", src, dst], check=True)
    head = subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    subprocess.run(["git", "-C", dst, "fetch", "-q", src, head], check=True)
    # keep the files: move the index, not the tree
    subprocess.run(["git", "-C", dst, "reset", "-q", "--mixed", head], check=True)
    files = subprocess.run(["git", "-C", src, "ls-files", "-z", "-co", "--exclude-standard"],
                           capture_output=True, check=True).stdout.split(b"\0")
    keep = set()
    for f in files:
        if not f:
            continue
        rel = f.decode()
        a, b = os.path.join(src, rel), os.path.join(dst, rel)
        if not os.path.isfile(a) or os.path.islink(a):
            continue
        keep.add(rel)
        data = open(a, "rb").read()
        try:
            same = open(b, "rb").read() == data
        except OSError:
            same = False
        if not same:
            os.makedirs(os.path.dirname(b), exist_ok=True)
            with open(b, "wb") as out:
                out.write(data)
            shutil.copymode(a, b)
    for f in subprocess.run(["git", "-C", dst, "ls-files", "-z"], capture_output=True,
                            check=True).stdout.split(b"\0"):
        if f and f.decode() not in keep:
            os.unlink(os.path.join(dst, f.decode()))
    subprocess.run(["git", "-C", dst, "add", "-A"], check=True)
    subprocess.run(git + ["-C", dst, "commit", "-q", "--allow-empty", "-m",
                          "container test v2: the working tree of %s" % src], check=True)


def build_info(port, path="/metrics"):
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                      timeout=3).read().decode()
    except OSError as e:
        fail("GET :%d%s: %s" % (port, path, e))
    m = re.search(r'^tsunagu_build_info\{version="([^"]*)",commit="([^"]*)"\}', body, re.M)
    if not m:
        fail(":%d/metrics has no tsunagu_build_info" % port)
    return m.group(2)


def relay_gauges(port):
    """(allocations now, packets relayed since this process started) from /metrics."""
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=3).read().decode()
    allocs = sum(float(x) for x in re.findall(r"^tsunagu_relay_allocations(?:\{[^}]*\})? (\S+)$",
                                               body, re.M))
    pkts = sum(float(x) for x in re.findall(r"^tsunagu_relay_packets_total(?:\{[^}]*\})? (\S+)$",
                                             body, re.M))
    return int(allocs), int(pkts)


def redis_cmd(port, *args):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args))
        return resp(s.makefile("rb"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--duration", type=int, default=30)
    a = ap.parse_args()
    src, work = os.path.abspath(a.src), os.path.abspath(a.work)
    if os.geteuid() != 0:
        fail("needs root (rootful podman, host network, chown to the image's uid 10001)")
    for tool in ("podman", "runc", "git"):
        if not shutil.which(tool):
            fail("%s not installed: bash scripts/deps.sh test (this suite never skips)" % tool)
    deploy = "tsuct%d" % os.getpid()
    pm = Podman(src, work, deploy)
    # meson's timeout sends SIGTERM: clean up as on any failure
    signal.signal(signal.SIGTERM, lambda *_: fail("SIGTERM (time limit?)"))
    tmp = tempfile.mkdtemp(prefix="tsuct-", dir=os.path.join(work, "tmp"))
    try:
        run(a, pm, src, work, tmp)
    finally:
        try:
            subprocess.run(["bash", os.path.join(src, "scripts", "rollout.sh"), "stop"],
                           env=pm.env, capture_output=True, timeout=60)
        finally:
            pm.cleanup()
            left = pm.ours()
            shutil.rmtree(tmp, ignore_errors=True)
            if left:
                print("FAIL: containers left behind: %s" % sorted(left), flush=True)
                raise SystemExit(1)
    ok("no container of this run left (label tsunagu.deploy/tsunagu.test=%s)" % deploy)
    print("PASS (%d checks)" % checks)


def run(a, pm, src, work, tmp):
    info = subprocess.run(["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"],
                          capture_output=True, text=True, env=pm.env)
    if info.returncode or info.stdout.strip() != "runc":
        fail("podman cannot run here (want OCI runtime runc): %s%s" % (info.stdout, info.stderr))

    # --- 1. images ---
    out1, t1 = pm.script("image.sh", "--work", work, "--tag", "v1", "--redis")
    m = re.search(r"image: size ([0-9.]+) MB", out1)
    size_mb = float(m.group(1))
    base_cached = "cached tarball: yes" in out1
    v2src = os.path.join(work, "src-v2")
    t = time.time()
    prepare_v2(src, v2src)
    t_prep = time.time() - t
    out2, t2 = pm.script("image.sh", "--work", work, "--src", v2src, "--tag", "v2")
    c1 = pm.run("image", "inspect", "--format",
                '{{index .Labels "org.opencontainers.image.revision"}}', "localhost/tsunagu:v1").strip()
    c2 = pm.run("image", "inspect", "--format",
                '{{index .Labels "org.opencontainers.image.revision"}}', "localhost/tsunagu:v2").strip()
    if not c1 or not c2 or c1 == c2:
        fail("v1 and v2 must report different commits: %r %r" % (c1, c2))
    print("# image size %.1f MB; build v1 %.1f s (base tarball %s), v2 %.1f s (+%.1f s to "
          "copy the sources)" % (size_mb, t1, "cached" if base_cached else "built: cold",
                                 t2, t_prep))
    ok("images v1 (%s) and v2 (%s) built" % (c1, c2))
    # the daemon-only image: the 60 MB target is met without the bot's libnice closure
    out3, t3 = pm.script("image.sh", "--work", work, "--no-bot")
    size_nobot = float(re.search(r"image: size ([0-9.]+) MB", out3).group(1))
    tag3 = re.search(r"localhost/tsunagu:\{[^,]*,([^,}]*)", out3).group(1)
    for exe in ("tsunagu-relay", "tsunagu-signal"):
        if c1 not in pm.run("run", "--rm", "--network", "host", "--label",
                            "tsunagu.test=" + pm.deploy, "localhost/tsunagu:" + tag3, exe,
                            "--version", check=False):
            fail("%s does not run in the daemon-only image" % exe)
    if size_nobot >= 60:
        fail("daemon-only image %.1f MB, target < 60" % size_nobot)
    ok("daemon-only image (--no-bot) %.1f MB < 60 MB, built in %.1f s; the full image with "
       "the bot is %.1f MB" % (size_nobot, t3, size_mb))
    redis_tag = re.search(r"localhost/tsunagu-redis:(\S+)", out1).group(1)
    for exe in ("tsunagu-relay", "tsunagu-signal", "tsunagu-bot", "tsunagu-turncheck"):
        v = pm.run("run", "--rm", "--network", "host", "--label", "tsunagu.test=" + pm.deploy,
                   "localhost/tsunagu:v2", exe, "--version" if exe != "tsunagu-turncheck" else "--help",
                   check=False)
        if exe != "tsunagu-turncheck" and c2 not in v:
            fail("%s --version in v2: %r" % (exe, v))
    uid = pm.run("image", "inspect", "--format", "{{.Config.User}}", "localhost/tsunagu:v1").strip()
    if uid.split(":")[0] in ("", "0", "root"):
        fail("the image runs as root (%r)" % uid)
    ok("the four binaries run in the image (v2 reports %s), user %s" % (c2, uid))

    # --- 2. containers ---
    rport, mport, rd_port, blue, green = (free_both() for _ in range(5))
    lo = 20000 + (os.getpid() % 90) * 100
    pm.run("run", "-d", "--name", pm.deploy + "-redis", "--network", "host", "--label",
           "tsunagu.test=" + pm.deploy, "localhost/tsunagu-redis:" + redis_tag,
           "--port", str(rd_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
    end = time.time() + 10
    while True:
        try:
            if redis_cmd(rd_port, "PING") == "PONG":
                break
        except (OSError, AssertionError):
            pass
        if time.time() > end:
            fail("redis container does not answer PING")
        time.sleep(0.1)
    pm.script("rollout.sh", "start", "relay", "v1", "--listen", "127.0.0.1:%d" % rport,
              "--auth-secret", SECRET, "--realm", "tsunagu", "--metrics-listen",
              "127.0.0.1:%d" % mport, "--relay-ports", "%d-%d" % (lo, lo + 99), "--threads", "1")
    pm.script("rollout.sh", "start", "signal", "v1", "--ports", "%d,%d" % (blue, green),
              "--turn-url", "turn:127.0.0.1:%d" % rport, "--turn-secret", SECRET,
              "--max-connections-per-ip", "0", "--redis", "redis://127.0.0.1:%d/0" % rd_port,
              "--redis-node-ttl", "2", "--drain-seconds", "10", "--log-level", "info")
    if build_info(mport) != c1 or build_info(blue) != c1:
        fail("v1 does not serve v1's build_info")
    state = os.path.join(work, "deploy", pm.deploy)
    for role in ("relay", "signal"):
        name = open(os.path.join(state, role + ".container")).read().strip()
        h = subprocess.run(["podman", "healthcheck", "run", name], capture_output=True,
                           text=True, env=pm.env)
        if h.returncode:
            fail("health check of %s: %s %s" % (name, h.stdout, h.stderr))
    ok("redis, relay and signaling containers up; both health checks pass")

    outdir = os.path.join(tmp, "bots")
    os.makedirs(outdir)
    os.chown(outdir, 10001, 10001)
    with HealthProxy([blue, green]) as lb:
        url = "ws://127.0.0.1:%d/ws" % lb.port
        bots = []
        for call in (1, 2):
            for side in "ab":
                name = "%s-bot%d%s" % (pm.deploy, call, side)
                pm.run("run", "-d", "--name", name, "--network", "host", "--health-cmd", "none",
                       "--label", "tsunagu.test=" + pm.deploy, "-v", outdir + ":/out",
                       "localhost/tsunagu:v1", "tsunagu-bot", "--signal", url, "--room",
                       "%s-call%d" % (pm.deploy, call), "--relay-only", "--log-level", "info",
                       "--duration", str(a.duration), "--report", "/out/%s.json" % name)
                bots.append(name)
                if side == "a":
                    time.sleep(0.5)

        def logs(name):
            # the bot logs on stderr; podman logs replays it there
            p = subprocess.run(["podman", "logs", name], capture_output=True, text=True,
                               env=pm.env, timeout=30)
            return p.stdout + p.stderr

        def all_logs(pat, count):
            return all(len(re.findall(pat, logs(b))) >= count for b in bots)

        end = time.time() + 20
        while not all_logs(r"joined as", 1):
            if time.time() > end:
                fail("bots did not join: " + "".join(logs(b)[-800:] for b in bots))
            time.sleep(0.2)
        time.sleep(2.5)  # audio flowing
        ok("4 bots (2 calls) joined through the balancer")

        # --- 3. rollouts while the calls run ---
        times = {}

        def roll(label, args, port, want, role):
            out, dt = pm.script("rollout.sh", *args, timeout=120)
            m = re.search(r"serving (\d+) ms" if role == "relay" else
                          r"healthy (\d+) ms, old node drained and gone (\d+) ms", out)
            if not m:
                fail("%s: no time in rollout.sh's output" % label)
            times[label] = [int(x) for x in m.groups()] + [int(dt * 1000)]
            got = build_info(port)
            if got != want:
                fail("%s: %s serves %s, want %s" % (label, role, got, want))
            if role == "relay":
                # the 4 legs' UDP allocations moved into the new container and carry
                # the calls there: its packet counter rises
                allocs, p0 = relay_gauges(port)
                time.sleep(0.5)
                p1 = relay_gauges(port)[1]
                if allocs < 4 or p1 <= p0:
                    fail("%s: the new relay holds %d allocations, relayed %d -> %d packets"
                         % (label, allocs, p0, p1))
                print("# %s: %d allocations in the new relay, %d packets relayed in 0.5 s"
                      % (label, allocs, p1 - p0))
            exited = re.findall(r"exited with status (\S+)", out)
            if exited != ["0"]:
                fail("%s: the old container's exit: %r" % (label, exited))
            ok("%s: %s now serves %s (%s ms from the command; script %d ms); the old "
               "container exited 0 and is gone" % (label, role, want,
                                                   "/".join(m.groups()), dt * 1000))

        roll("relay v1->v2", ["relay", "v2"], mport, c2, "relay")
        time.sleep(1.5)
        roll("relay v2->v1 (rollback)", ["--rollback"], mport, c1, "relay")
        time.sleep(1.5)
        # a takeover the running relay refuses (other worker count in the saved flags):
        # rollout.sh fails, the v1 relay keeps serving the calls, nothing is left behind
        argf = os.path.join(state, "relay.args")
        saved = open(argf, "rb").read()
        with open(argf, "wb") as f:
            f.write(saved.replace(b"--threads\x001\x00", b"--threads\x002\x00"))
        p = subprocess.run(["bash", os.path.join(src, "scripts", "rollout.sh"), "relay", "v2"],
                           capture_output=True, text=True, env=pm.env, timeout=60)
        with open(argf, "wb") as f:
            f.write(saved)
        if p.returncode == 0 or "keeps serving" not in p.stderr or "threads" not in p.stderr:
            fail("refused takeover: rollout.sh exit %d: %s" % (p.returncode, p.stderr[-800:]))
        if build_info(mport) != c1 or relay_gauges(mport)[0] < 4:
            fail("after a refused takeover the v1 relay does not serve the 4 allocations")
        if len([n for n in pm.ours() if "-relay-" in n]) != 1:
            fail("a refused takeover left a container: %r" % sorted(pm.ours()))
        ok("a takeover with other threads is refused (%s); v1 keeps serving the calls; rollout.sh "
           "exits %d and removes the new container" % (
               [l for l in p.stderr.splitlines() if "threads" in l][0].strip(), p.returncode))
        time.sleep(1.0)
        roll("signal blue->green v2", ["signal", "v2"], green, c2, "signal")
        end = time.time() + 10
        while not all_logs(r"resumed our place", 1):
            if time.time() > end:
                fail("bots did not resume on green")
            time.sleep(0.1)
        nodes = redis_cmd(rd_port, "SMEMBERS", "tsu:nodes") or []
        if len(nodes) != 1:
            fail("nodes in Redis after blue->green: %r" % nodes)
        time.sleep(1.5)
        roll("signal green->blue v1 (rollback)", ["--rollback"], blue, c1, "signal")
        end = time.time() + 10
        while not all_logs(r"resumed our place", 2):
            if time.time() > end:
                fail("bots did not resume on blue")
            time.sleep(0.1)
        ok("every bot resumed on the new node after each signaling move; one node in Redis")

        # --- 4. the calls ---
        for b in bots:
            w = subprocess.run(["podman", "wait", b], capture_output=True, text=True,
                               env=pm.env, timeout=a.duration + 60)
            code = w.stdout.strip()
            t = logs(b)
            why = None
            if code != "0":
                why = "exit status %s" % code
            elif t.count("joined as") != 1:
                why = "joined %d times" % t.count("joined as")
            elif re.search(r"peer \S+ left", t):
                why = "saw its peer leave"
            elif "renegotiation" in t or "resume refused" in t or "signaling closed" in t:
                why = "renegotiated, was refused or lost signaling"
            elif t.count("resumed our place") != 2:
                why = "resumed %d times, want 2" % t.count("resumed our place")
            if why:
                print(t[-3000:])
                fail("bot %s %s" % (b, why))
            rj = json.load(open(os.path.join(outdir, b + ".json")))
            legs = [c for c in rj["calls"] if c["media"]]
            if len(rj["calls"]) != 1 or len(legs) != 1:
                fail("bot %s: %d calls, %d with audio" % (b, len(rj["calls"]), len(legs)))
            c = legs[0]
            if c["lost"] != 0 or c["sent"] < 50 * (a.duration - 3):
                fail("bot %s: sent %d received %d lost %d" % (b, c["sent"], c["received"], c["lost"]))
            ok("bot %s: %d RTP packets sent, %d received, 0 lost; joined once, resumed twice, "
               "no peer-left" % (b, c["sent"], c["received"]))
            pm.run("rm", "-f", "-t", "0", b, check=False)
    print("# figures: image %.1f MB (daemon-only %.1f MB); build v1 %.1f s (base %s), v2 %.1f s; " % (
        size_mb, size_nobot, t1, "cached" if base_cached else "cold", t2) +
        "; ".join("%s %s ms" % (k, "/".join(str(x) for x in v)) for k, v in times.items()))


if __name__ == "__main__":
    main()
