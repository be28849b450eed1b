"""cdp.py - headless Chromium driven over --remote-debugging-pipe (fds 3 and 4,
NUL-terminated JSON), standard library only. Shared by the e2e tests; each
test decides how the process is spawned (so its own cleanup tracks the PID)
and how a failure is reported.
"""
import fcntl
import json
import os
import select
import time

# Flags seen working here (shared/notes/browser-calls.md): headless as root,
# no background traffic to the closed network, fake camera and microphone,
# loopback ICE, and no throttling of background pages.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
         "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
         "--allow-loopback-in-peer-connection", "--disable-background-timer-throttling",
         "--disable-renderer-backgrounding", "--autoplay-policy=no-user-gesture-required"]


class DevToolsPipe:
    """spawn(argv, preexec_fn=..., close_fds=False) must start the process and
    return its Popen; fail(msg) must not return."""

    def __init__(self, exe, user_data_dir, extra_flags, spawn, fail, mult=1.0):
        self.fail = fail
        self.mult = mult
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        # the child's ends above 4 so the dup2s below cannot clobber them
        a = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)
        b = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
        os.close(to_r)
        os.close(from_w)

        def child():
            os.dup2(a, 3)
            os.dup2(b, 4)

        # Chromium's own temporary files (shared memory under
        # --disable-dev-shm-usage: org.chromium.Chromium.* dirs) go inside the
        # profile, which each test removes; in /tmp they outlived every run
        tmpdir = os.path.join(user_data_dir, "tmp")
        os.makedirs(tmpdir, exist_ok=True)
        argv = ["env", "TMPDIR=" + tmpdir, exe] + FLAGS + ["--user-data-dir=" + user_data_dir] + \
            list(extra_flags) + ["--remote-debugging-pipe", "about:blank"]
        self.proc = spawn(argv, preexec_fn=child, close_fds=False)
        os.close(a)
        os.close(b)
        self.buf = b""
        self.next_id = 0

    def call(self, method, params=None, session=None, timeout=15):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout * self.mult
        while time.time() < deadline:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw)
                if m.get("id") == self.next_id:
                    if "error" in m:
                        self.fail("DevTools %s: %s" % (method, m["error"]))
                    return m["result"]
            r, _, _ = select.select([self.from_r], [], [], 0.5)
            if r:
                chunk = os.read(self.from_r, 1 << 20)
                if not chunk:
                    self.fail("chromium closed the DevTools pipe")
                self.buf += chunk
        self.fail("DevTools %s timed out" % method)

    def open(self, url):
        """A new page at url; returns its session id."""
        tid = self.call("Target.createTarget", {"url": url})["targetId"]
        return self.call("Target.attachToTarget", {"targetId": tid, "flatten": True})["sessionId"]

    def evaluate(self, session, expr):
        """(value, exceptionDetails or None) of expr in the page; promises awaited."""
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True}, session=session)
        return r["result"].get("value"), r.get("exceptionDetails")
