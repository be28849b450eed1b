#!/usr/bin/env node
/* demo_call.mjs - the demo page (tsunagu-signal's /, app.js over tsunagu.js) in two tabs,
 * relay only through tsunagu-relay; then the relay is SIGKILLed and restarted and the call's
 * media comes back by ICE restart (issue 14 item 8, the demo page's part; issue 15 item 2).
 *
 * usage: node demo_call.mjs --signal EXE --relay-exe EXE --out DIR [--tabs chromium,firefox]
 *
 * Asserted: the call connects relay/relay; each tile's stats overlay shows bitrate, loss,
 * jitter, RTT and the path with a quality indicator; the speaking indicator lights for the
 * other member; camera off and mute show on the other side (name card, "muted"); an
 * audio-only member (?video=0) is a name card, not black; a join refused (room-full) shows in
 * the status line; a member who opens the page without
 * autojoin sees the preview and the pickers, picks a microphone and joins with it; in the call
 * a Chromium member switches microphone and is still heard; after the relay's SIGKILL and
 * restart (1 s later) both tabs restart ICE, connect relay/relay again and media flows, the
 * status line clean again. A screenshot of the two-party call with the overlay is written to
 * DIR/demo-call-<tabs>.png (path printed), the time from the SIGKILL to media back is printed. */
import fs from "node:fs";
import path from "node:path";
import * as H from "./harness.mjs";

const args = H.parseArgs(process.argv.slice(2), { signal: "", relayExe: "", out: "", tabs: "chromium,chromium" });
if (!args.out) H.fail("--out DIR is needed (where the screenshot goes)");
const kinds = args.tabs.split(",");
if (kinds.length !== 2) H.fail("--tabs takes two browsers");

const tmp = H.tempDir("tsunagu-browser-demo-");
const puppeteer = H.installDeps(tmp)("puppeteer-core");
const T0 = Date.now();
const secs = (t) => ((Date.now() - t) / 1000).toFixed(2);
let checks = 0;
function ok(cond, what, detail) {
  if (!cond) H.fail(what + (detail !== undefined ? ": " + JSON.stringify(detail).slice(0, 2000) : ""));
  checks++;
  H.log("ok " + checks + " - " + what);
}

// rooms of 3: a fourth member is refused while carol is in (room-full in the status line)
const srv = await H.servers({ signalExe: args.signal, relayExe: args.relayExe, dir: tmp,
                              signalArgs: ["--max-room-size", "3"] });
const room = "demo-" + Math.random().toString(16).slice(2, 10);
const browsers = {};
async function tab(kind, name, extra = "") {
  if (!browsers[kind]) browsers[kind] = await H.launch(puppeteer, kind, tmp);
  const page = await browsers[kind].newPage();
  await page.setViewport({ width: 1280, height: 760 });
  page.label = name + " (" + kind + ")";
  await page.goto(srv.origin + "/?room=" + room + "&name=" + name + "&autojoin=1&relay=1" + extra);
  await H.waitFor(page, "!!(window.tsunaguState && tsunaguState.joined && tsunaguState.id)", 20,
                  "the demo page joined", "JSON.stringify(window.tsunaguState && tsunaguState.log)");
  const id = await H.evaluate(page, "tsunaguState.id");
  return { page, name, kind, id };
}
const logs = "JSON.stringify(tsunaguState.log.slice(-12))";
const stats = (s) => H.evaluate(s.page, "tsunaguStats().then(st => JSON.parse(JSON.stringify(st.peers)))");

const a = await tab(kinds[0], "alice");
const b = await tab(kinds[1], "bob");
const pair = kinds.join("<->");

// connected relay/relay with video arriving, in the page's own test view
const upSrc = (o) => `tsunaguStats().then(st => { const p = st.peers[${JSON.stringify(o.id)}];
  return !!p && p.connection === 'connected' && !!p.pair && p.pair.local === 'relay' &&
    !!p.inbound.video && p.inbound.video.bytes > 0 &&
    !!p.inbound.audio && p.inbound.audio.bytes > 0; })`;
let t = Date.now();
await Promise.all([H.waitFor(a.page, upSrc(b), 30, "call with bob up", logs),
                   H.waitFor(b.page, upSrc(a), 30, "call with alice up", logs)]);
{
  const pa = (await stats(a))[b.id].pair, pb = (await stats(b))[a.id].pair;
  ok(H.relayPath(pa, pb) && H.relayPath(pb, pa), "relay to relay: alice " + pa.local + "/" + pa.remote +
     ", bob " + pb.local + "/" + pb.remote + " (a prflx remote is the other's relay address)", [pa, pb]);
}
H.log("# timing demo " + pair + ": both tabs joined -> relay call with audio+video " + secs(t) + " s");

// --- the tiles: stats overlay, quality, speaking ---
const tileSrc = (o) => `(() => { const t = document.getElementById('tile-' + ${JSON.stringify(o.id)});
  if (!t) return null;
  return { text: t.querySelector('.net-text').textContent, cls: t.className,
           who: t.querySelector('.who').textContent, quality: t.querySelector('.quality').title,
           status: document.getElementById('status').textContent,
           statusCls: document.getElementById('status').className }; })()`;
const overlayRe = /↓ [\d.]+ [kM]b\/s {2}↑ [\d.]+ [kM]b\/s\nloss \d+\.\d % {2}jitter \d+ ms\nRTT \d+ ms {2}relay \(relay\/(relay|prflx) udp\)/;
for (const [s, o] of [[a, b], [b, a]]) {
  const tile = await H.waitFor(s.page, `(t => t && ${overlayRe}.test(t.text) && /q-good/.test(t.cls) && t)(${tileSrc(o)})`,
                               15, "stats overlay on " + o.name + "'s tile", `JSON.stringify(${tileSrc(o)})`);
  H.log("# " + s.name + "'s tile of " + o.name + ": " + JSON.stringify(tile.text) + ", " + tile.quality);
  ok(tile.who === o.name && tile.status === "in " + room + " — 1/1 call(s) connected (relay only)" &&
     tile.statusCls === "ok", s.name + ": tile of " + o.name + " shows bitrate, loss, jitter, RTT, relay path, " +
     "quality good; status line " + JSON.stringify(tile.status), tile);
  const kbps = Number(/↓ ([\d.]+) ([kM])b/.exec(tile.text)[1]) * (/↓ [\d.]+ M/.test(tile.text) ? 1000 : 1);
  ok(kbps > 30, s.name + ": overlay bitrate from " + o.name + " " + kbps + " kb/s > 30");
  await H.waitFor(s.page, `document.getElementById('tile-' + ${JSON.stringify(o.id)}).classList.contains('speaking')`,
                  10, o.name + " shown speaking (fake microphone)");
  ok(true, s.name + ": speaking indicator lit for " + o.name);
}

// --- the screenshot: two-party call with the overlay ---
fs.mkdirSync(args.out, { recursive: true });
const shot = path.resolve(args.out, "demo-call-" + kinds.join("-") + ".png");
await a.page.screenshot({ path: shot });
ok(fs.statSync(shot).size > 10000, "screenshot written");
H.log("# screenshot: " + shot);

// --- camera off, mute: shown on the other side ---
const bTile = (cond) => `(t => !!t && ${cond})(document.getElementById('tile-' + ${JSON.stringify(b.id)}))`;
await H.evaluate(b.page, "document.getElementById('camera').click(), document.getElementById('mute').click(), 1");
await H.waitFor(a.page, bTile("t.classList.contains('no-video') && !t.querySelector('.muted-icon').hidden && " +
                              "getComputedStyle(t.querySelector('.card')).display === 'flex'"),
                10, "bob's camera off and mute shown at alice");
ok(await H.evaluate(b.page, "document.getElementById('tile-self').classList.contains('no-video')"),
   "camera off: bob's own tile and alice's tile of bob show bob's name card; alice sees 'muted'");
await H.evaluate(b.page, "document.getElementById('camera').click(), document.getElementById('mute').click(), 1");
await H.waitFor(a.page, bTile("!t.classList.contains('no-video') && t.querySelector('.muted-icon').hidden"),
                10, "bob's camera back at alice");
ok(true, "camera on and unmute: bob's video back at alice");

// --- an audio-only member: a name card, not black ---
const c = await tab(kinds[0], "carol", "&video=0");
for (const s of [a, b]) {
  await H.waitFor(s.page, `tsunaguStats().then(st => (p => !!p && p.connection === 'connected' && !!p.inbound.audio &&
    p.inbound.audio.bytes > 0)(st.peers[${JSON.stringify(c.id)}]))`, 30, "call with carol (audio only) up", logs);
  const card = await H.evaluate(s.page, `(t => ({ noVideo: t.classList.contains('no-video'),
    card: getComputedStyle(t.querySelector('.card')).display, initials: t.querySelector('.initials').textContent,
    name: t.querySelector('.card-name').textContent }))(document.getElementById('tile-' + ${JSON.stringify(c.id)}))`);
  ok(card.noVideo && card.card === "flex" && card.initials === "C" && card.name === "carol",
     s.name + ": audio-only carol is a name card (" + card.initials + ", " + card.name + ")", card);
}
{
  // a refused join shows in the status line with its reason; the page is back at its start
  const page = await browsers[kinds[0]].newPage();
  page.label = "frank (" + kinds[0] + ")";
  await page.goto(srv.origin + "/?room=" + room + "&name=frank&autojoin=1&relay=1");
  const st = await H.waitFor(page, `(e => e.className === 'bad' && e.textContent.startsWith('could not join') &&
    !document.getElementById('join').disabled && !tsunaguState.joined && e.textContent)(document.getElementById('status'))`,
    15, "room-full shown", "document.getElementById('status').textContent");
  ok(st.startsWith('could not join: the room "' + room + '" is full') && st.endsWith("[room-full]"),
     "a fourth member is refused: status line " + JSON.stringify(st));
  await page.close();
}
await H.evaluate(c.page, "document.getElementById('leave').click(), 1");
for (const s of [a, b])
  await H.waitFor(s.page, `!document.getElementById('tile-' + ${JSON.stringify(c.id)})`, 10, "carol's tile gone after her leave");
ok(true, "carol left: her tiles are gone");

// --- the picker: a preview before joining, a device chosen there, a switch in the call ---
{
  const page = await browsers[kinds[0]].newPage();
  await page.setViewport({ width: 1280, height: 760 });
  page.label = "dave (" + kinds[0] + ")";
  await page.goto(srv.origin + "/?room=" + room + "&name=dave&relay=1");
  const pv = await H.waitFor(page, `(v => v.videoWidth > 0 && document.getElementById('mic-select').options[0].value &&
    { w: v.videoWidth, h: v.videoHeight, cams: [...document.getElementById('camera-select').options].map(o => o.text),
      mics: [...document.getElementById('mic-select').options].map(o => [o.value, o.text]) })(document.getElementById('preview'))`,
    15, "the preview and the device pickers before joining", "document.getElementById('status').textContent");
  ok(!(await H.evaluate(page, "tsunaguState.joined")) && pv.cams.length >= 1 && pv.mics.length >= 1,
     "before joining: preview " + pv.w + "x" + pv.h + ", cameras " + JSON.stringify(pv.cams) + ", microphones " +
     JSON.stringify(pv.mics.map((m) => m[1])));
  const mic = pv.mics[pv.mics.length - 1];
  await H.evaluate(page, `(s => { s.value = ${JSON.stringify(mic[0])}; s.dispatchEvent(new Event('change')); return 1; })(document.getElementById('mic-select'))`);
  await H.waitFor(page, `(t => !!t && t.label === ${JSON.stringify(mic[1])})(document.getElementById('preview').srcObject.getAudioTracks()[0])`,
                  10, "the preview on the chosen microphone");
  await H.evaluate(page, "document.getElementById('join').click(), 1");
  await H.waitFor(page, "tsunaguState.joined && document.getElementById('tile-self') && " +
                  `document.getElementById('tile-self').querySelector('video').srcObject.getAudioTracks()[0].label === ${JSON.stringify(mic[1])}`,
                  20, "dave joined with the microphone chosen before joining", logs);
  const d = { id: await H.evaluate(page, "tsunaguState.id") };
  await H.waitFor(a.page, upSrc(d), 30, "call with dave up", logs);
  ok(true, "dave picked " + JSON.stringify(mic[1]) + " in the preview, joined with it, call with alice up");
  await H.evaluate(page, "document.getElementById('leave').click(), 1");
  await H.waitFor(a.page, `!document.getElementById('tile-' + ${JSON.stringify(d.id)})`, 10, "dave's tile gone after his leave");
  await page.close();
}
if (kinds[0] === "chromium") {
  // in the call: alice switches microphone (client.switchDevice); bob keeps hearing her
  const mics = await H.evaluate(a.page, "[...document.getElementById('mic-select').options].map(o => [o.value, o.text])");
  const cur = await H.evaluate(a.page, "document.getElementById('tile-self').querySelector('video').srcObject.getAudioTracks()[0].label");
  const other = mics.find((m) => m[1] !== cur);
  ok(!!other, "alice has another microphone to switch to", mics);
  const before = (await stats(b))[a.id].inbound.audio.bytes;
  await H.evaluate(a.page, `(s => { s.value = ${JSON.stringify(other[0])}; s.dispatchEvent(new Event('change')); return 1; })(document.getElementById('mic-select'))`);
  await H.waitFor(a.page, `document.getElementById('tile-self').querySelector('video').srcObject.getAudioTracks()[0].label === ${JSON.stringify(other[1])}` +
                  " && tsunaguState.log.some(l => l.includes('now sending audio from'))", 10, "alice's microphone switched", logs);
  await H.sleep(1500);
  const after = (await stats(b))[a.id].inbound.audio.bytes;
  ok(after > before + 2000, "alice switched microphone in the call (" + cur + " -> " + other[1] + "); bob's audio bytes " +
     before + " -> " + after);
}

// --- relay crash: SIGKILL, restart 1 s later, media back by ICE restart ---
const inbound = async (s, o) => {
  const p = (await stats(s))[o.id];
  return p && p.inbound.video && p.inbound.audio ? p.inbound.video.bytes + p.inbound.audio.bytes : 0;
};
const relayPort = srv.relayPort;
await H.killProc(srv.relay);
const tKill = Date.now();
const atKill = [await inbound(a, b), await inbound(b, a)];
await H.sleep(1000);
await srv.startRelay();
H.log("# relay SIGKILLed, back on port " + relayPort + " after " + secs(tKill) + " s");
// what arrived in flight after the kill does not count: the baseline is taken 0.5 s after
// the relay is back (nothing can pass before it is back)
await H.sleep(500);
const base = [await inbound(a, b), await inbound(b, a)];
const back = {};
const low = [...base]; // inbound counters may start again from 0 after the ICE restart
const deadline = Date.now() + 30000 * H.MULT;
while (Object.keys(back).length < 2) {
  for (const [i, s, o] of [[0, a, b], [1, b, a]]) {
    if (back[s.name]) continue;
    const p = (await stats(s))[o.id];
    const bytes = p && p.inbound.video && p.inbound.audio ? p.inbound.video.bytes + p.inbound.audio.bytes : 0;
    low[i] = Math.min(low[i], bytes);
    if (p && p.connection === "connected" && p.pair && p.pair.local === "relay" && bytes > low[i] + 20000)
      back[s.name] = { s: secs(tKill), restarts: p.iceRestarts };
  }
  if (Date.now() > deadline)
    H.fail("media did not come back within 30 s of the relay's SIGKILL: " +
           JSON.stringify({ back, atKill, base, a: await H.evaluate(a.page, logs), b: await H.evaluate(b.page, logs) }));
  await H.sleep(100);
}
H.log("# timing demo " + pair + ": relay SIGKILL -> media back " + back.alice.s + " s at alice, " + back.bob.s +
      " s at bob (relay down 1 s)");
const restarts = Math.max(back.alice.restarts, back.bob.restarts);
ok(restarts >= 1, "media came back by ICE restart (" + restarts + " restart(s) on the call)", back);
ok((await srv.relayPackets()) > 100, "the restarted relay forwards the call");
for (const [s, o] of [[a, b], [b, a]]) {
  const tile = await H.waitFor(s.page, `(t => t && t.statusCls === 'ok' && /relay \\(relay\\/(relay|prflx) udp\\)/.test(t.text) && t)(${tileSrc(o)})`,
                               10, "status line clean and overlay relay again after the relay's restart", logs);
  ok(tile.status === "in " + room + " — 1/1 call(s) connected (relay only)",
     s.name + ": status line " + JSON.stringify(tile.status) + " after the restart");
  for (const l of await H.evaluate(s.page, "tsunaguState.log.slice(-8)")) H.log("#   " + s.name + " " + l);
}
// the impolite end (bob, the later joiner) restarts ICE (the library: media stopped, or ICE
// says the path is gone); its status line said so meanwhile
ok(await H.evaluate(b.page, "tsunaguState.log.some(l => /network path lost, restarting ICE/.test(l))"),
   "bob's status line said the path was lost and ICE was restarting");
const e = [...new Set([...(await H.evaluate(a.page, "tsunaguState.errors")), ...(await H.evaluate(b.page, "tsunaguState.errors"))])];
ok(e.length === 0, "no error events on either tab", e);
H.log("ok: demo page " + pair + ", " + checks + " checks, total " + secs(T0) + " s");
process.exit(0);
