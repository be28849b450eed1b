// The signaling half of tsunagu.js against a real tsunagu-signal (issue 15
// item 3): join, presence, messages in order, resume, drain (single node and
// cluster), and the errors a user sees. Clients use the `ws` package and no
// RTCPeerConnection (signaling only).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import WebSocket from "ws";
import { TsunaguClient, TsunaguError } from "../tsunagu.js";
import { Signal, Redis, healthProxy, mintToken, client, until, eventsOf, sleep, freePort, MULT } from "../testlib/helpers.mjs";

const SECRET = "node-test-secret-0123456789abcdef";

test("join with a token (room from its claim), presence both ways, leave", async (t) => {
  const srv = await Signal.start(t, ["--token-secret", SECRET]);
  const a = client(t, srv.url), b = client(t, srv.url);
  const ja = await a.join(mintToken(SECRET, { room: "kitchen", sub: "ann" }), "Ann");
  assert.equal(ja.room, "kitchen");
  assert.match(ja.id, /^[0-9a-f]{16}$/);
  assert.deepEqual(ja.peers, []);
  assert.equal(a.state, "joined");
  assert.equal(a.id, ja.id);
  // the name claim overrides the name given to join()
  const jb = await b.join(mintToken(SECRET, { room: "kitchen", sub: "bo", name: "Bo" }), "ignored");
  assert.deepEqual(jb.peers, [{ id: ja.id, name: "Ann" }]);
  assert.equal(b.name, "Bo");
  // b joined later: it calls a, so b is impolite towards a, a polite towards b
  assert.deepEqual(b.members.map((m) => [m.id, m.name, m.polite]), [[ja.id, "Ann", false]]);
  await until(() => a.members.length === 1, "a sees b");
  assert.deepEqual(a.members.map((m) => [m.id, m.name, m.polite, m.connection]), [[jb.id, "Bo", true, "new"]]);
  assert.equal(eventsOf(a, "member-joined")[0].name, "Bo");
  assert.deepEqual(eventsOf(a, "members").at(-1).map((m) => m.id), [jb.id]);
  b.leave();
  assert.equal(b.state, "left");
  await until(() => a.members.length === 0, "a sees b leave");
  assert.equal(eventsOf(a, "member-left")[0].id, jb.id);
  assert.deepEqual(eventsOf(a, "members").at(-1), []);
  // states b went through, in order
  assert.deepEqual(eventsOf(b, "state").map((e) => e.state), ["connecting", "joined", "left"]);
  // and b may join again (a new id)
  const jb2 = await b.join(mintToken(SECRET, { room: "kitchen", sub: "bo" }), "Bo");
  assert.notEqual(jb2.id, jb.id);
  await until(() => a.members.length === 1, "a sees b again");
});

test("app messages arrive in order, once (send to one member, broadcast to all)", async (t) => {
  const srv = await Signal.start(t, ["--rate-limit", "5000"]);
  const a = client(t, srv.url), b = client(t, srv.url), c = client(t, srv.url);
  await a.join(null, "a", { room: "r" });
  const jb = await b.join(null, "b", { room: "r" });
  const jc = await c.join(null, "c", { room: "r" });
  await until(() => a.members.length === 2, "a sees b and c");
  const N = 300;
  for (let i = 0; i < N; i++) {
    a.send(jb.id, { seq: i, s: "x".repeat(i % 50) });
    if (i % 3 === 0) a.broadcast(i);
  }
  await until(() => eventsOf(b, "message").length === N + N / 3, "b gets " + (N + N / 3) + " messages");
  const direct = eventsOf(b, "message").filter((m) => !m.broadcast);
  assert.deepEqual(direct.map((m) => m.data.seq), [...Array(N).keys()]);
  assert.ok(direct.every((m) => m.from === a.id));
  const bc = eventsOf(b, "message").filter((m) => m.broadcast).map((m) => m.data);
  assert.deepEqual(bc, [...Array(N / 3).keys()].map((i) => i * 3));
  await until(() => eventsOf(c, "message").length === N / 3, "c gets the broadcasts");
  assert.ok(eventsOf(c, "message").every((m) => m.broadcast));
  await sleep(200);
  assert.equal(eventsOf(b, "message").length, N + N / 3, "nothing twice");
  assert.equal(eventsOf(c, "message").length, N / 3);
  // the raw `signal` events carry the wire form
  assert.deepEqual(eventsOf(b, "signal")[0], { from: a.id, data: { app: { seq: 0, s: "" } } });
  // unknown-peer (a member who just left) is no error for the app
  c.leave();
  await until(() => a.members.length === 1, "a sees c leave");
  a.send(jc.id, "late");
  await sleep(300);
  assert.deepEqual(eventsOf(a, "error"), []);
});

test("resume after a dropped connection: same id, nothing lost or doubled, held sends delivered", async (t) => {
  const srv = await Signal.start(t, ["--resume-seconds", "20", "--rate-limit", "5000"]);
  const a = client(t, srv.url), b = client(t, srv.url);
  const ja = await a.join(null, "a", { room: "r" });
  const jb = await b.join(null, "b", { room: "r" });
  await until(() => a.members.length === 1, "a sees b");
  for (let i = 0; i < 50; i++) a.send(jb.id, i);
  await until(() => eventsOf(b, "message").length === 50, "first 50");
  const t0 = Date.now();
  b.dropConnection(); // as a network change does: no leave
  await until(() => b.state === "reconnecting", "b reconnecting");
  // while b is away a keeps sending (the server queues), b sends too (held)
  for (let i = 50; i < 150; i++) a.send(jb.id, i);
  // b keeps sending the whole time, also in the moment its new connection is
  // open but `resumed` has not come (held, else the server says not-joined)
  let k = 0;
  const pump = setInterval(() => b.send(ja.id, "b" + k++), 1);
  await until(() => eventsOf(b, "resumed").length === 1, "b resumed", 10000);
  await sleep(20);
  clearInterval(pump);
  const took = Date.now() - t0;
  assert.equal(b.state, "joined");
  assert.equal(b.id, jb.id, "same id");
  assert.deepEqual(eventsOf(b, "resumed")[0].peers, [{ id: ja.id, name: "a" }]);
  await until(() => eventsOf(b, "message").length === 150, "all 150 at b");
  assert.deepEqual(eventsOf(b, "message").map((m) => m.data), [...Array(150).keys()]);
  assert.ok(k > 20, "b sent " + k);
  await until(() => eventsOf(a, "message").length === k, "b's " + k + " messages at a");
  assert.deepEqual(eventsOf(a, "message").map((m) => m.data), [...Array(k).keys()].map((i) => "b" + i));
  assert.deepEqual(eventsOf(a, "member-left"), [], "a never saw b leave");
  assert.deepEqual(eventsOf(b, "state").map((e) => e.state), ["connecting", "joined", "reconnecting", "joined"]);
  assert.deepEqual(eventsOf(b, "error"), []);
  // a second drop resumes too, and the member list is the same
  b.dropConnection();
  await until(() => eventsOf(b, "resumed").length === 2, "second resume", 10000);
  assert.deepEqual(b.members.map((m) => m.id), [ja.id]);
  console.log("resume: back " + took + " ms after the drop (first back-off 100 ms)");
});

test("a resume too late (the server restarted) joins again as a new member", async (t) => {
  const port = await freePort();
  let srv = await Signal.start(null, [], port);
  t.after(() => srv.kill());
  const a = client(t, srv.url), b = client(t, srv.url);
  await a.join(null, "a", { room: "r" });
  const jb = await b.join(null, "b", { room: "r" });
  srv.kill();
  await srv.exit;
  await until(() => a.state === "reconnecting" && b.state === "reconnecting", "both reconnecting");
  srv = await Signal.start(null, [], port);
  await until(() => a.state === "joined" && b.state === "joined", "both back", 15000);
  await until(() => a.members.length === 1 && b.members.length === 1, "they see each other", 5000);
  assert.notEqual(b.id, jb.id, "a new member");
  for (const c of [a, b]) {
    const errs = eventsOf(c, "error");
    assert.equal(errs.length, 1, JSON.stringify(errs));
    assert.equal(errs[0].code, "resume-failed");
    assert.equal(errs[0].fatal, false);
    assert.match(errs[0].reason, /joined again/);
    assert.equal(eventsOf(c, "joined").length, 2);
  }
});

test("drain on a single node: told, then back on the restarted server", async (t) => {
  const port = await freePort();
  let srv = await Signal.start(null, ["--drain-seconds", "1"], port);
  t.after(() => srv.kill());
  const a = client(t, srv.url), b = client(t, srv.url);
  await a.join(null, "a", { room: "r" });
  await b.join(null, "b", { room: "r" });
  await until(() => a.members.length === 1, "a sees b");
  const t0 = Date.now();
  srv.kill("SIGTERM");
  await until(() => eventsOf(a, "drain").length === 1 && eventsOf(b, "drain").length === 1, "drain notices");
  assert.deepEqual(eventsOf(a, "drain")[0], { mode: "reconnect" });
  // the connection stays usable during the drain
  assert.equal(a.state, "joined");
  a.send(b.id, "during drain");
  await until(() => eventsOf(b, "message").length === 1, "a message during the drain");
  const st = await srv.exit;
  assert.equal(st.code, 0, "drained and exited cleanly");
  await until(() => a.state === "reconnecting", "a reconnecting after the close");
  srv = await Signal.start(null, ["--drain-seconds", "1"], port);
  await until(() => a.state === "joined" && b.state === "joined" && a.members.length === 1 && b.members.length === 1,
    "both back in the room", 15000);
  console.log("single-node drain: back in the room " + (Date.now() - t0) + " ms after SIGTERM (1 s drain + restart)");
});

test("drain in a cluster: the client resumes on the other node at once, nothing lost", async (t) => {
  const redis = await Redis.start(t);
  const common = ["--redis", redis.url, "--redis-node-ttl", "3", "--rate-limit", "5000", "--resume-seconds", "20"];
  const n1 = await Signal.start(t, [...common, "--drain-seconds", "5"]);
  const n2 = await Signal.start(t, common);
  const lb = await healthProxy(t, [n1.port, n2.port]);
  const a = client(t, n2.url), b = client(t, lb.url);
  const ja = await a.join(null, "a", { room: "r" });
  const jb = await b.join(null, "b", { room: "r" });
  assert.deepEqual(lb.routed, [n1.port], "b is on node 1");
  await until(() => a.members.length === 1, "a sees b");
  const N = 400;
  let sent = 0;
  const flow = (async () => {
    for (; sent < N; sent++) {
      a.send(jb.id, sent);
      if (sent % 20 === 0) await sleep(5);
    }
  })();
  await sleep(30);
  const t0 = Date.now();
  n1.kill("SIGTERM");
  await until(() => eventsOf(b, "resumed").length === 1, "b resumed on node 2", 10000);
  const took = Date.now() - t0;
  assert.deepEqual(eventsOf(b, "drain"), [{ mode: "resume" }]);
  assert.equal(b.id, jb.id);
  assert.deepEqual(lb.routed, [n1.port, n2.port], "the new connection went to node 2");
  // b sends at once: held until resumed, then delivered
  b.send(ja.id, "from b after the move");
  await flow;
  await until(() => eventsOf(b, "message").length === N, N + " messages at b", 10000);
  assert.deepEqual(eventsOf(b, "message").map((m) => m.data), [...Array(N).keys()]);
  await until(() => eventsOf(a, "message").length === 1, "b's message at a");
  assert.equal((await n1.exit).code, 0);
  await sleep(300);
  assert.equal(eventsOf(b, "message").length, N, "none twice");
  assert.deepEqual(eventsOf(a, "member-left"), [], "a never saw b leave");
  assert.deepEqual(eventsOf(b, "error"), []);
  console.log("cluster drain: b resumed on node 2 " + took + " ms after SIGTERM; " + N + " messages in order");
});

test("a node SIGKILLed: its member resumes on the other node with every signal once, in order", async (t) => {
  // Redis keeps every write (the members' streams are what the claim reads)
  const redis = await Redis.start(t, ["--appendonly", "yes", "--appendfsync", "always"]);
  const common = ["--redis", redis.url, "--redis-node-ttl", "10", "--rate-limit", "5000", "--resume-seconds", "20"];
  const nA = await Signal.start(t, common);
  const nB = await Signal.start(t, common);
  const lb = await healthProxy(t, [nA.port, nB.port]);
  const m = client(t, lb.url), pa = client(t, lb.url), pb = client(t, nB.url);
  const jm = await m.join(null, "m", { room: "r" });
  await pa.join(null, "pa", { room: "r" });
  await pb.join(null, "pb", { room: "r" });
  assert.deepEqual(lb.routed, [nA.port, nA.port], "m and pa are on node A");
  await until(() => m.members.length === 2, "m sees pa and pb");
  // pb (node B) sends every 20 ms the whole time: none may be lost (B took
  // each one), including those sent while A is dead and m not yet resumed
  let nb = 0, pbOn = true;
  const pbFlow = (async () => {
    for (; pbOn && nb < 100000; nb++) {
      pb.send(jm.id, "b" + nb);
      await sleep(20);
    }
  })();
  // pa (node A) sends 100 before the crash; A has taken them once m has them
  for (let i = 0; i < 100; i++) pa.send(jm.id, "a" + i);
  const fromPa = () => eventsOf(m, "message").filter((e) => e.from === pa.id).map((e) => e.data);
  await until(() => fromPa().length === 100, "pa's first 100 at m");
  await until(() => nb >= 50, "pb sent 50");
  // kill just after a signal reached m: its stream write (pipelined with
  // the socket write) is done, the next is ~20 ms away (docs/cluster.md:
  // a crash within one Redis round trip of a write is not covered)
  const before = eventsOf(m, "message").length;
  await until(() => eventsOf(m, "message").length > before, "a signal at m");
  await sleep(3);
  const t0 = Date.now();
  nA.kill("SIGKILL");
  await until(() => m.state === "reconnecting" && pa.state === "reconnecting", "m and pa reconnecting");
  // pa's sends now are held by the library until it resumed on B
  for (let i = 100; i < 150; i++) pa.send(jm.id, "a" + i);
  await until(() => eventsOf(m, "resumed").length === 1 && eventsOf(pa, "resumed").length === 1,
    "m and pa resumed on node B", 15000);
  const took = Date.now() - t0;
  assert.equal(m.id, jm.id, "m is the same member");
  assert.deepEqual(lb.routed.slice(2), [nB.port, nB.port], "the new connections went to node B");
  await sleep(500); // pb goes on sending to m on B
  pbOn = false;
  await pbFlow;
  const want = [...Array(nb).keys()].map((i) => "b" + i);
  await until(() => eventsOf(m, "message").filter((e) => e.from === pb.id).length >= nb, "all of pb's at m", 10000);
  await until(() => fromPa().length >= 150, "all of pa's at m", 10000);
  await sleep(300);
  const fromPb = eventsOf(m, "message").filter((e) => e.from === pb.id).map((e) => e.data);
  assert.deepEqual(fromPb, want, "pb's signals: each once, in order");
  assert.deepEqual(fromPa(), [...Array(150).keys()].map((i) => "a" + i), "pa's signals: each once, in order");
  assert.deepEqual(eventsOf(m, "error"), [], "no resume-failed: m kept its place");
  assert.deepEqual(eventsOf(m, "member-left"), []);
  assert.deepEqual(eventsOf(pb, "member-left"), [], "pb never saw m or pa leave");
  assert.deepEqual(m.members.map((x) => x.id).sort(), [pa.id, pb.id].sort());
  console.log("node crash: m and pa resumed on node B " + took + " ms after SIGKILL; m got " + nb +
    " signals from pb (node B) and 150 from pa, each once, in order");
});

test("errors: refused joins reject with a code and a readable reason", async (t) => {
  const srv = await Signal.start(t, ["--token-secret", SECRET, "--max-room-size", "2", "--admin-token", "adm1n-token-for-tests"]);
  const refused = async (token, name, opts, code, reasonRe, state) => {
    const c = client(t, srv.url);
    await assert.rejects(c.join(token, name, opts), (e) => {
      assert.ok(e instanceof TsunaguError, String(e));
      assert.equal(e.code, code);
      assert.match(e.reason, reasonRe);
      assert.equal(e.fatal, true);
      return true;
    });
    assert.equal(c.state, state || "left");
    const errs = eventsOf(c, "error");
    assert.equal(errs.length, 1);
    assert.equal(errs[0].code, code);
    return c;
  };
  // wrongly signed, other room (room option differs from the claim), expired, missing
  await refused(mintToken("wrong-secret", { room: "r", sub: "x" }), "x", null, "unauthorized", /token was refused/);
  await refused(mintToken(SECRET, { room: "other", sub: "x" }), "x", { room: "r" }, "unauthorized", /token/);
  await refused(mintToken(SECRET, { room: "r", sub: "x", exp: Math.floor(Date.now() / 1000) - 60 }), "x", null,
    "unauthorized", /expired/);
  await refused(null, "x", { room: "r" }, "unauthorized", /token/);
  // no room anywhere: refused before connecting
  await refused(null, "x", null, "no-room", /no room/, "idle");
  // room full
  const a = client(t, srv.url), b = client(t, srv.url);
  await a.join(mintToken(SECRET, { room: "r", sub: "a" }), "a");
  const jb = await b.join(mintToken(SECRET, { room: "r", sub: "b" }), "b");
  await refused(mintToken(SECRET, { room: "r", sub: "c" }), "c", null, "room-full", /room "r" is full/);
  // nothing listening
  const dead = await freePort();
  const c = new TsunaguClient({ url: "ws://127.0.0.1:" + dead + "/ws", WebSocket, RTCPeerConnection: null });
  await assert.rejects(c.join(null, "x", { room: "r" }), (e) => e.code === "connect-failed" && /could not reach/.test(e.reason));
  // leave() before `joined`: join() settles (rejects), nothing left open
  const early = client(t, srv.url);
  const pending = early.join(mintToken(SECRET, { room: "r2", sub: "e" }), "e");
  early.leave();
  await assert.rejects(pending, (e) => e.code === "not-joined" && /left before/.test(e.reason));
  assert.equal(early.state, "left");
  // send before join
  assert.throws(() => c.send("0000000000000000", 1), (e) => e.code === "not-joined");
  // join while joined
  await assert.rejects(a.join(null, "again", { room: "r" }), (e) => e.code === "bad-request");
  // kicked by an operator: fatal, no reconnect
  const res = await fetch("http://127.0.0.1:" + srv.port + "/admin/rooms/r/members/" + jb.id,
    { method: "DELETE", headers: { Authorization: "Bearer adm1n-token-for-tests" } });
  assert.equal(res.status, 200, await res.text());
  await until(() => b.state === "left", "b out after the kick");
  const kick = eventsOf(b, "error");
  assert.equal(kick.length, 1);
  assert.equal(kick[0].code, "kicked");
  assert.equal(kick[0].fatal, true);
  assert.match(kick[0].reason, /operator removed you/);
  await sleep(1500 * MULT); // no reconnect attempt: still left, a sees b gone
  assert.equal(b.state, "left");
  assert.equal(eventsOf(b, "state").filter((s) => s.state === "reconnecting").length, 0);
  await until(() => a.members.length === 0, "a sees b kicked");
});

test("server-busy (too many rooms) refuses the join; an oversized message is a non-fatal error", async (t) => {
  const srv = await Signal.start(t, ["--max-rooms", "1", "--max-message-bytes", "2048"]);
  const a = client(t, srv.url), b = client(t, srv.url);
  await a.join(null, "a", { room: "one" });
  await assert.rejects(b.join(null, "b", { room: "two" }), (e) => e.code === "server-busy" && /busy/.test(e.reason));
  const jb = await b.join(null, "b", { room: "one" });
  a.send(jb.id, "y".repeat(4000));
  await until(() => eventsOf(a, "error").length === 1, "too-large");
  const e = eventsOf(a, "error")[0];
  assert.equal(e.code, "too-large");
  assert.equal(e.fatal, false);
  assert.equal(a.state, "joined");
  a.send(jb.id, "small");
  await until(() => eventsOf(b, "message").length === 1, "a small one still goes");
});

test("tsunagu-signal serves the module at /tsunagu.js and its types at /tsunagu.d.ts", async (t) => {
  const srv = await Signal.start(t, []);
  const base = "http://127.0.0.1:" + srv.port;
  const js = await fetch(base + "/tsunagu.js");
  assert.equal(js.status, 200);
  assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
  // the very file this package holds (both copies of signaling/www/tsunagu.js)
  assert.equal(await js.text(), readFileSync(new URL("../tsunagu.js", import.meta.url), "utf8"));
  const dts = await fetch(base + "/tsunagu.d.ts");
  assert.equal(dts.status, 200);
  assert.equal(dts.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.equal(await dts.text(), readFileSync(new URL("../tsunagu.d.ts", import.meta.url), "utf8"));
});
