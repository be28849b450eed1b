#!/usr/bin/python3
"""container_kube.py - conf/kube/ runs under `podman kube play` (issue 11 item 3).

The manifests are played as shipped except for what must differ on a shared test
machine: free ports instead of 3478/9641/8080/6379 and the relay port range, loopback
instead of the wildcard, Redis at 127.0.0.1 (no Service DNS without a cluster; signaling
and Redis get --network host), and the relay's hostPath under a temporary directory.
Checked: the relay pod (host network, initContainer handing the hostPath to uid 10001)
answers /healthz and made its control socket there; signaling answers /healthz, got
its Redis URL from the ConfigMap (its node is registered in Redis); the image's health
check passes in both; `podman kube down` leaves no pod or container.
Needs the images container_rollout.py builds (localhost/tsunagu:0.1.0, tsunagu-redis):
run after it (meson: same suite, not parallel, priority).

usage: container_kube.py --src DIR --work DIR"""
import argparse, os, re, shutil, socket, subprocess, sys, tempfile, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from container_rollout import Podman, fail, ok, redis_cmd  # noqa: E402
import container_rollout  # noqa: E402
from ports import free_both  # noqa: E402


def healthz(port, secs=15):
    end = time.time() + secs
    last = None
    while time.time() < end:
        try:
            if urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=2).status == 200:
                return
        except OSError as e:
            last = e
        time.sleep(0.2)
    fail("no /healthz 200 on %d: %s" % (port, last))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    src, work = os.path.abspath(a.src), os.path.abspath(a.work)
    if not shutil.which("podman"):
        fail("podman not installed: bash scripts/deps.sh test (this suite never skips)")
    pm = Podman(src, work, "tsukube%d" % os.getpid())
    have = pm.run("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    redis_img = [i for i in have if i.startswith("localhost/tsunagu-redis:")]
    if "localhost/tsunagu:0.1.0" not in have or not redis_img:
        fail("images missing (container_rollout builds them first): %r" % have)
    tmp = tempfile.mkdtemp(prefix="tsukube-", dir=os.path.join(work, "tmp"))
    tp, mp, sp, rp = (free_both() for _ in range(4))
    lo = 20000 + (os.getpid() % 90) * 100
    run = os.path.join(tmp, "run")
    subs = [("0.0.0.0:3478", "127.0.0.1:%d" % tp), ("127.0.0.1:9641", "127.0.0.1:%d" % mp),
            ("49152-65535", "%d-%d" % (lo, lo + 99)), ("0.0.0.0:8080", "127.0.0.1:%d" % sp),
            ("turn.example.com:3478", "127.0.0.1:%d" % tp),
            ("redis://tsunagu-redis:6379", "redis://127.0.0.1:%d" % rp),
            ('"--port", "6379", "--bind", "0.0.0.0"', '"--port", "%d", "--bind", "127.0.0.1"' % rp),
            ("port: 8080", "port: %d" % sp), ("port: 6379", "port: %d" % rp),
            ("http://127.0.0.1:8080/healthz", "http://127.0.0.1:%d/healthz" % sp),
            ("path: /run/tsunagu\n", "path: %s\n" % run),
            # host network: one signaling pod per host port
            ("replicas: 2", "replicas: 1"),
            ("image: localhost/tsunagu-redis:7.0.15", "image: " + redis_img[0])]
    files = {}
    for name in ("configmap.yaml", "relay.yaml", "signaling.yaml"):
        text = open(os.path.join(src, "conf", "kube", name)).read()
        for old, new in subs:
            text = text.replace(old, new)
        files[name] = os.path.join(tmp, name)
        with open(files[name], "w") as f:
            f.write(text)
    played = []
    try:
        os.makedirs(run)
        t0 = time.time()
        played.append(files["relay.yaml"])
        pm.run("kube", "play", "--configmap", files["configmap.yaml"], files["relay.yaml"])
        played.append(files["signaling.yaml"])
        pm.run("kube", "play", "--network", "host", "--configmap", files["configmap.yaml"],
               files["signaling.yaml"])
        healthz(mp)
        healthz(sp)
        print("# both answer /healthz %.1f s after the first kube play" % (time.time() - t0))
        ctl = os.path.join(run, "relay.ctl")
        st = os.stat(ctl)
        if st.st_uid != 10001 or (st.st_mode & 0o777) != 0o600:
            fail("control socket %s: uid %d mode %o" % (ctl, st.st_uid, st.st_mode & 0o777))
        ok("relay pod (host network) serves /healthz on :%d; its control socket is on the "
           "hostPath, uid 10001, mode 0600 (the initContainer chowned the directory)" % mp)
        end = time.time() + 10
        while not (redis_cmd(rp, "SMEMBERS", "tsu:nodes") or []):
            if time.time() > end:
                fail("signaling did not register in Redis (the ConfigMap's redis-url)")
            time.sleep(0.2)
        ok("signaling pod serves /healthz on :%d and registered in the Redis pod" % sp)
        names = pm.run("ps", "--format", "{{.Names}}").split()
        for want in ("tsunagu-relay", "tsunagu-signal"):
            c = [n for n in names if n.startswith(want + "-pod") and n.endswith(
                "-relay" if want == "tsunagu-relay" else "-signal")]
            if not c:
                fail("no %s container in %r" % (want, names))
            h = subprocess.run(["podman", "healthcheck", "run", c[0]], capture_output=True,
                               text=True, env=pm.env)
            if h.returncode:
                fail("health check in %s: %s%s" % (c[0], h.stdout, h.stderr))
        ok("the image's health check passes in the relay and signaling pods")
    except BaseException:
        for n in pm.run("ps", "-a", "--format", "{{.Names}}", check=False).split():
            if n.startswith(("tsunagu-relay-pod", "tsunagu-signal-pod", "tsunagu-redis-pod")):
                p = subprocess.run(["podman", "logs", n], capture_output=True, text=True, env=pm.env)
                print("# --- %s ---\n%s" % (n, (p.stdout + p.stderr)[-1500:]))
        raise
    finally:
        for f in reversed(played):
            pm.run("kube", "down", f, check=False)
        # kube down keeps the ConfigMap's volume
        pm.run("volume", "rm", "-f", "tsunagu-config", check=False)
        pods = pm.run("pod", "ps", "--format", "{{.Name}}", check=False).split()
        left = [p for p in pods if p.startswith(("tsunagu-relay", "tsunagu-signal", "tsunagu-redis"))]
        left += [v for v in pm.run("volume", "ls", "--format", "{{.Name}}", check=False).split()
                 if v == "tsunagu-config"]
        shutil.rmtree(tmp, ignore_errors=True)
        if left:
            print("FAIL: pods left behind: %r" % left)
            raise SystemExit(1)
    ok("podman kube down: no pod left")
    print("PASS (%d checks)" % container_rollout.checks)


if __name__ == "__main__":
    main()
