/* harness.mjs - what the browser tests of tsunagu.js and the demo page share.
 *
 * - puppeteer-core, installed at run time by `npm install` into the test's own temp dir
 *   (package.json beside this file pins the version; nothing is committed or kept);
 * - tsunagu-relay and tsunagu-signal on free loopback ports (TURN REST secret shared);
 * - headless Chromium (Debian's chromium, DevTools protocol) and Firefox ESR (Debian's
 *   firefox-esr, WebDriver BiDi), fake camera and microphone, profiles inside the temp dir;
 * - a static HTTP server for test pages that re-serves signaling's /tsunagu.js, so a page
 *   imports "/tsunagu.js" from its own origin as an app would;
 * - cleanup: every process we started is SIGKILLed by its PID (browsers by their process
 *   group) at exit, also on failure or on meson's SIGTERM, and the temp dir is removed.
 *
 * A missing browser, binary or npm is a FAIL, never a skip. Timeouts scale with
 * TIMEOUT_MULT (meson's --timeout-multiplier runs set it too). */
import { spawn, execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import crypto from "node:crypto";
import dgram from "node:dgram";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const MULT = Number(process.env.TIMEOUT_MULT || "1") || 1;
const KEEP = !!process.env.KEEP_E2E;

const children = new Set(); // {pid, group}
let tmpRoot = null;

export function log(msg) {
  process.stdout.write(msg + "\n");
}

export function fail(msg) {
  log("FAIL: " + msg);
  process.exit(1);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function killAll() {
  for (const c of [...children].reverse()) {
    try {
      process.kill(c.group ? -c.pid : c.pid, "SIGKILL");
    } catch (e) { /* gone already */ }
    if (c.group) try { process.kill(c.pid, "SIGKILL"); } catch (e) { /* gone */ }
  }
  children.clear();
  if (tmpRoot) {
    if (KEEP) log("# kept " + tmpRoot);
    else fs.rmSync(tmpRoot, { recursive: true, force: true });
    tmpRoot = null;
  }
}
process.on("exit", killAll);
for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"])
  process.on(sig, () => { log("FAIL: killed by " + sig); process.exit(1); });
process.on("unhandledRejection", (e) => fail("unhandled: " + (e && e.stack || e)));
process.on("uncaughtException", (e) => fail("uncaught: " + (e && e.stack || e)));

/** The test's temp dir (removed at exit); TMPDIR points inside it for every child. */
export function tempDir(prefix) {
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const t = path.join(tmpRoot, "tmp");
  fs.mkdirSync(t);
  process.env.TMPDIR = t;
  return tmpRoot;
}

/** npm install of package.json into DIR/npm; returns require() rooted there. */
export function installDeps(dir) {
  const npmDir = path.join(dir, "npm");
  fs.mkdirSync(npmDir);
  fs.copyFileSync(path.join(HERE, "package.json"), path.join(npmDir, "package.json"));
  const t0 = Date.now();
  try {
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--no-package-lock",
                         "--loglevel=error", "--engine-strict=false"],
                 { cwd: npmDir, stdio: ["ignore", "pipe", "pipe"], timeout: 180000 * MULT });
  } catch (e) {
    fail("npm install of puppeteer-core failed (npm and the npm registry needed): " +
         String(e.stderr || e.message).slice(-800));
  }
  log("# npm install: " + ((Date.now() - t0) / 1000).toFixed(1) + " s");
  return createRequire(path.join(npmDir, "package.json"));
}

/** Start a process we own (killed at exit); output to logPath. */
export function start(argv, logPath, opts = {}) {
  const fd = fs.openSync(logPath, "a");
  const p = spawn(argv[0], argv.slice(1), { stdio: ["ignore", fd, fd], ...opts });
  fs.closeSync(fd);
  const entry = { pid: p.pid, group: !!opts.detached };
  children.add(entry);
  p.exited = new Promise((r) => p.on("exit", (code, sig) => { children.delete(entry); r({ code, sig }); }));
  p.argv = argv;
  return p;
}

export async function killProc(p, sig = "SIGKILL") {
  try { p.kill(sig); } catch (e) { /* gone */ }
  await p.exited;
}

/** A port free for TCP and UDP on 127.0.0.1: random in 3000-9999, below the relay
 * ranges and Linux's ephemeral range, where any outgoing connection could take a port
 * between our check and the server's bind (tests/integration/ports.py). */
export async function freePort() {
  for (let i = 0; i < 500; i++) {
    const port = 3000 + Math.floor(Math.random() * 7000);
    if ([3478, 3479, 3480, 5349, 5350, 6379, 7000, 8080, 8443, 9641, 9642, 9643].includes(port)) continue;
    const u = dgram.createSocket("udp4");
    const bound = await new Promise((r) => { u.once("error", () => r(false)); u.bind(port, "127.0.0.1", () => r(true)); });
    if (!bound) { try { u.close(); } catch (e) { /* not open */ } continue; }
    const ok = await new Promise((r) => {
      const s = net.createServer();
      s.once("error", () => r(false));
      s.listen(port, "127.0.0.1", () => s.close(() => r(true)));
    });
    u.close();
    if (ok) return port;
  }
  fail("no free port");
}

export async function waitPort(port, proc, what) {
  const deadline = Date.now() + 10000 * MULT;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) fail(what + " exited at start-up (status " + proc.exitCode + ")");
    const ok = await new Promise((r) => {
      const c = net.connect(port, "127.0.0.1", () => { c.destroy(); r(true); });
      c.once("error", () => r(false));
    });
    if (ok) return;
    await sleep(100);
  }
  fail(what + " did not listen on " + port);
}

function checkExe(p, what) {
  try { fs.accessSync(p, fs.constants.X_OK); } catch (e) { fail(what + " not found at " + p); }
}

/** tsunagu-relay and tsunagu-signal; relay.kill()/restart(), signal.kill()/restart(). */
export async function servers({ signalExe, relayExe, dir, signalArgs = [] }) {
  checkExe(signalExe, "tsunagu-signal (--signal)");
  checkExe(relayExe, "tsunagu-relay (--relay-exe)");
  const secret = crypto.randomBytes(12).toString("hex");
  const relayPort = await freePort();
  const metricsPort = await freePort();
  const sigPort = await freePort();
  const relayArgv = [relayExe, "--listen", "127.0.0.1:" + relayPort, "--relay-ip", "127.0.0.1",
                     "--realm", "tsunagu", "--auth-secret", secret,
                     "--metrics-listen", "127.0.0.1:" + metricsPort];
  const sigArgv = [signalExe, "--listen", "127.0.0.1:" + sigPort,
                   "--turn-url", "turn:127.0.0.1:" + relayPort + "?transport=udp",
                   "--turn-secret", secret, "--max-joins-per-ip-per-sec", "0", ...signalArgs];
  const s = {
    relayPort, sigPort, secret,
    origin: "http://127.0.0.1:" + sigPort,
    wsUrl: "ws://127.0.0.1:" + sigPort + "/ws",
    relay: null, signal: null, relayStarts: 0, signalStarts: 0,
    async startRelay() {
      s.relay = start(relayArgv, path.join(dir, "relay-" + ++s.relayStarts + ".log"));
      await waitPort(relayPort, s.relay, "tsunagu-relay");
    },
    async startSignal() {
      s.signal = start(sigArgv, path.join(dir, "signal-" + ++s.signalStarts + ".log"));
      await waitPort(sigPort, s.signal, "tsunagu-signal");
    },
    /** packets the relay forwarded (its /metrics) */
    async relayPackets() {
      const text = await (await fetch("http://127.0.0.1:" + metricsPort + "/metrics")).text();
      let n = 0;
      for (const m of text.matchAll(/^tsunagu_relay_packets_total\{[^}]*\} (\S+)/gm)) n += Number(m[1]);
      return n;
    },
  };
  await s.startRelay();
  await s.startSignal();
  return s;
}

/** Static pages from tests/e2e/browser/pages, and /tsunagu.js as signaling serves it. */
export async function pageServer(sigOrigin) {
  const r = await fetch(sigOrigin + "/tsunagu.js");
  if (r.status !== 200) fail("tsunagu-signal does not serve /tsunagu.js (HTTP " + r.status + ")");
  const lib = Buffer.from(await r.arrayBuffer());
  const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                  ".mjs": "text/javascript; charset=utf-8" };
  const srv = http.createServer((q, res) => {
    const p = new URL(q.url, "http://x").pathname;
    let body = null;
    if (p === "/tsunagu.js") body = lib;
    else if (/^\/[a-z_]+\.(html|js)$/.test(p)) {
      try { body = fs.readFileSync(path.join(HERE, "pages", p.slice(1))); } catch (e) { body = null; }
    }
    if (!body) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { "content-type": types[path.extname(p)], "cache-control": "no-store" });
    res.end(body);
  });
  await new Promise((ok) => srv.listen(0, "127.0.0.1", ok));
  srv.unref();
  return "http://127.0.0.1:" + srv.address().port;
}

const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-dev-shm-usage",
  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
  "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows", "--disable-component-update", "--disable-sync",
];
// shared/notes/browser-calls.md: media without prompts, ICE on loopback with real addresses
const FIREFOX_PREFS = {
  "media.navigator.streams.fake": true,
  "media.navigator.permission.disabled": true,
  "media.peerconnection.ice.loopback": true,
  "media.peerconnection.ice.obfuscate_host_addresses": false,
  "media.autoplay.default": 0,
  "media.autoplay.block-webaudio": false,
  // no sound card here: without an audio device an AudioContext stays "suspended" (Web
  // Audio levels all 0); cubeb's mock context is a device that runs on a timer
  "media.cubeb.force_mock_context": true,
  "dom.min_background_timeout_value": 4,
  "browser.shell.checkDefaultBrowser": false,
  "app.update.enabled": false,
  "network.captive-portal-service.enabled": false,
  "datareporting.healthreport.uploadEnabled": false,
};

let browserSeq = 0;
/** kind "chromium" or "firefox": a puppeteer Browser, killed at exit. */
export async function launch(puppeteer, kind, dir) {
  const userDataDir = path.join(dir, kind + "-" + ++browserSeq);
  fs.mkdirSync(userDataDir);
  const env = { ...process.env, TMPDIR: process.env.TMPDIR };
  let opts;
  if (kind === "chromium") {
    checkExe("/usr/bin/chromium", "chromium (apt-get install chromium; scripts/deps.sh test)");
    opts = { browser: "chrome", executablePath: "/usr/bin/chromium", headless: true, pipe: true,
             userDataDir, args: CHROMIUM_ARGS, env };
  } else if (kind === "firefox") {
    checkExe("/usr/bin/firefox-esr", "firefox-esr (apt-get install firefox-esr; scripts/deps.sh test)");
    opts = { browser: "firefox", executablePath: "/usr/bin/firefox-esr", headless: true,
             userDataDir, extraPrefsFirefox: FIREFOX_PREFS, env };
  } else fail("unknown browser " + kind);
  const t0 = Date.now();
  let b;
  try {
    b = await puppeteer.launch({ ...opts, protocolTimeout: 60000 * MULT, timeout: 60000 * MULT });
  } catch (e) {
    fail(kind + " did not start: " + e.message);
  }
  const proc = b.process();
  if (proc) children.add({ pid: proc.pid, group: true });
  b.kind = kind;
  b.label = kind + " " + (await b.version());
  log("# " + b.label + " up in " + (Date.now() - t0) + " ms");
  return b;
}

/** Evaluate src (an expression; promises awaited) in the page; failures name the page. */
export async function evaluate(page, src, what) {
  try {
    return await page.evaluate(src);
  } catch (e) {
    fail((what || page.label || "page") + ": " + String(e.message || e).slice(0, 800));
  }
}

/** Poll src in page until truthy; returns its value. */
export async function waitFor(page, src, seconds, what, describe) {
  const deadline = Date.now() + seconds * 1000 * MULT;
  for (;;) {
    const v = await evaluate(page, src, what);
    if (v) return v;
    if (Date.now() > deadline) {
      const more = describe ? await evaluate(page, describe, what) : "";
      fail((page.label || "page") + ": " + what + " not within " + seconds * MULT + " s " + more);
    }
    await sleep(200);
  }
}

/** True when `mine` (a selected pair as stats() gives it) runs relay to relay: local "relay",
 * remote "relay", or "prflx" at exactly the other end's local relay address and port (a
 * browser that got the peer's first check before its trickled relay candidate names it
 * peer-reflexive: Firefox does). `theirs`: the other end's pair of the same call. */
export function relayPath(mine, theirs) {
  if (!mine || mine.local !== "relay") return false;
  if (mine.remote === "relay") return true;
  return mine.remote === "prflx" && !!theirs && theirs.local === "relay" && !!mine.remoteAddress &&
    mine.remoteAddress === theirs.localAddress && mine.remotePort === theirs.localPort;
}

export function parseArgs(argv, spec) {
  const out = { ...spec };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, "").replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(k in spec)) fail("unknown argument " + argv[i]);
    out[k] = argv[++i];
    if (out[k] === undefined) fail(argv[i - 1] + " needs a value");
  }
  return out;
}
