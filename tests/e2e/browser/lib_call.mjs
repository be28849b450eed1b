#!/usr/bin/env node
/* lib_call.mjs - two pages that import /tsunagu.js make an audio+video call, relay only,
 * through tsunagu-signal and tsunagu-relay (issue 15 item 3, the browser half).
 *
 * usage: node lib_call.mjs --signal EXE --relay-exe EXE --a chromium|firefox --b chromium|firefox
 *
 * A joins first, B second (B offers: the impolite side). Each page runs in its own browser
 * process. Asserted, on both sides:
 *  - the call connects relay/relay; stats() gives bitrate, loss, jitter, RTT and pair type, and
 *    the relay's own counters grew;
 *  - audio is heard (Web Audio level of the remote track) and video decodes;
 *  - mute: A's audio goes silent at B and comes back at unmute; A's video goes dark;
 *  - switch a track: both replace their camera with a canvas track (magenta | green) by
 *    replaceTrack; the other side's decoded frames show exactly that;
 *  - tsunagu-relay SIGKILLed and back 1 s later: the offerer's library restarts ICE
 *    (path-failed), media and audio come back at both ends relay/relay;
 *  - tsunagu-signal SIGKILLed: media keeps flowing while it is away; restarted, both clients
 *    find their resume refused, join again and call again; media flows on the new call;
 *  - leave: the other side sees member-left.
 * Prints the time of each step ("# timing ..."). */
import * as H from "./harness.mjs";

const args = H.parseArgs(process.argv.slice(2), { signal: "", relayExe: "", a: "chromium", b: "chromium" });
const SILENT = 0.003; // RMS of a muted track (digital silence, or comfort noise)
const LOUD = 0.02;    // RMS of the fake microphones (Chromium's beep, Firefox's tone)

const tmp = H.tempDir("tsunagu-browser-lib-");
const req = H.installDeps(tmp);
const puppeteer = req("puppeteer-core");
const T0 = Date.now();
const secs = (t) => ((Date.now() - t) / 1000).toFixed(2);
let checks = 0;
function ok(cond, what, detail) {
  if (!cond) H.fail(what + (detail !== undefined ? ": " + JSON.stringify(detail).slice(0, 1500) : ""));
  checks++;
  H.log("ok " + checks + " - " + what);
}

const srv = await H.servers({ signalExe: args.signal, relayExe: args.relayExe, dir: tmp });
const pageOrigin = await H.pageServer(srv.origin);
const room = "lib-" + Math.random().toString(16).slice(2, 10);
const side = {};
for (const [key, kind, name] of [["a", args.a, "alice"], ["b", args.b, "bob"]]) {
  const browser = await H.launch(puppeteer, kind, tmp);
  const page = await browser.newPage();
  page.label = name + " (" + kind + ")";
  const url = pageOrigin + "/lib_page.html?ws=" + encodeURIComponent(srv.wsUrl) +
              "&room=" + room + "&name=" + name + "&relay=1";
  await page.goto(url);
  await H.waitFor(page, "!!(window.T && T.loaded)", 10, "lib_page.js loaded (import /tsunagu.js)");
  side[key] = { browser, page, name, kind };
}
const { a, b } = side;
const pair = a.kind + "<->" + b.kind;
H.log("# " + pair + ": " + a.browser.label + " / " + b.browser.label);

const view = (s) => H.evaluate(s.page, "T.view()");
const describe = "JSON.stringify(T.view())";

// --- join and connect ---
let t = Date.now();
a.id = await H.evaluate(a.page, "T.start()", "alice join");
b.id = await H.evaluate(b.page, "T.start()", "bob join");
ok(a.id && b.id && a.id !== b.id, "both joined (" + a.id + ", " + b.id + ")");

async function media(s, other, what, seconds = 30) {
  // connected relay/relay, and audio and video bytes arriving from `other`
  const src = `T.stats().then(st => { const m = st[${JSON.stringify(other.id)}];
    return m && m.connection === 'connected' && m.pairType === 'relay' && m.audio && m.video &&
      m.audio.bytesReceived > 0 && m.video.bytesReceived > 0 ? m : null; })`;
  return H.waitFor(s.page, src, seconds, what, describe);
}
await Promise.all([media(a, b, "call up at alice"), media(b, a, "call up at bob")]);
const tUp = secs(t);
H.log("# timing " + pair + ": join -> relay call with audio+video " + tUp + " s");

const vb = await view(b);
ok(vb.members.length === 1 && vb.members[0].id === a.id && vb.members[0].polite === false &&
   (await view(a)).members[0].polite === true, "perfect negotiation roles: alice polite, bob not",
   vb.members);

// --- stats() ---
const relayBefore = await srv.relayPackets();
await H.sleep(2000);
for (const [s, o] of [[a, b], [b, a]]) {
  await H.evaluate(s.page, "T.stats()");
  await H.sleep(1500);
  const st = await H.evaluate(s.page, "T.stats()");
  const m = st[o.id];
  H.log("# " + s.name + " stats of " + o.name + ": in " + Math.round(m.bitrateIn / 1000) + " kb/s, out " +
        Math.round(m.bitrateOut / 1000) + " kb/s, loss " + m.lossPercent + " %, jitter " + m.jitterMs +
        " ms, rtt " + m.rttMs + " ms, pair " + m.pairType + " (" + JSON.stringify(m.pair) + ")");
  ok(m.id === o.id && m.name === o.name && m.connection === "connected", s.name + ": stats() names the member");
  const theirs = (await view(o)).members[0].pair;
  ok(m.pairType === "relay" && H.relayPath(m.pair, theirs),
     s.name + ": stats() pair relay/" + m.pair.remote + (m.pair.remote === "prflx" ? " (" + o.name +
     "'s relay address " + m.pair.remoteAddress + ":" + m.pair.remotePort + ")" : ""), [m.pair, theirs]);
  ok(m.bitrateIn > 30000 && m.bitrateOut > 30000 && m.bitrateIn < 20e6,
     s.name + ": stats() bitrate in/out > 30 kb/s", [m.bitrateIn, m.bitrateOut]);
  ok(m.audio.bitrateIn > 5000 && m.video.bitrateIn > 10000, s.name + ": per-kind bitrates",
     [m.audio, m.video]);
  ok(typeof m.lossPercent === "number" && m.lossPercent >= 0 && m.lossPercent <= 5,
     s.name + ": stats() loss " + m.lossPercent + " % (loopback: under 5 %)");
  ok(typeof m.jitterMs === "number" && m.jitterMs >= 0 && m.jitterMs < 500, s.name + ": stats() jitter", m.jitterMs);
  ok(typeof m.rttMs === "number" && m.rttMs >= 0 && m.rttMs < 1000, s.name + ": stats() RTT", m.rttMs);
}
const relayAfter = await srv.relayPackets();
ok(relayAfter > relayBefore + 100, "tsunagu-relay forwarded the call (" + relayBefore + " -> " + relayAfter + " packets)");

// --- hearing and seeing ---
const level = (s, o) => H.evaluate(s.page, `T.level(${JSON.stringify(o.id)})`);
const loud = (s, o, what) => H.waitFor(s.page, `T.level(${JSON.stringify(o.id)}) > ${LOUD}`, 10, what,
                                       `T.level(${JSON.stringify(o.id)})`);
const quiet = (s, o, what) => H.waitFor(s.page, `T.level(${JSON.stringify(o.id)}) >= 0 && ` +
                                        `T.level(${JSON.stringify(o.id)}) < ${SILENT}`, 10, what,
                                        `T.level(${JSON.stringify(o.id)})`);
await loud(a, b, "bob's audio heard at alice");
await loud(b, a, "alice's audio heard at bob");
ok(true, "audio heard both ways (levels " + (await level(a, b)).toFixed(3) + ", " + (await level(b, a)).toFixed(3) + ")");
for (const [s, o] of [[a, b], [b, a]]) {
  const px = await H.waitFor(s.page, `T.pixels(${JSON.stringify(o.id)})`, 10, "video decodes");
  ok(px.w > 0 && px.h > 0, s.name + " sees " + o.name + "'s video " + px.w + "x" + px.h);
}

// --- mute ---
t = Date.now();
ok(await H.evaluate(a.page, "T.mute('audio', true)") === true, "alice: setMuted(audio) -> isMuted");
await quiet(b, a, "alice's muted audio silent at bob");
const tMute = secs(t);
t = Date.now();
await H.evaluate(a.page, "T.mute('audio', false)");
await loud(b, a, "alice's audio back at bob after unmute");
ok(true, "mute silences alice at bob in " + tMute + " s; unmute brings her back in " + secs(t) + " s");
const dark = (p) => p && Math.max(...p.left, ...p.right) < 40;
await H.evaluate(a.page, "T.mute('video', true)");
await H.waitFor(b.page, `(p => p && Math.max(...p.left, ...p.right) < 40)(T.pixels(${JSON.stringify(a.id)}))`,
                10, "alice's muted video dark at bob", `JSON.stringify(T.pixels(${JSON.stringify(a.id)}))`);
await H.evaluate(a.page, "T.mute('video', false)");
await H.waitFor(b.page, `(p => p && Math.max(...p.left, ...p.right) >= 40)(T.pixels(${JSON.stringify(a.id)}))`,
                10, "alice's video back at bob", `JSON.stringify(T.pixels(${JSON.stringify(a.id)}))`);
ok(!dark(await H.evaluate(b.page, `T.pixels(${JSON.stringify(a.id)})`)), "video mute: dark frames at bob, then the camera again");

// --- switch a track ---
const isSwitched = (o) => `(p => !!p && p.left[0] > 180 && p.left[1] < 90 && p.left[2] > 180 &&
  p.right[0] < 90 && p.right[1] > 180 && p.right[2] < 90)(T.pixels(${JSON.stringify(o.id)}))`;
for (const [s, o] of [[a, b], [b, a]])
  ok(!(await H.evaluate(s.page, isSwitched(o))), s.name + ": " + o.name + "'s camera is not the test pattern yet");
t = Date.now();
ok(await H.evaluate(a.page, "T.switchVideo()") === "live" && await H.evaluate(b.page, "T.switchVideo()") === "live",
   "replaceTrack with a canvas track on both sides");
await Promise.all([
  H.waitFor(b.page, isSwitched(a), 10, "alice's switched track at bob", `JSON.stringify(T.pixels(${JSON.stringify(a.id)}))`),
  H.waitFor(a.page, isSwitched(b), 10, "bob's switched track at alice", `JSON.stringify(T.pixels(${JSON.stringify(b.id)}))`),
]);
const tSwitch = secs(t);
ok(true, "switched video tracks arrive both ways (magenta | green) in " + tSwitch + " s, no renegotiation needed");

const bytesIn = async (s, o) => {
  const m = (await H.evaluate(s.page, "T.stats()"))[o.id];
  return m && m.audio && m.video ? m.audio.bytesReceived + m.video.bytesReceived : 0;
};

// --- relay crash: SIGKILL, back 1 s later; the library restarts ICE, media comes back ---
await H.killProc(srv.relay);
const tCrash = Date.now();
await H.sleep(1000);
await srv.startRelay();
await H.sleep(300); // what was in flight at the kill has arrived by now
// media back: the inbound counters grow in 3 looks in a row, 250 ms apart (any change counts:
// they may start again from 0 after the restart); the time is that of the first of the 3
const last = [await bytesIn(a, b), await bytesIn(b, a)], streak = [0, 0], firstGrew = [0, 0];
const backAt = [null, null];
for (const deadline = Date.now() + 30000 * H.MULT; backAt.includes(null);) {
  for (const [i, s, o] of [[0, a, b], [1, b, a]]) {
    if (backAt[i]) continue;
    const n = await bytesIn(s, o);
    if (n !== last[i]) {
      if (!streak[i]++) firstGrew[i] = Date.now();
    } else streak[i] = 0;
    last[i] = n;
    if (streak[i] >= 3) backAt[i] = ((firstGrew[i] - tCrash) / 1000).toFixed(2);
  }
  if (Date.now() > deadline) H.fail("media not back within 30 s of the relay's SIGKILL: " +
                                    JSON.stringify([await view(a), await view(b)]).slice(0, 3000));
  await H.sleep(250);
}
const vb2 = await view(b);
ok(vb2.members[0].iceRestarts >= 1 && vb2.events.some((e) => e.type === "ice-restart" && e.reason === "path-failed"),
   "relay SIGKILLed and back 1 s later: bob (the offerer) restarted ICE (path-failed), media back at alice " +
   backAt[0] + " s, at bob " + backAt[1] + " s after the kill", vb2);
await Promise.all([media(a, b, "relay call at alice after the relay's restart"),
                   media(b, a, "relay call at bob after the relay's restart")]);
await loud(a, b, "bob heard at alice after the relay's restart");
await loud(b, a, "alice heard at bob after the relay's restart");
const tCrashBack = Math.max(Number(backAt[0]), Number(backAt[1])).toFixed(2);
H.log("# timing " + pair + ": relay SIGKILL (back after 1 s) -> media back at both ends " + tCrashBack + " s");

// --- signaling restart ---
await H.killProc(srv.signal);
const killedAt = Date.now();
const before = [await bytesIn(a, b), await bytesIn(b, a)];
await H.sleep(2000);
const during = [await bytesIn(a, b), await bytesIn(b, a)];
ok(during[0] > before[0] && during[1] > before[1], "tsunagu-signal down 2 s: media kept flowing",
   { before, during });
await srv.startSignal();
t = Date.now();
const rejoined = (s) => `(v => v.state === 'joined' && v.id !== ${JSON.stringify(s.id)} &&
  v.members.length === 1 && v.members[0].connection === 'connected')(T.view())`;
await Promise.all([H.waitFor(a.page, rejoined(a), 40, "alice joined again and called", describe),
                   H.waitFor(b.page, rejoined(b), 40, "bob joined again and called", describe)]);
for (const s of [a, b]) {
  const v = await view(s);
  ok(v.errors.some((e) => e.code === "resume-failed") &&
     v.events.some((e) => e.type === "state" && e.state === "reconnecting"),
     s.name + ": reconnecting, resume refused by the restarted server (resume-failed), joined again as " + v.id);
  s.oldId = s.id;
  s.id = v.id;
}
await Promise.all([media(a, b, "media at alice after the restart"), media(b, a, "media at bob after the restart")]);
const g = [await bytesIn(a, b), await bytesIn(b, a)];
await H.sleep(1500);
const g2 = [await bytesIn(a, b), await bytesIn(b, a)];
ok(g2[0] > g[0] && g2[1] > g[1], "media flows on the new call after the signaling restart", { g, g2 });
const tRestart = secs(t);
H.log("# timing " + pair + ": signaling restart -> both joined again, relay call with media " + tRestart +
      " s (" + secs(killedAt) + " s after the SIGKILL)");
await loud(b, a, "alice heard at bob after the restart");

// --- leave ---
t = Date.now();
await H.evaluate(a.page, "T.leave()");
await H.waitFor(b.page, "T.view().members.length === 0 && T.view().events.some(e => e.type === 'member-left')",
                10, "bob sees alice leave", describe);
ok(true, "alice left: bob saw member-left in " + secs(t) + " s");
const errs = [...(await view(a)).errors, ...(await view(b)).errors].filter((e) => e.code !== "resume-failed");
ok(errs.length === 0, "no other error event on either side", errs);

H.log("# timing " + pair + ": call up " + tUp + " s, mute heard " + tMute + " s, track switch " + tSwitch +
      " s, relay crash " + tCrashBack + " s, signaling restart " + tRestart + " s; total " + secs(T0) + " s");
H.log("ok: " + pair + " tsunagu.js call, " + checks + " checks");
process.exit(0);
