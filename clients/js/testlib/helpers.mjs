// helpers.mjs - a real tsunagu-signal (and redis-server, and a health-checking
// TCP balancer) for the node tests of tsunagu.js. Every process is killed by
// its PID when the test ends (t.after), also on failure; logs stay in memory.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import net from "node:net";
import http from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { TsunaguClient } from "../tsunagu.js";

const here = dirname(fileURLToPath(import.meta.url));
export const MULT = Number(process.env.TIMEOUT_MULT || "1");

export function signalBin() {
  const bin = process.env.TSUNAGU_SIGNAL_BIN || resolve(here, "..", "..", "..", "build", "signaling", "tsunagu-signal");
  // a missing binary fails the tests loudly, never skips them
  if (!existsSync(bin)) throw new Error("tsunagu-signal not found at " + bin + " (build it, or set TSUNAGU_SIGNAL_BIN)");
  return bin;
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function canConnect(port) {
  return new Promise((res) => {
    const c = net.connect(port, "127.0.0.1");
    c.once("connect", () => { c.destroy(); res(true); });
    c.once("error", () => res(false));
  });
}

/** A child process with its output kept in memory; kill() by PID. */
class Proc {
  constructor(argv, what) {
    this.what = what;
    this.out = "";
    this.child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    const keep = (b) => { this.out = (this.out + b.toString()).slice(-20000); };
    this.child.stdout.on("data", keep);
    this.child.stderr.on("data", keep);
    this.exit = new Promise((r) => this.child.once("exit", (code, sig) => r({ code, sig })));
    this.exited = false;
    this.exit.then(() => { this.exited = true; });
  }

  kill(sig) {
    if (!this.exited) process.kill(this.child.pid, sig || "SIGKILL");
  }
}

/** tsunagu-signal on 127.0.0.1:port (a free one unless given); args are extra flags. */
export class Signal extends Proc {
  static async start(t, args, port) {
    port = port || (await freePort());
    const s = new Signal([signalBin(), "--listen", "127.0.0.1:" + port, "--log-level", "debug", ...(args || [])], port);
    if (t) t.after(() => s.kill());
    await s.ready();
    return s;
  }

  constructor(argv, port) {
    super(argv, "tsunagu-signal");
    this.port = port;
    this.url = "ws://127.0.0.1:" + port + "/ws";
  }

  async ready() {
    const deadline = Date.now() + 10000 * MULT;
    while (Date.now() < deadline) {
      if (this.exited) throw new Error("tsunagu-signal exited at start-up:\n" + this.out);
      if (await canConnect(this.port)) return;
      await sleep(50);
    }
    this.kill();
    throw new Error("tsunagu-signal did not listen in time:\n" + this.out);
  }
}

export class Redis extends Proc {
  /** extra: more redis-server arguments (later ones win: "--appendonly", "yes"). */
  static async start(t, extra) {
    const exe = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].find(existsSync);
    if (!exe) throw new Error("redis-server is missing (apt-get install redis-server)");
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "jslib-redis-"));
    const r = new Redis([exe, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--dir", dir, "--daemonize", "no", ...(extra || [])], "redis-server");
    r.port = port;
    r.url = "redis://127.0.0.1:" + port + "/0";
    t.after(async () => {
      r.kill();
      await r.exit;
      rmSync(dir, { recursive: true, force: true });
    });
    const deadline = Date.now() + 10000 * MULT;
    while (Date.now() < deadline) {
      if (r.exited) throw new Error("redis-server exited:\n" + r.out);
      if (await canConnect(port)) return r;
      await sleep(50);
    }
    throw new Error("redis-server did not listen in time");
  }
}

/** The balancer in front of a cluster (docs/operations.md): each new TCP
 *  connection goes to the first backend whose /healthz answers 200 (a
 *  draining node answers 503); connections made stay where they are. */
export async function healthProxy(t, ports) {
  const healthy = (port) => new Promise((res) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/healthz", timeout: 1000 }, (r) => {
      r.resume();
      res(r.statusCode === 200);
    });
    req.on("error", () => res(false));
    req.on("timeout", () => { req.destroy(); res(false); });
  });
  const socks = new Set();
  const routed = [];
  const srv = net.createServer(async (c) => {
    socks.add(c);
    c.on("close", () => socks.delete(c));
    c.on("error", () => {});
    c.pause();
    for (const port of ports) {
      if (!(await healthy(port))) continue;
      const b = net.connect(port, "127.0.0.1");
      socks.add(b);
      b.on("close", () => { socks.delete(b); c.destroy(); });
      b.on("error", () => c.destroy());
      c.on("close", () => b.destroy());
      routed.push(port);
      c.pipe(b);
      b.pipe(c);
      c.resume();
      return;
    }
    c.destroy();
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const port = srv.address().port;
  t.after(() => {
    for (const s of socks) s.destroy();
    srv.close();
  });
  return { url: "ws://127.0.0.1:" + port + "/ws", routed };
}

/** An HS256 access token as an app's backend mints one (docs/client.md). */
export function mintToken(secret, claims) {
  const b64 = (x) => Buffer.from(typeof x === "string" ? x : JSON.stringify(x)).toString("base64url");
  const head = b64({ alg: "HS256", typ: "JWT" });
  const body = b64(Object.assign({ exp: Math.floor(Date.now() / 1000) + 600 }, claims));
  const sig = createHmac("sha256", secret).update(head + "." + body).digest("base64url");
  return head + "." + body + "." + sig;
}

/** A signaling-only client (ws, no RTCPeerConnection) recording its events. */
export function client(t, url, extra) {
  const c = new TsunaguClient(Object.assign({ url, WebSocket, RTCPeerConnection: null,
    reconnectMinMs: 100, reconnectMaxMs: 1000 }, extra || {}));
  c.events = [];
  for (const type of ["state", "joined", "resumed", "members", "member-joined", "member-left", "message",
    "signal", "error", "drain", "connection", "ice-restart", "track", "track-removed"])
    c.on(type, (ev) => c.events.push({ type, ev }));
  if (t) t.after(() => c.leave());
  return c;
}

/** Wait until pred() holds (polling, bounded); fail saying what was awaited. */
export async function until(pred, what, ms) {
  const deadline = Date.now() + (ms || 5000) * MULT;
  while (Date.now() < deadline) {
    if (pred()) return;
    await sleep(20);
  }
  throw new Error("timed out waiting for " + what);
}

export function eventsOf(c, type) {
  return c.events.filter((e) => e.type === type).map((e) => e.ev);
}
