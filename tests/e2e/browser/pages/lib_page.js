/* lib_page.js - the test page's side of lib_call.mjs: a call made with tsunagu.js's public
 * API only, plus what the driver needs to look at it from outside (window.T):
 *   T.start()            camera+microphone, new TsunaguClient, join; resolves to our id
 *   T.view()             members, state, errors, events seen (JSON-able)
 *   T.stats()            client.stats()
 *   T.level(peerId)      loudest 10 ms RMS of that member's audio over the last 1.5 s (Web Audio)
 *   T.pixels(peerId)     RGB at 1/4 and 3/4 of the width of that member's video, mid-height
 *   T.mute(kind, on)     client.setMuted
 *   T.switchVideo(name)  replaceTrack with a canvas track: left half magenta, right half green
 *   T.leave()
 * Every helper is bounded: nothing here waits without a limit. */
import { TsunaguClient } from "/tsunagu.js";

const q = new URLSearchParams(location.search);
const T = (window.T = { errors: [], events: [], log: [], ready: false });
const remote = new Map(); // peerId -> {video, audio: {analyser, peaks: []}}
let client = null, ctx = null, canvasTimer = null;

function note(type, detail) {
  T.events.push({ t: Math.round(performance.now()), type, ...detail });
  if (T.events.length > 500) T.events.shift();
}

function entry(peerId) {
  let e = remote.get(peerId);
  if (!e) {
    const video = document.createElement("video");
    video.autoplay = video.playsInline = video.muted = true;
    video.width = 160;
    document.getElementById("remote").appendChild(video);
    e = { video, stream: new MediaStream(), audio: null };
    video.srcObject = e.stream;
    remote.set(peerId, e);
  }
  return e;
}

function watchAudio(e, track) {
  if (!ctx) ctx = new AudioContext();
  ctx.resume().catch(() => {});
  const src = ctx.createMediaStreamSource(new MediaStream([track]));
  const analyser = ctx.createAnalyser();
  // A window (4096 samples, 85-93 ms) longer than the poll interval, and the loudest 10 ms
  // block of it: a short window sampled at a fixed interval can stay in phase with Chromium's
  // fake microphone (a 20 ms beep every 500 ms) and never see it.
  analyser.fftSize = 4096;
  src.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  const n = Math.round(ctx.sampleRate / 100);
  const peaks = [];
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let best = 0;
    for (let i = 0; i + n <= buf.length; i += n) {
      let sum = 0;
      for (let j = i; j < i + n; j++) sum += buf[j] * buf[j];
      if (sum > best) best = sum;
    }
    peaks.push([performance.now(), Math.sqrt(best / n)]);
    while (peaks.length && peaks[0][0] < performance.now() - 1500) peaks.shift();
  }, 50);
  if (e.audio) clearInterval(e.audio.timer);
  e.audio = { analyser, peaks, timer };
}

T.start = async () => {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: true, video: { width: 320, height: 240, frameRate: 15 } });
  client = new TsunaguClient({
    url: q.get("ws"),
    localStream: stream,
    relayOnly: q.get("relay") === "1",
    log: (l) => { T.log.push(l); if (T.log.length > 300) T.log.shift(); },
  });
  T.client = client;
  client.on("state", (ev) => note("state", { state: ev.state }));
  client.on("joined", (ev) => note("joined", { id: ev.id, peers: ev.peers.length }));
  client.on("resumed", (ev) => note("resumed", { id: ev.id }));
  client.on("member-joined", (m) => note("member-joined", { id: m.id, name: m.name }));
  client.on("member-left", (m) => {
    note("member-left", { id: m.id });
    const e = remote.get(m.id);
    if (e) { if (e.audio) clearInterval(e.audio.timer); e.video.remove(); remote.delete(m.id); }
  });
  client.on("connection", (ev) => note("connection", { id: ev.peerId, connection: ev.connection,
                                                       pairType: ev.pairType }));
  client.on("ice-restart", (ev) => note("ice-restart", { id: ev.peerId, reason: ev.reason }));
  client.on("error", (ev) => { T.errors.push({ code: ev.code, reason: ev.reason, fatal: ev.fatal });
                               note("error", { code: ev.code }); });
  client.on("track", (ev) => {
    note("track", { id: ev.peerId, kind: ev.track.kind });
    const e = entry(ev.peerId);
    for (const old of e.stream.getTracks()) if (old.kind === ev.track.kind) e.stream.removeTrack(old);
    e.stream.addTrack(ev.track);
    if (ev.track.kind === "audio") watchAudio(e, ev.track);
    e.video.play().catch(() => {});
  });
  const info = await client.join(null, q.get("name"), { room: q.get("room") });
  T.ready = true;
  return info.id;
};

T.view = () => ({
  state: client && client.state,
  id: client && client.id,
  members: client ? client.members.map((m) => ({ id: m.id, name: m.name, polite: m.polite,
    connection: m.connection, ice: m.ice, pair: m.pair, iceRestarts: m.iceRestarts,
    tracks: m.tracks.map((t) => t.kind + ":" + t.readyState) })) : [],
  muted: client ? { audio: client.isMuted("audio"), video: client.isMuted("video") } : null,
  errors: T.errors,
  events: T.events.slice(-40),
});

T.stats = () => client.stats();

T.level = (peerId) => {
  const e = remote.get(peerId);
  if (!e || !e.audio || !e.audio.peaks.length) return -1;
  return Math.max(...e.audio.peaks.map((p) => p[1]));
};

T.pixels = (peerId) => {
  const e = remote.get(peerId);
  if (!e || !e.video.videoWidth) return null;
  const c = document.createElement("canvas");
  c.width = 64; c.height = 48;
  const g = c.getContext("2d", { willReadFrequently: true });
  g.drawImage(e.video, 0, 0, 64, 48);
  const at = (x) => Array.from(g.getImageData(x, 24, 1, 1).data.slice(0, 3));
  return { left: at(16), right: at(48), w: e.video.videoWidth, h: e.video.videoHeight };
};

T.mute = (kind, on) => { client.setMuted(kind, on); return client.isMuted(kind); };

T.switchVideo = async () => {
  const c = document.createElement("canvas");
  c.width = 320; c.height = 240;
  const g = c.getContext("2d");
  let n = 0;
  const draw = () => {
    g.fillStyle = "#ff00ff"; g.fillRect(0, 0, 160, 240);
    g.fillStyle = "#00ff00"; g.fillRect(160, 0, 160, 240);
    // a changing corner: a canvas track only carries frames when the canvas changes
    g.fillStyle = n++ % 2 ? "#000" : "#fff"; g.fillRect(0, 0, 4, 4);
  };
  draw();
  const track = c.captureStream(15).getVideoTracks()[0];
  canvasTimer = setInterval(draw, 66);
  await client.replaceTrack(track);
  return track.readyState;
};

T.leave = () => { client.leave(); clearInterval(canvasTimer); return client.state; };

T.loaded = true;
