/* app.js - the demo call page: UI code over tsunagu.js's public API only (no
 * RTCPeerConnection or WebSocket here; the library owns signaling and calls).
 *
 * What the page adds on top of the library:
 *  - a camera/microphone picker with a preview and a level meter before joining, and device
 *    switching during the call (client.switchDevice);
 *  - one tile per member: video, or a name card when there is no picture (audio-only member,
 *    camera off, no frames arriving); a speaking indicator (Web Audio level of the track);
 *    a stats overlay from client.stats() every second: bitrate, loss, jitter, RTT, the
 *    selected path (relay/srflx/host) and a quality indicator;
 *  - the status line: "in ROOM — n/m call(s) connected", and every error event with its
 *    reason after it (the latest wins; a call's problem clears when that call connects);
 *  - mute/camera state told to the others as application data ({media:{audio,video}}
 *    through client.broadcast/send), so their tiles show "muted" and the name card.
 * URL parameters: ?room=R&name=N&autojoin=1&relay=1&token=JWT&video=0 (join without camera).
 *
 * Test hooks (tests/e2e, tests/netlab): window.tsunaguState (status, joined, id, peers with
 * pair/inbound/outbound counters, log, resumes, joins, drains, errors, problem),
 * window.tsunaguStats() (fresh stats, a Promise of tsunaguState) and
 * window.tsunaguDropSignaling() (drop the connection as a network change does). */
import { TsunaguClient } from "./tsunagu.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = {
  status: "idle", joined: false, id: null, room: null, name: null, relayOnly: false,
  iceServers: [], peers: {}, errors: [], log: [], resumes: 0, localTracks: 0,
  joins: 0, drains: 0, drainResumes: 0, iceRestarts: 0, problem: null, muted: false,
};
window.tsunaguState = state;

let client = null;
let localStream = null; // ours: the preview's stream, then the call's (the library sends it)
let statsTimer = null, levelTimer = null, audioCtx = null;
let problemClears = null; // peer id whose connecting clears state.problem, or "all"
let pathProblemOf = null; // the peer id when state.problem is a lost path (media again clears it)
const tiles = new Map(); // member id ("self" for us) -> tile record (see makeTile)

/* ---- log and status line ---- */

function log(msg) {
  const line = new Date().toISOString().slice(11, 23) + " " + msg;
  state.log.push(line);
  if (state.log.length > 300) state.log.shift();
  const el = $("log");
  el.textContent += line + "\n";
  if (el.textContent.length > 60000) el.textContent = el.textContent.slice(-40000);
  el.scrollTop = el.scrollHeight;
  console.log("tsunagu: " + msg);
}

function setStatus(text, cls) {
  state.status = text;
  const el = $("status");
  el.textContent = text;
  el.title = text; // the whole text when the header cuts it
  el.className = cls || "";
}

// A failure the user must see: in the status line (after the call count when in a room)
// and in the log. The latest one wins.
function problem(text, clears) {
  state.problem = text;
  problemClears = clears || null;
  pathProblemOf = null;
  log(text);
  if (state.joined) refreshStatus();
  else setStatus(text, "bad");
}

function refreshStatus() {
  if (!state.joined || !client) return;
  const ms = client.members;
  const up = ms.filter((m) => m.connection === "connected").length;
  if (state.problem && problemClears === "all" && up === ms.length) state.problem = problemClears = null;
  if (client.state === "reconnecting") {
    setStatus("reconnecting…" + (state.problem ? " — " + state.problem : ""), "bad");
    return;
  }
  const base = "in " + state.room + " — " + up + "/" + ms.length + " call(s) connected" +
    (state.relayOnly ? " (relay only)" : "");
  if (state.problem) setStatus(base + " — " + state.problem, "bad");
  else setStatus(base, "ok");
}

function why(e) {
  if (!e) return "unknown error";
  return (e.name && e.name !== "Error" ? e.name + ": " : "") + (e.message || String(e));
}

function memberName(id) {
  const m = client && client.members.find((x) => x.id === id);
  return (m && m.name) || (state.peers[id] && state.peers[id].name) || id;
}

/* ---- local media: preview, devices, level ---- */

function wantVideo() { return params.get("video") !== "0"; }

function constraints(kind) {
  const sel = $(kind === "audio" ? "mic-select" : "camera-select").value;
  if (kind === "video") {
    const v = { width: 640, height: 480 };
    if (sel) v.deviceId = { exact: sel };
    return v;
  }
  return sel ? { deviceId: { exact: sel } } : true;
}

async function openMedia() {
  if (!navigator.mediaDevices)
    throw new Error("this page is not a secure context (use https or localhost): no camera access");
  if (!wantVideo()) return navigator.mediaDevices.getUserMedia({ audio: constraints("audio") });
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: constraints("audio"), video: constraints("video") });
  } catch (e) {
    problem("camera unavailable (" + why(e) + "): microphone only");
    return navigator.mediaDevices.getUserMedia({ audio: constraints("audio") });
  }
}

function stopLocal() {
  if (localStream) localStream.getTracks().forEach((t) => t.stop());
  localStream = null;
}

async function startPreview() {
  stopLocal();
  try {
    localStream = await openMedia();
  } catch (e) {
    problem("no camera/microphone: " + why(e));
    return;
  }
  $("preview").srcObject = localStream;
  previewTile.stream = localStream;
  watchLevel(previewTile, localStream.getAudioTracks()[0]);
  updatePicture(previewTile);
  await fillDevices();
}

// The pickers' lists; labels show once the page has had a camera/microphone.
async function fillDevices() {
  let devs = [];
  try {
    devs = await navigator.mediaDevices.enumerateDevices();
  } catch (e) {
    return;
  }
  for (const [id, kind] of [["camera-select", "videoinput"], ["mic-select", "audioinput"]]) {
    const sel = $(id);
    const cur = localStream && localStream.getTracks().find((t) => t.kind === (kind === "videoinput" ? "video" : "audio"));
    const curId = cur && cur.getSettings ? cur.getSettings().deviceId : "";
    const keep = sel.value || curId;
    sel.textContent = "";
    const list = devs.filter((d) => d.kind === kind);
    if (!list.length) sel.add(new Option(kind === "videoinput" ? "no camera" : "no microphone", ""));
    list.forEach((d, i) => sel.add(new Option(d.label || (kind === "videoinput" ? "camera " : "microphone ") + (i + 1), d.deviceId)));
    if (keep && list.some((d) => d.deviceId === keep)) sel.value = keep;
  }
}

async function deviceChanged(kind) {
  if (!client || !state.joined) return startPreview();
  const id = $(kind === "audio" ? "mic-select" : "camera-select").value;
  if (!id) return;
  try {
    // the library opens the device, sends it with replaceTrack, stops the old track
    const track = await client.switchDevice(kind, id);
    localStream = client.localStream;
    const self = tiles.get("self");
    if (self) {
      self.video.srcObject = localStream;
      if (kind === "audio") watchLevel(self, track);
      updatePicture(self);
    }
    log("now sending " + kind + " from " + (track.label || id));
  } catch (e) {
    problem(e.reason || why(e)); // the error event said it too; this keeps the picker's word
  }
}

/* ---- tiles ---- */

function initials(name) {
  const w = String(name || "?").trim().split(/\s+/).filter(Boolean);
  return ((w[0] || "?")[0] + (w.length > 1 ? w[w.length - 1][0] : "")).toUpperCase();
}

function makeTile(id, name, self) {
  const el = $("tile-template").content.firstElementChild.cloneNode(true);
  el.id = "tile-" + id;
  if (self) el.classList.add("self");
  const t = { id, el, self, video: el.querySelector("video"), stream: null, level: null,
              remoteMedia: { audio: false, video: false }, name: "" };
  if (self) t.video.muted = true;
  $("grid").appendChild(el);
  tiles.set(id, t);
  setTileName(t, name);
  return t;
}

function setTileName(t, name) {
  t.name = name || "";
  t.el.querySelector(".who").textContent = t.self ? (name || "me") + " (you)" : name || t.id;
  t.el.querySelector(".card-name").textContent = name || (t.self ? "you" : t.id);
  t.el.querySelector(".initials").textContent = initials(name);
}

function removeTile(id) {
  const t = tiles.get(id);
  if (!t) return;
  watchLevel(t, null);
  t.el.remove();
  tiles.delete(id);
}

// Video when there is a picture; the name card otherwise: no video track (audio-only
// member), camera off (ours, or theirs as they told us), or no frames arriving (muted).
function updatePicture(t) {
  const stream = t.stream;
  const v = stream ? stream.getVideoTracks().find((x) => x.readyState === "live") : null;
  let picture = !!v && !v.muted;
  if (t.self || t === previewTile) picture = !!v && !(client && client.isMuted("video"));
  else if (t.remoteMedia.video) picture = false;
  t.el.classList.toggle("no-video", !picture);
  const mutedAudio = t.self ? !!(client && client.isMuted("audio")) : t.remoteMedia.audio;
  const icon = t.el.querySelector(".muted-icon");
  if (icon) icon.hidden = !mutedAudio;
}

// The speaking indicator: the loudest 10 ms RMS of the member's audio since the last poll,
// on above one level and held 400 ms (so speech does not flicker it). The analyser's window
// (4096 samples, 85-93 ms) is longer than the poll interval (80 ms), so no sound falls between
// two polls: a 10 ms window every 100 ms missed short sounds (Chromium's fake microphone beeps
// for 20 ms every 500 ms, in phase with the timer, and the indicator stayed dark in CI).
function watchLevel(t, track) {
  if (t.level) {
    try { t.level.src.disconnect(); } catch (e) { /* gone */ }
    t.level = null;
  }
  if (!track || typeof AudioContext === "undefined") return;
  try {
    if (!audioCtx) audioCtx = new AudioContext();
    if (audioCtx.state === "suspended") audioCtx.resume().catch(() => {});
    const src = audioCtx.createMediaStreamSource(new MediaStream([track]));
    const analyser = audioCtx.createAnalyser();
    analyser.fftSize = 4096;
    src.connect(analyser);
    t.level = { src, analyser, buf: new Float32Array(analyser.fftSize), rms: 0, lastLoud: 0 };
  } catch (e) {
    log("no speaking indicator: " + why(e));
  }
  if (!levelTimer) levelTimer = setInterval(pollLevels, 80);
}

// The RMS of the loudest block of n samples in buf.
function loudestBlock(buf, n) {
  let best = 0;
  for (let i = 0; i + n <= buf.length; i += n) {
    let sum = 0;
    for (let j = i; j < i + n; j++) sum += buf[j] * buf[j];
    if (sum > best) best = sum;
  }
  return Math.sqrt(best / n);
}

function pollLevels() {
  const now = performance.now();
  for (const t of [previewTile, ...tiles.values()]) {
    const l = t.level;
    if (!l) continue;
    l.analyser.getFloatTimeDomainData(l.buf);
    l.rms = loudestBlock(l.buf, Math.round(audioCtx.sampleRate / 100));
    const muted = t.self || t === previewTile ? !!(client && client.isMuted("audio")) : t.remoteMedia.audio;
    if (l.rms > 0.02 && !muted) l.lastLoud = now;
    const speaking = now - l.lastLoud < 400;
    t.el.classList.toggle("speaking", speaking);
    if (t === previewTile) $("mic-level").style.width = Math.min(100, Math.round(l.rms * 400)) + "%";
    if (!t.self && t !== previewTile && state.peers[t.id]) state.peers[t.id].speaking = speaking;
  }
}

/* ---- the stats overlay ---- */

function rate(bps) {
  return bps >= 1e6 ? (bps / 1e6).toFixed(2) + " Mb/s" : Math.round(bps / 1e3) + " kb/s";
}

// good / fair / poor from loss, RTT and jitter (thresholds of a usable voice call)
function quality(s) {
  if (s.connection === "failed") return "bad";
  if (s.connection !== "connected") return "none";
  const loss = s.lossPercent || 0, rtt = s.rttMs || 0, jit = s.jitterMs || 0;
  if (loss > 5 || rtt > 400 || jit > 80) return "poor";
  if (loss > 1.5 || rtt > 200 || jit > 30) return "fair";
  return "good";
}

// s: a MemberStats (or {connection} alone, before the numbers); its rates are over the
// last second or more (tsunagu.js), whoever else calls stats() meanwhile
function showStats(t, s) {
  const q = quality(s);
  t.el.classList.remove("q-good", "q-fair", "q-poor", "q-bad", "q-none");
  t.el.classList.add("q-" + q);
  t.el.querySelector(".quality").title = "call quality: " + q;
  const text = t.el.querySelector(".net-text");
  if (s.connection !== "connected" || !(s.audio || s.video)) {
    text.textContent = s.connection === "new" ? "connecting" : s.connection;
    return;
  }
  const path = s.pair ? s.pairType + " (" + s.pair.local + "/" + s.pair.remote +
    (s.pair.relayProtocol ? " " + s.pair.relayProtocol : "") + ")" : "path ?";
  text.textContent =
    "↓ " + rate(s.bitrateIn) + "  ↑ " + rate(s.bitrateOut) + "\n" +
    "loss " + (s.lossPercent || 0).toFixed(1) + " %  jitter " + (s.jitterMs === null ? "–" : Math.round(s.jitterMs) + " ms") + "\n" +
    "RTT " + (s.rttMs === null ? "–" : Math.round(s.rttMs) + " ms") + "  " + path;
}

// tsunaguState.peers as tests have read it since the first demo page
function testView(s, member) {
  const p = state.peers[s.id] || (state.peers[s.id] = { inbound: {}, outbound: {} });
  p.name = s.name;
  p.connection = s.connection;
  p.ice = member ? member.ice : p.ice;
  p.iceRestarts = member ? member.iceRestarts : p.iceRestarts;
  p.stats = s;
  if (s.pair) {
    p.pair = Object.assign({}, s.pair, { rtt: s.rttMs === null ? undefined : s.rttMs / 1000 });
  }
  for (const kind of ["audio", "video"]) {
    const r = s[kind];
    if (!r) continue;
    p.inbound[kind] = { bytes: r.bytesReceived, packets: r.packetsReceived, lost: r.packetsLost };
    p.outbound[kind] = { bytes: r.bytesSent, packets: r.packetsSent };
  }
}

// A lost path's problem (the library restarting ICE because ICE gave up or media stopped)
// clears when media arrives again: the call's state may never have left "connected".
const lastBytes = new Map(); // member id -> inbound bytes at the previous refresh
function mediaAgain(s) {
  const bytes = (s.audio ? s.audio.bytesReceived : 0) + (s.video ? s.video.bytesReceived : 0);
  const before = lastBytes.get(s.id);
  lastBytes.set(s.id, bytes);
  // (counters may start again from 0 after an ICE restart: any change counts)
  if (before !== undefined && bytes !== before && s.connection === "connected" && pathProblemOf === s.id) {
    state.problem = problemClears = pathProblemOf = null;
    refreshStatus();
  }
}

async function refreshStats() {
  if (!client) return state;
  const c = client;
  const all = await c.stats();
  if (c !== client) return state; // left meanwhile
  const members = c.members;
  let out = 0;
  for (const s of Object.values(all)) {
    const t = tiles.get(s.id);
    const member = members.find((m) => m.id === s.id);
    if (t) showStats(t, s);
    testView(s, member);
    mediaAgain(s);
    out += s.bitrateOut;
  }
  for (const id of [...lastBytes.keys()]) if (!all[id]) lastBytes.delete(id);
  const self = tiles.get("self");
  if (self) {
    self.el.querySelector(".net-text").textContent =
      members.length ? "↑ " + rate(out) + " to " + members.length : "alone in the room";
  }
  return state;
}

/* ---- the call ---- */

function tellMedia(to) {
  if (!client || client.state !== "joined") return;
  const media = { audio: client.isMuted("audio"), video: client.isMuted("video") };
  try {
    if (to) client.send(to, { media });
    else client.broadcast({ media });
  } catch (e) { /* not in the room right now: told on the next change */ }
}

function wire(c) {
  c.on("state", (ev) => {
    if (ev.state === "reconnecting") log("signaling: reconnecting");
    refreshStatus();
  });
  c.on("joined", (info) => {
    state.joined = true;
    state.joins++;
    state.id = info.id;
    state.room = info.room;
    state.iceServers = info.iceServers;
    history.replaceState(null, "", "?room=" + encodeURIComponent(info.room));
    if (state.relayOnly && !info.iceServers.some((s) => [].concat(s.urls).some((u) => /^turns?:/.test(u))))
      problem("relay only, but this server hands out no TURN server: calls cannot connect (tsunagu-signal --turn-url)");
    refreshStatus();
  });
  c.on("resumed", () => { state.resumes++; refreshStatus(); });
  c.on("members", (ms) => {
    for (const m of ms) {
      const t = tiles.get(m.id) || makeTile(m.id, m.name, false);
      if (t.name !== m.name) setTileName(t, m.name);
      state.peers[m.id] = state.peers[m.id] || { inbound: {}, outbound: {} };
      state.peers[m.id].name = m.name;
    }
    for (const id of [...tiles.keys()])
      if (id !== "self" && !ms.some((m) => m.id === id)) {
        removeTile(id);
        delete state.peers[id];
        if (problemClears === id) state.problem = problemClears = null; // that call is over
      }
    refreshStatus();
  });
  c.on("member-joined", (m) => tellMedia(m.id)); // the library's log says who joined and left
  c.on("track", (ev) => {
    const t = tiles.get(ev.peerId) || makeTile(ev.peerId, memberName(ev.peerId), false);
    if (!t.stream) { t.stream = new MediaStream(); t.video.srcObject = t.stream; }
    for (const old of t.stream.getTracks()) if (old.kind === ev.track.kind) t.stream.removeTrack(old);
    t.stream.addTrack(ev.track);
    if (ev.track.kind === "audio") watchLevel(t, ev.track);
    for (const e of ["mute", "unmute", "ended"]) ev.track.addEventListener(e, () => updatePicture(t));
    t.video.play().catch(() => {});
    updatePicture(t);
  });
  c.on("track-removed", (ev) => {
    const t = tiles.get(ev.peerId);
    if (!t || !t.stream) return;
    t.stream.removeTrack(ev.track);
    if (ev.track.kind === "audio") watchLevel(t, null);
    updatePicture(t);
  });
  c.on("connection", (ev) => {
    const p = state.peers[ev.peerId] || (state.peers[ev.peerId] = { inbound: {}, outbound: {} });
    p.connection = ev.connection;
    p.ice = ev.ice;
    if (ev.connection === "connected" && problemClears === ev.peerId) state.problem = problemClears = null;
    const t = tiles.get(ev.peerId);
    if (t && ev.connection !== "connected") showStats(t, { connection: ev.connection }); // numbers: next refresh
    refreshStatus();
  });
  c.on("ice-restart", (ev) => {
    state.iceRestarts++;
    // a lost path is a problem until the call connects again; a restart for new relays is not
    if (ev.reason === "path-failed") {
      problem("call with " + memberName(ev.peerId) + ": network path lost, restarting ICE", ev.peerId);
      pathProblemOf = ev.peerId;
    }
    else log("call with " + memberName(ev.peerId) + ": restarting ICE (" + ev.reason + ")");
  });
  c.on("drain", (ev) => {
    state.drains++;
    if (ev.mode === "resume") state.drainResumes++;
  });
  c.on("message", (ev) => {
    const d = ev.data;
    if (!d || typeof d !== "object" || !d.media) return;
    const t = tiles.get(ev.from);
    if (!t) return;
    t.remoteMedia = { audio: !!d.media.audio, video: !!d.media.video };
    updatePicture(t);
  });
  c.on("error", (e) => {
    state.errors.push(e.code);
    if (e.code === "resume-failed") {
      // the server restarted (or we were away too long): joined again as a new member
      problem("signaling: " + e.reason, "all");
      return;
    }
    let text = e.reason;
    if (e.message && !text.includes(e.message) && e.message !== e.code) text += " (" + e.message + ")";
    if (e.peerId) problem("call with " + memberName(e.peerId) + " failed: " + text, e.peerId);
    else if (!e.fatal) problem(text + " [" + e.code + "]");
    else if (!state.joined) problem("could not join: " + text + " [" + e.code + "]");
    else {
      // out of the room (kicked, signaling lost for good): the page goes back to its start
      problem("out of the room: " + text + " [" + e.code + "]");
      stopCall(false);
      setStatus(state.problem, "bad");
    }
  });
}

async function join() {
  const name = $("name").value.trim() || "guest";
  const room = $("room").value.trim();
  if (!room) { $("room").focus(); return; }
  state.name = name; state.room = room; state.relayOnly = $("relay").checked;
  state.problem = problemClears = null;
  $("join").disabled = true;
  // a user gesture (or autoplay allowed): Web Audio may start now
  if (!audioCtx && typeof AudioContext !== "undefined") audioCtx = new AudioContext();
  if (!localStream || !localStream.getTracks().some((t) => t.readyState === "live")) {
    setStatus("starting camera…");
    try {
      localStream = await openMedia();
    } catch (e) {
      setStatus("no camera/microphone: " + why(e), "bad");
      state.errors.push("media");
      $("join").disabled = false;
      return;
    }
  }
  state.localTracks = localStream.getTracks().length;
  client = new TsunaguClient({ localStream, relayOnly: state.relayOnly, log });
  wire(client);
  watchLevel(previewTile, null);
  $("setup").classList.add("joined");
  const self = makeTile("self", name, true);
  self.stream = localStream;
  self.video.srcObject = localStream;
  watchLevel(self, localStream.getAudioTracks()[0]);
  updatePicture(self);
  $("leave").disabled = $("mute").disabled = $("camera").disabled = $("invite").disabled = false;
  $("relay").disabled = $("name").disabled = $("room").disabled = true;
  fillDevices(); // the pickers' labels, now that the page has a camera and microphone
  setStatus("connecting…");
  statsTimer = setInterval(() => refreshStats().catch((e) => log("stats: " + why(e))), 1000);
  try {
    await client.join(params.get("token") || null, name, { room });
  } catch (e) {
    // the error event has shown the reason already; the page is back to its start
    stopCall(false);
  }
}

function leave() {
  if (client) client.leave();
  stopCall(true);
  setStatus("left");
}

function stopCall(restartPreview) {
  clearInterval(statsTimer);
  statsTimer = null;
  if (client && client.state !== "left") client.leave();
  client = null;
  state.joined = false;
  for (const id of [...tiles.keys()]) removeTile(id);
  state.peers = {};
  lastBytes.clear();
  $("setup").classList.remove("joined");
  $("join").disabled = false;
  $("leave").disabled = $("mute").disabled = $("camera").disabled = $("invite").disabled = true;
  $("relay").disabled = $("name").disabled = $("room").disabled = false;
  $("mute").textContent = "Mute";
  $("camera").textContent = "Camera off";
  if (restartPreview) startPreview();
  else if (localStream) { $("preview").srcObject = localStream; watchLevel(previewTile, localStream.getAudioTracks()[0]); }
}

/* Test hooks */
window.tsunaguStats = refreshStats;
window.tsunaguDropSignaling = () => { if (client) client.dropConnection(); };

/* ---- controls ---- */

const previewTile = { id: "preview", el: $("preview-box"), self: false, video: $("preview"), stream: null,
                      level: null, remoteMedia: { audio: false, video: false } };

$("join").onclick = join;
$("leave").onclick = leave;
$("mute").onclick = () => {
  if (!client) return;
  const on = !client.isMuted("audio");
  client.setMuted("audio", on);
  $("mute").textContent = on ? "Unmute" : "Mute";
  state.muted = on;
  updatePicture(tiles.get("self"));
  tellMedia();
};
$("camera").onclick = () => {
  if (!client) return;
  const off = !client.isMuted("video");
  client.setMuted("video", off);
  $("camera").textContent = off ? "Camera on" : "Camera off";
  updatePicture(tiles.get("self"));
  tellMedia();
};
$("invite").onclick = async () => {
  const link = location.origin + location.pathname + "?room=" + encodeURIComponent(state.room);
  try {
    await navigator.clipboard.writeText(link);
    log("invite link copied: " + link);
  } catch (e) {
    log("invite link: " + link);
  }
};
$("camera-select").onchange = () => deviceChanged("video");
$("mic-select").onchange = () => deviceChanged("audio");
for (const id of ["name", "room"]) $(id).addEventListener("keydown", (ev) => { if (ev.key === "Enter") join(); });
$("name").addEventListener("input", () => setPreviewName($("name").value.trim()));
window.addEventListener("beforeunload", () => { if (client) client.leave(); });

function setPreviewName(name) {
  $("preview-box").querySelector(".card-name").textContent = name || "you";
  $("preview-box").querySelector(".initials").textContent = initials(name);
}

$("name").value = params.get("name") || localStorage.getItem("tsunagu-name") || "";
$("room").value = params.get("room") || "";
$("name").addEventListener("change", () => localStorage.setItem("tsunagu-name", $("name").value));
setPreviewName($("name").value);
if (params.get("relay") === "1") $("relay").checked = true;
if (params.get("autojoin") === "1" && $("room").value) join();
else startPreview();
