#!/usr/bin/python3
"""relay_chromium.py - Chromium relays through tsunagu-relay.

One headless Chromium page holds two RTCPeerConnections with
iceTransportPolicy 'relay' and tsunagu-relay as their only ICE server (REST
credentials, as tsunagu-signal hands out), over UDP and then over TCP
(?transport=tcp: framed STUN and ChannelData padded to 4), then over TLS
(turns:, a self-signed certificate that Chromium accepts only because its
public key is pinned with --ignore-certificate-errors-spki-list; a run
pinned to another key must fail, so the relay's certificate is what made
the TLS call work). The page opens a
data channel, echoes messages and reports through console.log; the test
asserts both selected candidates are 'relay' and that the relay counted the
packets. A control run with iceTransportPolicy 'all' must report a non-relay
pair, so the check can fail.

Usage: relay_chromium.py PATH/TO/tsunagu-relay
"""
import base64
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import *  # noqa: E402,F401,F403

SECRET = "chromium-test-secret"

PAGE = """<!doctype html><html><body><script>
const ice = [{urls: [%(url)s], username: %(user)s, credential: %(cred)s}];
const policy = %(policy)s;
function log(o) { console.log('RESULT ' + JSON.stringify(o)); }
async function pairTypes(pc) {
  const st = await pc.getStats();
  let pair = null, types = {};
  st.forEach(r => { if (r.type === 'transport' && r.selectedCandidatePairId) pair = st.get(r.selectedCandidatePairId); });
  if (!pair) st.forEach(r => { if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r; });
  if (!pair) return null;
  return {local: st.get(pair.localCandidateId).candidateType,
          remote: st.get(pair.remoteCandidateId).candidateType,
          proto: st.get(pair.localCandidateId).relayProtocol || st.get(pair.localCandidateId).protocol};
}
(async () => {
  try {
    const a = new RTCPeerConnection({iceServers: ice, iceTransportPolicy: policy});
    const b = new RTCPeerConnection({iceServers: ice, iceTransportPolicy: policy});
    a.onicecandidate = e => e.candidate && b.addIceCandidate(e.candidate);
    b.onicecandidate = e => e.candidate && a.addIceCandidate(e.candidate);
    const got = [];
    b.ondatachannel = e => { e.channel.onmessage = m => { got.push(m.data); e.channel.send('echo:' + m.data); }; };
    const dc = a.createDataChannel('t');
    const echoes = [];
    dc.onmessage = m => echoes.push(m.data);
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription);
    const t0 = Date.now();
    while (dc.readyState !== 'open' && Date.now() - t0 < 20000) await new Promise(r => setTimeout(r, 50));
    if (dc.readyState !== 'open') { log({ok: false, why: 'data channel not open', ice: a.iceConnectionState}); return; }
    for (let i = 0; i < 50; i++) dc.send('m' + i + ' ' + 'x'.repeat(200));
    const t1 = Date.now();
    while (echoes.length < 50 && Date.now() - t1 < 10000) await new Promise(r => setTimeout(r, 50));
    log({ok: true, sent: 50, received: got.length, echoed: echoes.length,
         a: await pairTypes(a), b: await pairTypes(b), setup_ms: t1 - t0});
  } catch (e) { log({ok: false, why: String(e)}); }
})();
</script></body></html>
"""


def chromium():
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    raise SystemExit("FAIL: chromium not found: install Debian package 'chromium'")


def run_page(browser, tmp, url, user, cred, policy, timeout, extra=()):
    page = os.path.join(tmp, f"page-{policy}-{abs(hash(url))}.html")
    with open(page, "w") as f:
        f.write(PAGE % {"url": json.dumps(url), "user": json.dumps(user),
                        "cred": json.dumps(cred), "policy": json.dumps(policy)})
    prof = tempfile.mkdtemp(dir=tmp)
    os.makedirs(os.path.join(prof, "tmp"))  # Chromium's temporary files, removed with tmp
    args = ["env", "TMPDIR=" + os.path.join(prof, "tmp"), browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
            f"--user-data-dir={prof}", "--allow-loopback-in-peer-connection",
            "--enable-logging=stderr", "--v=0", *extra, "file://" + page]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    result = None
    deadline = time.time() + timeout
    try:
        fd = proc.stderr.fileno()
        buf = ""
        while time.time() < deadline and result is None:
            ready, _, _ = select.select([fd], [], [], 0.2)
            chunk = os.read(fd, 65536).decode(errors="replace") if ready else ""
            if ready and not chunk:
                break
            if chunk:
                buf += chunk
                for line in buf.splitlines():
                    if "RESULT " in line:
                        txt = line.split("RESULT ", 1)[1]
                        txt = txt[:txt.rfind("}") + 1]
                        try:
                            result = json.loads(txt)
                        except ValueError:
                            pass
                buf = buf[-4000:]
            elif proc.poll() is not None:
                break
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test started
        except ProcessLookupError:
            pass
        proc.wait(10)
    return result


def make_cert(tmp, name):
    """A self-signed certificate for 127.0.0.1 and the base64 SHA-256 of its
    public key (what --ignore-certificate-errors-spki-list takes)."""
    if not shutil.which("openssl"):
        raise SystemExit("FAIL: openssl command missing: install Debian package 'openssl'")
    cert, key = os.path.join(tmp, name + ".crt"), os.path.join(tmp, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         check=True, capture_output=True).stdout
    return cert, key, base64.b64encode(hashlib.sha256(der).digest()).decode()


def main():
    exe = relay_exe()
    browser = chromium()
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="relay-chromium-")
    cert, key, pin = make_cert(tmp, "relay")
    _, _, other_pin = make_cert(tmp, "other")
    tls_port = free_port(socket.SOCK_STREAM)
    relay = Relay(exe, "--auth-secret", SECRET, "--tls-listen", f"127.0.0.1:{tls_port}",
                  "--cert", cert, "--key", key)
    try:
        user, cred = rest_credentials(SECRET, int(time.time()) + 3600, ident="chromium")
        for transport in ("udp", "tcp", "tls"):
            url = f"turn:127.0.0.1:{relay.port}?transport={transport}"
            extra = ()
            if transport == "tls":
                url = f"turns:127.0.0.1:{tls_port}?transport=tcp"
                extra = (f"--ignore-certificate-errors-spki-list={pin}",)
            before = relay.metric("tsunagu_relay_packets_total")
            r = run_page(browser, tmp, url, user, cred, "relay", 45 * TIMEOUT_MULT, extra)
            c.ok(r is not None and r.get("ok"), f"chromium over {transport}: call set up ({r})")
            if not r or not r.get("ok"):
                continue
            c.ok(r["received"] == 50 and r["echoed"] == 50,
                 f"{transport}: 50 messages each way ({r['received']}/{r['echoed']})")
            c.ok(r["a"] and r["b"] and r["a"]["local"] == "relay" and r["a"]["remote"] == "relay"
                 and r["b"]["local"] == "relay", f"{transport}: selected pair relay/relay {r['a']}")
            c.ok(r["a"] and r["a"].get("proto") == transport,
                 f"{transport}: Chromium reached the relay over {transport} ({r['a']})")
            c.ok(relay.metric("tsunagu_relay_packets_total") >= before + 100,
                 f"{transport}: the relay counted the packets")
        # control: pinned to another key, Chromium refuses the relay's
        # certificate and the TLS call cannot be set up
        before = relay.metric("tsunagu_relay_allocations_total")
        r = run_page(browser, tmp, f"turns:127.0.0.1:{tls_port}?transport=tcp", user, cred,
                     "relay", 30 * TIMEOUT_MULT,
                     (f"--ignore-certificate-errors-spki-list={other_pin}",))
        c.ok(r is not None and not r.get("ok")
             and relay.metric("tsunagu_relay_allocations_total") == before,
             f"control: another pinned key, no TLS call and no allocation ({r})")
        # control: with policy 'all' the page reports a host pair, so the
        # relay/relay check above is able to fail
        r = run_page(browser, tmp, f"turn:127.0.0.1:{relay.port}", user, cred, "all",
                     45 * TIMEOUT_MULT)
        c.ok(r is not None and r.get("ok") and r["a"] and r["a"]["local"] != "relay",
             f"control: policy 'all' picks a non-relay pair ({r})")
        c.ok(relay.metric("tsunagu_relay_allocations_total") >= 2, "allocations were made")
    finally:
        relay.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
