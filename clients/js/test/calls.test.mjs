// The call logic of tsunagu.js through a real tsunagu-signal, with a stand-in
// RTCPeerConnection (testlib/fakepc.mjs): who offers, the polite/impolite
// roles and an offer collision, trickle ICE in order, ICE restart on
// relays-changed and on a failed path, mute and replaceTrack, stats(), leave.
// Real WebRTC is the browser tests' part (Chromium, Firefox).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Signal, client, until, eventsOf, sleep } from "../testlib/helpers.mjs";
import { FakePC, FakeStream, FakeTrack } from "../testlib/fakepc.mjs";

async function pair(t, extra) {
  const srv = await Signal.start(t, ["--rate-limit", "5000"]);
  const opts = (s) => Object.assign({ RTCPeerConnection: FakePC, localStream: s }, extra || {});
  const sa = new FakeStream([new FakeTrack("audio"), new FakeTrack("video")]);
  const sb = new FakeStream([new FakeTrack("audio")]); // b has no camera
  const a = client(t, srv.url, opts(sa)), b = client(t, srv.url, opts(sb));
  const ja = await a.join(null, "Ann", { room: "r" });
  const jb = await b.join(null, "Bo", { room: "r" });
  const connected = (c) => c.members.length === 1 && c.members[0].connection === "connected";
  await until(() => connected(a) && connected(b), "the call connected");
  const pcA = FakePC.all.find((p) => p === a._members.get(jb.id).pc);
  const pcB = FakePC.all.find((p) => p === b._members.get(ja.id).pc);
  return { srv, a, b, ja, jb, pcA, pcB, sa, sb };
}

// the call messages one client received from the other, in order
const callSignals = (c) => eventsOf(c, "signal").map((s) => s.data).filter((d) => d.description || "candidate" in d);
const kinds = (c) => callSignals(c).map((d) => (d.description ? d.description.type : d.candidate ? "cand" : "end"));

test("the later joiner offers; trickle ICE in order; tracks and connection state with the pair type", async (t) => {
  const { a, b, ja, jb, pcA, pcB } = await pair(t);
  // "connected" may come before the last candidates are through: wait for the ends
  await until(() => kinds(a).length === 4 && kinds(b).length === 4 && pcA.remoteCandidates.length === 3 &&
    pcB.remoteCandidates.length === 3, "every candidate and the end of them, both ways");
  // b joined later: b offered, a answered; each side's candidates after its description, then the end
  assert.deepEqual(kinds(a), ["offer", "cand", "cand", "end"]);
  assert.deepEqual(kinds(b), ["answer", "cand", "cand", "end"]);
  assert.equal(pcB.offersMade, 1);
  assert.equal(pcA.offersMade, 0, "the earlier member never offered");
  assert.equal(pcA.answersMade, 1);
  // b has no camera: it still asked for video (recvonly) so it sees a's
  assert.match(callSignals(a)[0].description.sdp, /m=audio,video/);
  // a's tracks went onto the transceivers b's offer made: nothing added, no second round
  assert.deepEqual(pcA.getTransceivers().map((x) => [x.receiver.track.kind, x.direction, x.sender.track && x.sender.track.kind]),
    [["audio", "sendrecv", "audio"], ["video", "sendrecv", "video"]]);
  assert.deepEqual(pcB.getTransceivers().map((x) => [x.receiver.track.kind, x.direction, x.sender.track && x.sender.track.kind]),
    [["audio", "sendrecv", "audio"], ["video", "recvonly", null]]);
  assert.deepEqual(pcA.remoteCandidates.map((c) => c && c.candidate.split(" ")[5]), ["9000", "9001", null]);
  assert.deepEqual(a.members.map((m) => [m.id, m.polite]), [[jb.id, true]]);
  assert.deepEqual(b.members.map((m) => [m.id, m.polite]), [[ja.id, false]]);
  // the ICE servers from `joined` went into the RTCPeerConnection
  assert.deepEqual(pcA.configs[0].iceServers, a.iceServers);
  // connection events carry the selected pair's type (relay on one end: "relay")
  const conn = eventsOf(a, "connection").filter((e) => e.connection === "connected");
  assert.ok(conn.length >= 1);
  assert.equal(conn.at(-1).peerId, jb.id);
  assert.equal(conn.at(-1).pairType, "relay");
  assert.deepEqual(conn.at(-1).pair, { local: "relay", remote: "host", protocol: "udp", relayProtocol: "udp" });
  // remote tracks: a got b's audio (and the video m-line), b got a's audio and video
  assert.deepEqual(eventsOf(b, "track").map((e) => [e.peerId, e.track.kind]), [[ja.id, "audio"], [ja.id, "video"]]);
  assert.equal(b.members[0].tracks.length, 2);
  assert.deepEqual(eventsOf(a, "error"), []);
  assert.deepEqual(eventsOf(b, "error"), []);
  // leave: the other side's call closes and its tracks are gone
  b.leave();
  await until(() => a.members.length === 0, "a sees b leave");
  assert.equal(pcA.signalingState, "closed");
  assert.equal(pcB.signalingState, "closed");
  assert.equal(eventsOf(a, "track-removed").length, 2);
});

test("relays-changed: both ends take the new iceServers; the offerer restarts ICE, the answerer follows", async (t) => {
  const { a, b, ja, jb, pcA, pcB } = await pair(t);
  const fresh = [{ urls: ["turn:127.0.0.1:3479"], username: "1:x", credential: "y" }];
  // tsunagu-signal sends {"type":"relays-changed","iceServers":[...]} (the fleet
  // branch); fed here as that frame would be handled
  a._handle({ type: "relays-changed", iceServers: fresh });
  b._handle({ type: "relays-changed", iceServers: fresh });
  assert.deepEqual(pcA.configs.at(-1).iceServers, fresh);
  assert.deepEqual(pcB.configs.at(-1).iceServers, fresh);
  assert.deepEqual(b.iceServers, fresh);
  await until(() => pcA.answersMade === 2 && pcB.signalingState === "stable", "the restart answered");
  assert.equal(pcB.restartIceCalls, 1);
  assert.equal(pcA.restartIceCalls, 0, "the polite end did not restart");
  assert.equal(pcB.offersMade, 2);
  assert.equal(pcA.offersMade, 0);
  assert.deepEqual(eventsOf(b, "ice-restart"), [{ peerId: ja.id, reason: "relays-changed" }]);
  assert.deepEqual(eventsOf(a, "ice-restart"), []);
  // the restart offer has new credentials and fresh candidates follow it
  const offers = callSignals(a).filter((d) => d.description).map((d) => d.description.sdp);
  assert.notEqual(/ufrag=(\S+)/.exec(offers[0])[1], /ufrag=(\S+)/.exec(offers[1])[1]);
  await until(() => kinds(a).length === 8, "second round of candidates");
  assert.deepEqual(kinds(a), ["offer", "cand", "cand", "end", "offer", "cand", "cand", "end"]);
  assert.equal(b.members[0].iceRestarts, 1);
  assert.deepEqual(a.members.map((m) => m.id), [jb.id]);
});

test("a failed media path restarts ICE after iceRestartAfterMs, again while it stays dead, then stops", async (t) => {
  const { a, b, ja, pcA, pcB } = await pair(t, { iceRestartAfterMs: 300 });
  // a relay crash: both ends see the path die
  pcB.broken = pcA.broken = true;
  b.on("ice-restart", () => { if (eventsOf(b, "ice-restart").length === 2) pcB.broken = pcA.broken = false; });
  const t0 = Date.now();
  for (const pc of [pcA, pcB]) {
    pc.iceConnectionState = "disconnected";
    pc._fire("iceconnectionstatechange");
  }
  await until(() => eventsOf(b, "ice-restart").length === 1, "first restart", 3000);
  const first = Date.now() - t0;
  assert.ok(first >= 280, "not before iceRestartAfterMs (" + first + " ms)");
  assert.deepEqual(eventsOf(b, "ice-restart")[0], { peerId: ja.id, reason: "path-failed" });
  // still dead after the restart (the fake says failed): another one, and
  // the relay is back for it (set as it begins): it connects, restarts stop
  await until(() => eventsOf(b, "ice-restart").length === 2, "second restart", 3000);
  await until(() => b.members[0].connection === "connected" && a.members[0].connection === "connected", "back", 3000);
  const n = eventsOf(b, "ice-restart").length;
  assert.equal(n, 2, "restarts");
  await sleep(1200);
  assert.equal(eventsOf(b, "ice-restart").length, n, "no restart once connected");
  // the polite end waits three times as long: the offerer's restart came first
  assert.equal(eventsOf(a, "ice-restart").length, 0);
  assert.equal(pcA.offersMade, 0);
  assert.equal(a.members.length, 1);
  console.log("path failure: first ICE restart " + first + " ms after the path died (iceRestartAfterMs 300), " + n + " restarts in all");
});

test("offer collision: the polite end yields, the impolite ignores; both end stable and connected", async (t) => {
  const { a, b, pcA, pcB } = await pair(t);
  a.restartIce();
  b.restartIce();
  await until(() => pcA.signalingState === "stable" && pcB.signalingState === "stable" &&
    a.members[0].connection === "connected" && b.members[0].connection === "connected", "settled", 3000);
  await sleep(300);
  assert.equal(pcA.rollbacks, 1, "the polite end rolled its offer back");
  assert.equal(pcB.rollbacks, 0);
  assert.equal(pcA.offersMade, 1);
  assert.ok(pcB.answersMade === 0, "the impolite end answered nothing");
  assert.deepEqual(eventsOf(a, "error"), []);
  assert.deepEqual(eventsOf(b, "error"), []);
  assert.equal(pcA.signalingState, "stable");
  assert.equal(pcB.signalingState, "stable");
});

test("mute and replaceTrack act on every call; stats() gives bitrate, loss, jitter, RTT, pair type", async (t) => {
  const { a, jb, pcA, sa } = await pair(t);
  a.setMuted("audio", true);
  assert.equal(a.isMuted("audio"), true);
  assert.equal(sa.getTracks().find((x) => x.kind === "audio").enabled, false);
  assert.equal(sa.getTracks().find((x) => x.kind === "video").enabled, true);
  const cam2 = new FakeTrack("video");
  await a.replaceTrack(cam2);
  const videoTr = pcA.getTransceivers().find((x) => x.receiver.track.kind === "video");
  assert.equal(videoTr.sender.track, cam2);
  assert.ok(a.localStream.getTracks().includes(cam2));
  assert.equal(a.localStream.getTracks().filter((x) => x.kind === "video").length, 1);
  const mic2 = new FakeTrack("audio");
  await a.replaceTrack(mic2);
  assert.equal(mic2.enabled, false, "a new microphone stays muted");
  a.setMuted("audio", false);
  assert.equal(mic2.enabled, true);
  // replaceTrack needs no renegotiation
  assert.equal(pcA.offersMade, 0);
  pcA.statsStep = 0;
  const s0 = await a.stats();
  assert.deepEqual(Object.keys(s0), [jb.id]);
  assert.equal(s0[jb.id].bitrateIn, 0, "no rate from one sample");
  await sleep(500);
  pcA.statsStep = 1;
  const s1 = (await a.stats())[jb.id];
  assert.equal(s1.pairType, "relay");
  assert.equal(s1.connection, "connected");
  assert.equal(s1.rttMs, 12);
  assert.equal(s1.jitterMs, 4);
  assert.equal(s1.lossPercent, 10);
  assert.equal(s1.audio.packetsLost, 10);
  // 4000 bytes in and 8000 out over ~0.5 s
  assert.ok(s1.bitrateIn > 4000 * 8 / 1.5 && s1.bitrateIn < 4000 * 8 / 0.45, "bitrateIn " + s1.bitrateIn);
  assert.ok(s1.bitrateOut > s1.bitrateIn * 1.9 && s1.bitrateOut < s1.bitrateIn * 2.1);
  assert.equal(s1.video, null);
  JSON.stringify(s1); // plain data (tests read it through page.evaluate)
  // a second caller right after: the same window (the look 0.5 s ago is still the base), not 0
  const s2 = (await a.stats())[jb.id];
  assert.ok(s2.bitrateIn > 0 && s2.lossPercent === 10, "rates kept for a second caller: " + s2.bitrateIn);
  // a look over 1 s later takes the newest look at least 1 s old as its base
  await sleep(1100);
  pcA.statsStep = 2; // 4000 more bytes in
  const s3 = (await a.stats())[jb.id];
  assert.ok(s3.bitrateIn > 4000 * 8 / 2 && s3.bitrateIn < 4000 * 8 / 1.0, "bitrateIn over ~1.1 s: " + s3.bitrateIn);
});

test("media stops while ICE still says connected: the offerer restarts ICE after iceRestartAfterMs without media", async (t) => {
  const { a, b, ja, pcA, pcB } = await pair(t, { iceRestartAfterMs: 400 });
  pcA.live = pcB.live = true;
  await sleep(1200); // media flows: no restart
  assert.deepEqual(eventsOf(b, "ice-restart"), []);
  // the relay dies: nothing arrives, ICE has not noticed yet
  pcA.frozen = pcB.frozen = true;
  const t0 = Date.now();
  // the restart finds a path again (fresh allocations): media flows on
  b.on("ice-restart", () => { pcA.frozen = pcB.frozen = false; });
  await until(() => eventsOf(b, "ice-restart").length === 1, "a restart for the silent path", 4000);
  const took = Date.now() - t0;
  // (counted from the last growth seen, up to one look = 200 ms before the freeze)
  assert.ok(took >= 150 && took < 2500, "restart " + took + " ms after the media stopped");
  assert.deepEqual(eventsOf(b, "ice-restart")[0], { peerId: ja.id, reason: "path-failed" });
  await until(() => pcA.answersMade === 2, "the restart answered");
  await sleep(1500); // media again: no further restart
  assert.equal(eventsOf(b, "ice-restart").length, 1);
  assert.equal(eventsOf(a, "ice-restart").length, 0, "the polite end left it to the offerer");
  assert.deepEqual(eventsOf(b, "error"), []);
  // the other end stops sending while ICE is fine: that looks like a dead
  // path and costs one restart, not a loop (media must flow again first)
  pcA.live = pcB.live = false;
  await sleep(2500);
  assert.equal(eventsOf(b, "ice-restart").length, 2);
  console.log("silent path: ICE restart " + took + " ms after the media stopped (iceRestartAfterMs 400)");
});
