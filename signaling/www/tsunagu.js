/* tsunagu.js - the client library for tsunagu-signal (issue 15): an ES module
 * with no dependencies and no build step, served at /tsunagu.js, its types in
 * tsunagu.d.ts beside it. It owns the client side of docs/protocol.md: join,
 * resume after a drop or a drain, the call convention (the later joiner
 * offers) with perfect negotiation on top (the later joiner impolite), trickle
 * ICE, ICE restarts on `relays-changed` and on a dead path, mute, replaceTrack,
 * stats. docs/client.md "What it does for you" says how and why; the comments
 * below say only what is not plain from the code. WebSocket and
 * RTCPeerConnection are injectable (node tests: `ws`, and null: no calls). */

const OPEN = 1; // WebSocket.OPEN, the same in browsers and in `ws`
const HELD_MAX = 1000; // messages held while resuming; beyond, the oldest go
const RESTARTS_MAX = 30; // ICE restarts per call without a working path between
const KINDS = ["audio", "video"];

/** What join() rejects with, and what `error` events describe. */
export class TsunaguError extends Error {
  constructor(code, message, reason, fatal, peerId) {
    super(message);
    this.name = "TsunaguError";
    this.code = code;
    this.reason = reason || message;
    this.fatal = !!fatal;
    if (peerId) this.peerId = peerId;
  }
}

// Sentences for the server's error codes (docs/protocol.md "Error codes").
const REASONS = {
  "bad-request": "the server refused a malformed request",
  unauthorized: "the access token was refused (expired, for another room, or wrongly signed)",
  "room-full": "the room is full",
  "unknown-peer": "that member is no longer in the room",
  "not-joined": "not in a room",
  "too-large": "a message was too large for the server",
  "rate-limited": "too many requests; wait a moment and try again",
  kicked: "an operator removed you from the room",
  "server-busy": "the server is busy; try again shortly",
};

// The room claim of an HS256 JWT (the server checks it; we only read it).
function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(part + "===".slice((part.length + 3) % 4));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
    return claims && typeof claims === "object" ? claims : {};
  } catch (e) {
    return {};
  }
}

function why(e) {
  if (!e) return "unknown error";
  return (e.name && e.name !== "Error" ? e.name + ": " : "") + (e.message || String(e));
}

const PAIR_RANK = { host: 0, prflx: 1, srflx: 2, relay: 3 };
function pairWord(pair) {
  if (!pair) return null;
  const l = PAIR_RANK[pair.local] ?? -1, r = PAIR_RANK[pair.remote] ?? -1;
  return (l >= r ? pair.local : pair.remote) || null;
}

// The selected candidate pair of a getStats() report (Chromium: transport's
// selectedCandidatePairId; Firefox: the pair marked selected).
function selectedPair(report) {
  const byId = new Map();
  let pairId = null, nominated = null;
  report.forEach((s) => {
    byId.set(s.id, s);
    if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    if (s.type === "candidate-pair" && s.selected) pairId = pairId || s.id;
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") nominated = nominated || s.id;
  });
  const cp = byId.get(pairId || nominated);
  if (!cp) return { cp: null, pair: null, byId };
  const l = byId.get(cp.localCandidateId) || {}, r = byId.get(cp.remoteCandidateId) || {};
  const pair = { local: l.candidateType, remote: r.candidateType, protocol: l.protocol };
  if (l.relayProtocol) pair.relayProtocol = l.relayProtocol;
  // where the path runs (the relay's address, a NAT's mapping): diagnostics and lab tests
  if (l.address) Object.assign(pair, { localAddress: l.address, localPort: l.port });
  if (r.address) Object.assign(pair, { remoteAddress: r.address, remotePort: r.port });
  if (typeof cp.bytesSent === "number") Object.assign(pair, { bytesSent: cp.bytesSent, bytesReceived: cp.bytesReceived });
  return { cp, pair: pair.local ? pair : null, byId };
}

export class TsunaguClient {
  constructor(options) {
    const o = options || {};
    this._o = o;
    this._WS = o.WebSocket || globalThis.WebSocket;
    this._PC = o.RTCPeerConnection === undefined ? globalThis.RTCPeerConnection : o.RTCPeerConnection;
    if (!this._WS) throw new Error("tsunagu: no WebSocket (pass options.WebSocket)");
    this._url = o.url;
    if (!this._url) {
      if (typeof location === "undefined") throw new Error("tsunagu: options.url is needed outside a page");
      this._url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    }
    this._restartMs = o.iceRestartAfterMs ?? 2000;
    this._minDelay = o.reconnectMinMs ?? 500;
    this._maxDelay = o.reconnectMaxMs ?? 8000;
    this._pingMs = o.pingIntervalMs ?? 20000;
    this._handlers = new Map();
    this._members = new Map(); // id -> member entry (see _member)
    this._muted = { audio: false, video: false };
    this.localStream = o.localStream || null;
    this._reset();
    this.state = "idle";
  }

  _reset() {
    this.id = this.room = this.name = this._token = this._resumeToken = this._ws = null;
    this._oldWs = null; // a draining node's connection, read until it closes
    this._joinWait = null; // {resolve, reject} of join()
    this._reconnectTimer = this._pingTimer = null;
    this._resuming = this._leaving = this._rejoin = false;
    this.iceServers = [];
    this._held = [];
    this._reconnectDelay = this._minDelay;
    this._lostAt = 0;
    this._last = 0; // the highest `seq` handled (docs/protocol.md "Sequence numbers")
  }

  /* ---- events ---- */

  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) { this._handlers.get(type)?.delete(fn); }

  _emit(type, ev) {
    const set = this._handlers.get(type);
    if (!set) return;
    for (const fn of [...set])
      try { fn(ev); } catch (e) { this._log("a '" + type + "' handler threw: " + why(e)); }
  }

  _log(line) { if (this._o.log) this._o.log(line); }

  _setState(state) {
    const previous = this.state;
    this.state = state;
    if (state !== previous) this._emit("state", { state, previous });
  }

  _error(code, message, opts) {
    const o = opts || {};
    const reason = o.reason || REASONS[code] || message;
    const info = { code, message, reason, fatal: !!o.fatal };
    if (o.peerId) info.peerId = o.peerId;
    this._log("error " + code + ": " + reason + (reason !== message ? " (" + message + ")" : ""));
    this._emit("error", info);
    return new TsunaguError(code, message, reason, o.fatal, o.peerId);
  }

  /* ---- members ---- */

  get members() { return [...this._members.values()].map((m) => this._snapshot(m)); }

  _snapshot(m) {
    return { id: m.id, name: m.name, polite: m.polite, connection: m.pc ? m.pc.connectionState : "new",
      ice: m.pc ? m.pc.iceConnectionState : "new", pair: m.pair, tracks: [...m.tracks], iceRestarts: m.iceRestarts };
  }

  _member(id, name, polite) {
    let m = this._members.get(id);
    if (m) return m;
    m = { id, name: name || "", polite, pc: null, pending: [], chain: Promise.resolve(), makingOffer: false,
      ignoreOffer: false, established: false, tracks: new Set(), pair: null, iceRestarts: 0, restartTimer: null };
    this._members.set(id, m);
    return m;
  }

  _membersChanged() { this._emit("members", this.members); }

  _dropMember(id, quiet) {
    const m = this._members.get(id);
    if (!m) return;
    this._members.delete(id);
    this._closePc(m);
    if (!quiet) {
      this._emit("member-left", this._snapshot(m));
      this._membersChanged();
    }
  }

  /* ---- signaling ---- */

  join(token, name, opts) {
    if (this.state !== "idle" && this.state !== "left")
      return Promise.reject(new TsunaguError("bad-request", "join() while " + this.state,
        "already in a room: leave() first", false));
    const claims = token ? tokenClaims(token) : {};
    const room = (opts && opts.room) || claims.room;
    if (!room || typeof room !== "string")
      return Promise.reject(this._error("no-room", "no room: pass opts.room or a token with a room claim",
        { reason: "no room to join", fatal: true }));
    this._reset();
    this._token = token || null;
    this.room = room;
    this.name = claims.name || name || "";
    this._joinName = name;
    this._leaving = false;
    this._setState("connecting");
    return new Promise((resolve, reject) => {
      this._joinWait = { resolve, reject };
      this._connect(() => this._sendJoin());
    });
  }

  _sendJoin() {
    // seq: numbered room traffic, so that a resume (also on another node
    // after a crash) gets what we had not handled, once
    const msg = { type: "join", room: this.room, seq: true };
    if (this._joinName) msg.name = this._joinName;
    if (this._token) msg.token = this._token;
    this._sendNow(msg);
  }

  leave() {
    if (this.state === "idle" || this.state === "left") return;
    if (this.state === "joined" && !this._resuming) this._sendNow({ type: "leave" });
    this._stop("left by leave()");
  }

  // Out of the room for good: connections closed, calls ended, timers off.
  _stop(why) {
    this._log("stopped: " + why);
    this._leaving = true;
    clearTimeout(this._reconnectTimer);
    clearInterval(this._pingTimer);
    for (const sock of [this._ws, this._oldWs]) if (sock) this._closeSock(sock, 1000);
    this._ws = this._oldWs = null;
    this._held = [];
    this._resuming = false;
    const had = this._members.size > 0;
    for (const id of [...this._members.keys()]) this._dropMember(id, true);
    if (had) this._membersChanged();
    this._setState("left");
    const w = this._joinWait; // leave() before `joined`: join() must settle
    this._joinWait = null;
    if (w) w.reject(new TsunaguError("not-joined", "left before joined", "left before the join completed", true));
  }

  _closeSock(sock, code, reason) {
    try { sock.close(code, reason); } catch (e) { /* already closing */ }
  }

  send(to, data) { this._checkIn(); this._send({ type: "signal", to, data: { app: data } }); }

  broadcast(data) { this._checkIn(); this._send({ type: "broadcast", data: { app: data } }); }

  _checkIn() {
    if (this.state !== "joined" && this.state !== "reconnecting")
      throw new TsunaguError("not-joined", "not in a room", REASONS["not-joined"], false);
  }

  // While resuming (or reconnecting) what we send waits for `resumed`: sent
  // before it, it would get not-joined instead of reaching its member.
  _send(obj) {
    const ws = this._ws;
    if (this._resuming || !ws || ws.readyState !== OPEN) {
      if (this._held.length >= HELD_MAX) this._held.shift();
      this._held.push(obj);
      return;
    }
    ws.send(JSON.stringify(obj));
  }

  _sendNow(obj) { if (this._ws && this._ws.readyState === OPEN) this._ws.send(JSON.stringify(obj)); }

  dropConnection() { if (this._ws) this._closeSock(this._ws, 4000, "dropped by the client"); }

  _connect(onOpen) {
    clearTimeout(this._reconnectTimer);
    let sock;
    try {
      sock = new this._WS(this._url);
    } catch (e) {
      // a URL the WebSocket constructor refuses: as a failed connection
      this._log("WebSocket: " + why(e));
      setTimeout(() => this._onClose(null, { code: 1006 }), 0);
      return;
    }
    this._ws = sock;
    sock.onopen = () => { if (sock === this._ws) onOpen(); };
    sock.onerror = () => {}; // the close that follows says it
    sock.onmessage = (ev) => {
      let m = null;
      try { m = JSON.parse(typeof ev.data === "string" ? ev.data : String(ev.data)); } catch (e) { /* not ours */ }
      if (m && typeof m.type === "string") this._handle(m, sock);
    };
    sock.onclose = (ev) => this._onClose(sock, ev);
  }

  _onClose(sock, ev) {
    const code = ev && ev.code;
    if (sock && sock !== this._ws) {
      // a drain's old connection: 4001 once our place moved, 1001 at the end
      if (sock === this._oldWs) this._oldWs = null;
      this._log("old connection closed (" + code + ")" + (code === 4001 ? ": our place moved" : ""));
      return;
    }
    if (this._leaving) return;
    if (this.state === "connecting") {
      const w = this._joinWait;
      this._joinWait = null;
      const err = this._error("connect-failed", "signaling connection closed before joining (" + code + ")",
        { reason: "could not reach the signaling server (" + this._url + ")", fatal: true });
      this._stop("connect failed");
      if (w) w.reject(err);
      return;
    }
    if (code === 4002) return this._stop("kicked");
    // A dropped connection: come back with `resume` after a back-off; calls
    // keep their media meanwhile. Give up after reconnectGiveUpMs.
    if (!this._lostAt) this._lostAt = Date.now();
    const giveUp = this._o.reconnectGiveUpMs ?? 300000;
    if (Date.now() - this._lostAt > giveUp) {
      this._error("connect-failed", "no signaling connection for " + Math.round(giveUp / 1000) + " s",
        { reason: "lost the signaling server and could not reconnect", fatal: true });
      this._stop("reconnect gave up");
      return;
    }
    this._setState("reconnecting");
    this._resuming = true;
    clearInterval(this._pingTimer);
    this._log("signaling connection lost (" + code + "); resuming in " + this._reconnectDelay + " ms");
    this._reconnectTimer = setTimeout(() => this._resumeNow(), this._reconnectDelay);
    this._reconnectDelay = Math.min(this._reconnectDelay * 2, this._maxDelay);
  }

  _resumeNow() {
    this._resuming = true;
    this._connect(() => {
      if (this._resumeToken) return this._sendNow({ type: "resume", token: this._resumeToken, last: this._last });
      // the resume token was refused before this connection dropped: join
      this._resuming = false;
      this._rejoin = true;
      this._sendJoin();
    });
  }

  _startPing() {
    clearInterval(this._pingTimer);
    if (this._pingMs > 0) this._pingTimer = setInterval(() => this._resuming || this._sendNow({ type: "ping" }), this._pingMs);
  }

  _handle(m, sock) {
    if (Number.isInteger(m.seq) && sock !== this._oldWs) {
      // a copy (replayed after a resume on another node) is dropped; JS runs
      // the handler to its end before the next message, so `handled` and
      // `last = seq` are one step here. Not on a draining node's old
      // connection: a drain's hand-over repeats nothing, and the new node
      // numbers on after the `last` of our resume, so what the old node
      // wrote meanwhile must not move `last` (it would drop the new ones)
      if (m.seq <= this._last) return;
      this._last = m.seq;
    }
    switch (m.type) {
      case "joined": return this._onJoined(m);
      case "resumed": return this._onResumed(m);
      case "peer-joined": {
        const p = m.peer || {};
        if (typeof p.id !== "string" || this._members.has(p.id)) return;
        // they joined after us: they offer, we are polite
        const mem = this._member(p.id, p.name || "", true);
        this._log(mem.name + " joined; waiting for their offer");
        this._emit("member-joined", this._snapshot(mem));
        this._membersChanged();
        return;
      }
      case "peer-left":
        this._log("member " + m.id + " left");
        return this._dropMember(m.id);
      case "signal":
        this._emit("signal", { from: m.from, data: m.data });
        if (m.data && typeof m.data === "object" && "app" in m.data)
          this._emit("message", { from: m.from, data: m.data.app, broadcast: false });
        else this._onCallSignal(m.from, m.data);
        return;
      case "broadcast":
        if (m.data && typeof m.data === "object" && "app" in m.data)
          this._emit("message", { from: m.from, data: m.data.app, broadcast: true });
        return;
      case "relays-changed":
        return this._onRelaysChanged(m);
      case "error":
        return this._onServerError(m, sock);
      default:
        return; // pong, and types newer than this client
    }
  }

  _onJoined(m) {
    this.id = m.id;
    this._last = 0; // a new member: its numbers start at 1
    this.room = m.room || this.room;
    this.iceServers = Array.isArray(m.iceServers) ? m.iceServers : [];
    this._resumeToken = m.resume || null;
    this._resuming = this._rejoin = false;
    this._reconnectDelay = this._minDelay;
    this._lostAt = 0;
    const peers = Array.isArray(m.peers) ? m.peers : [];
    this._log("joined " + this.room + " as " + m.id + " with " + peers.length + " member(s)");
    this._setState("joined");
    this._startPing();
    // we are the later joiner: we call everyone already here (impolite)
    for (const p of peers) this._member(p.id, p.name || "", false);
    const info = { id: m.id, room: this.room, peers: peers.map((p) => ({ id: p.id, name: p.name || "" })),
      iceServers: this.iceServers };
    const w = this._joinWait;
    this._joinWait = null;
    if (w) w.resolve(info);
    this._emit("joined", info);
    this._membersChanged();
    // addTrack/addTransceiver fire negotiationneeded: the offers
    if (this._PC) for (const p of peers) this._pc(this._members.get(p.id));
    for (const h of this._held.splice(0)) this._send(h);
  }

  _onResumed(m) {
    this._resuming = false;
    this._reconnectDelay = this._minDelay;
    this._lostAt = 0;
    this._setState("joined");
    this._startPing();
    this._log("resumed as " + m.id);
    const peers = Array.isArray(m.peers) ? m.peers : [];
    let changed = false;
    for (const id of [...this._members.keys()])
      if (!peers.some((p) => p.id === id)) changed = this._dropMember(id, true) || true;
    this._emit("resumed", { id: m.id, peers: peers.map((p) => ({ id: p.id, name: p.name || "" })) });
    if (changed) this._membersChanged();
    for (const h of this._held.splice(0)) this._send(h);
  }

  _onServerError(m, sock) {
    const code = String(m.code || "error"), message = String(m.message || "");
    if (code === "server-busy" && m.drain) {
      // the drain notice (SIGTERM): not a failure (docs/protocol.md)
      this._emit("drain", { mode: String(m.drain) });
      if (m.drain === "resume" && this.state === "joined" && this._resumeToken && !this._resuming &&
          !this._oldWs && sock === this._ws) {
        // another node can take our place now: keep reading the old
        // connection, resume on a new one, hold what we send until resumed
        this._log("server draining: resuming on a new connection");
        this._oldWs = sock;
        this._resuming = true;
        this._setState("reconnecting");
        this._reconnectDelay = this._minDelay;
        this._resumeNow();
      } else {
        this._log("server draining: will resume after it closes");
      }
      return;
    }
    if (this.state === "connecting") {
      // the join was refused
      const w = this._joinWait;
      this._joinWait = null;
      let reason = REASONS[code] || message;
      if (code === "room-full") reason = "the room \"" + this.room + "\" is full";
      const err = this._error(code, message, { reason, fatal: true });
      this._stop("join refused: " + code);
      if (w) w.reject(err);
      return;
    }
    if (this._resuming && code === "unauthorized") {
      // too late to resume (window passed, or the server restarted): join
      // again as a new member; the others saw us leave
      this._log("could not resume; joining again");
      this._error("resume-failed", message,
        { reason: "the connection was away too long to resume; joined again as a new member" });
      this._resuming = false;
      this._resumeToken = null;
      this._held = [];
      if (this._oldWs) {
        // a drain whose hand-over was refused: end the old member now
        if (this._oldWs.readyState === OPEN) this._oldWs.send(JSON.stringify({ type: "leave" }));
        this._closeSock(this._oldWs, 1000);
        this._oldWs = null;
      }
      const had = this._members.size > 0;
      for (const id of [...this._members.keys()]) this._dropMember(id, true);
      if (had) this._membersChanged();
      this._setState("reconnecting");
      this._rejoin = true;
      this._sendJoin();
      return;
    }
    if (this._rejoin && code !== "unknown-peer" && this.state === "reconnecting") {
      // the join after a refused resume was refused too (token expired...)
      this._error(code, message, { fatal: true });
      return this._stop("rejoin refused: " + code);
    }
    if (this._resuming && code === "server-busy") {
      // the cluster cannot hand us over right now: retry after the back-off
      this._log("resume deferred; retrying");
      if (this._ws) this._closeSock(this._ws, 4000, "retry resume");
      return;
    }
    if (code === "kicked") {
      this._error(code, message, { fatal: true });
      return this._stop("kicked");
    }
    // unknown-peer: a candidate crossed that member's leave; nothing is wrong
    if (code === "unknown-peer") return this._log("server: " + message);
    this._error(code, message);
  }

  /* ---- calls ---- */

  _rtcConfig() {
    const c = Object.assign({}, this._o.rtcConfig || {});
    c.iceServers = this.iceServers;
    if (this._o.relayOnly) c.iceTransportPolicy = "relay";
    return c;
  }

  _serverList() {
    const urls = this.iceServers.flatMap((s) => [].concat(s.urls || []));
    return urls.length ? urls.join(", ") : "none";
  }

  // Why ICE found no path: what the browser said about the ICE servers
  // (icecandidateerror: "turn:127.0.0.1:9 701 ..."), and what to check.
  _iceReason(m) {
    const errs = [...new Set(m.iceErrors || [])].slice(0, 3);
    let r = errs.length ? "ICE server errors: " + errs.join("; ") : "ICE servers: " + this._serverList();
    r += this._o.relayOnly
      ? " (relay only needs a TURN server this browser can reach: tsunagu-signal --turn-url/--turn-secret, tsunagu-turncheck)"
      : " (a TURN server helps across NATs and firewalls)";
    return r;
  }

  _refused(e, which) {
    return "the browser refused the " + which + "ICE servers from signaling (" + this._serverList() + "): " +
      why(e) + " — check tsunagu-signal's --turn-url and --turn-secret";
  }

  // The RTCPeerConnection of a call, built on first need: at once for the
  // members we call, on their first offer for the members who call us.
  _pc(m) {
    if (m.pc || !this._PC) return m.pc;
    let pc;
    try {
      pc = new this._PC(this._rtcConfig());
    } catch (e) {
      // e.g. InvalidAccessError for a turn: URL without credentials
      this._error("ice-servers-refused", why(e), { peerId: m.id, reason: this._refused(e, "") });
      return null;
    }
    m.pc = pc;
    m.iceErrors = [];
    m.candidates = 0;
    m.wasConnected = false;
    if (!m.polite) {
      // the offerer sends what it has and asks for both kinds even without
      // media of its own; the answerer's tracks go onto the offer's
      // m-lines (_attachLocal), so its answer needs no second round
      const stream = this.localStream, tracks = stream ? stream.getTracks() : [];
      for (const t of tracks) pc.addTrack(t, stream);
      for (const kind of KINDS)
        if (!tracks.some((t) => t.kind === kind)) pc.addTransceiver(kind, { direction: "recvonly" });
    }
    pc.onnegotiationneeded = () => this._negotiate(m, pc);
    pc.onicecandidate = (ev) => {
      if (m.pc !== pc) return;
      if (ev.candidate) m.candidates++;
      this._send({ type: "signal", to: m.id, data: { candidate: ev.candidate ? ev.candidate.toJSON() : null } });
      if (!ev.candidate && !m.candidates && !m.failedSaid && !m.wasConnected) {
        // gathering over with nothing to offer: no path can ever be found
        m.failedSaid = true;
        this._error("ice-failed", "no ICE candidates gathered", { peerId: m.id,
          reason: "no ICE candidates gathered; " + this._iceReason(m) });
      }
      if (!ev.candidate) m.candidates = 0; // an ICE restart gathers anew
    };
    pc.onicecandidateerror = (ev) => {
      m.iceErrors.push((ev.url || "?") + " " + ev.errorCode + " " + (ev.errorText || "").trim());
      if (m.iceErrors.length > 20) m.iceErrors.shift();
    };
    pc.ontrack = (ev) => {
      const track = ev.track;
      m.tracks.add(track);
      const gone = () => m.tracks.delete(track) && this._emit("track-removed", { peerId: m.id, track });
      track.addEventListener("ended", gone);
      if (ev.streams && ev.streams[0]) ev.streams[0].addEventListener("removetrack", (e) => { if (e.track === track) gone(); });
      this._emit("track", { peerId: m.id, track, streams: ev.streams || [] });
    };
    pc.onconnectionstatechange = () => this._connectionChanged(m, pc);
    pc.oniceconnectionstatechange = () => this._iceChanged(m, pc);
    this._watch(m, pc);
    return pc;
  }

  async _negotiate(m, pc) {
    // the earlier member answers the first offer before it offers anything
    if (m.pc !== pc || (m.polite && !m.established)) return;
    try {
      m.makingOffer = true;
      await pc.setLocalDescription();
      if (m.pc !== pc) return;
      const d = pc.localDescription;
      this._send({ type: "signal", to: m.id, data: { description: { type: d.type, sdp: d.sdp } } });
      this._log("offer sent to " + (m.name || m.id));
    } catch (e) {
      if (m.pc === pc) this._error("negotiation-failed", "setLocalDescription(offer): " + why(e),
        { peerId: m.id, reason: "setLocalDescription(offer): " + why(e) });
    } finally {
      m.makingOffer = false;
    }
  }

  _onCallSignal(from, data) {
    if (!this._PC || !data || typeof data !== "object") return;
    const m = this._members.get(from) || this._member(from, "", true);
    // one at a time per member, in the order they came
    m.chain = m.chain.then(() => this._callSignal(m, data)).catch((e) => this._log("signal: " + why(e)));
  }

  async _callSignal(m, data) {
    if (!this._members.has(m.id)) return;
    if (data.description) {
      const d = data.description;
      const pc = this._pc(m);
      if (!pc) return;
      let step = "setRemoteDescription(" + d.type + ")";
      try {
        // perfect negotiation: on a collision the impolite end ignores the
        // other's offer, the polite one rolls its own back (implicitly)
        const collision = d.type === "offer" && (m.makingOffer || pc.signalingState !== "stable");
        m.ignoreOffer = !m.polite && collision;
        if (m.ignoreOffer) {
          this._log("offer collision with " + (m.name || m.id) + ": ignoring theirs");
          return;
        }
        await pc.setRemoteDescription(d);
        if (d.type === "offer") await this._attachLocal(pc);
        m.established = true;
        // a finished (re)negotiation: media must flow again before a stall
        // counts, so a peer that simply stopped sending costs one restart
        m.rtpFlowing = false;
        for (const c of m.pending.splice(0)) await this._addCandidate(m, pc, c);
        if (d.type === "offer") {
          step = "setLocalDescription(answer)";
          await pc.setLocalDescription();
          const a = pc.localDescription;
          this._send({ type: "signal", to: m.id, data: { description: { type: a.type, sdp: a.sdp } } });
          this._log("answered " + (m.name || m.id));
          if (m.polite && m.restartTimer) {
            // the offerer is restarting this path itself: our own fallback
            // restart waits again from now (no collision while it tries)
            clearTimeout(m.restartTimer);
            m.restartTimer = null;
            this._armRestart(m, pc);
          }
        }
      } catch (e) {
        this._error("negotiation-failed", step + ": " + why(e), { peerId: m.id, reason: step + ": " + why(e) });
      }
    } else if ("candidate" in data) {
      const pc = m.pc;
      if (!pc || !pc.remoteDescription) {
        if (m.pending.length < 200) m.pending.push(data.candidate);
        return;
      }
      await this._addCandidate(m, pc, data.candidate);
    }
  }

  // Our tracks onto the transceivers a remote offer made (one per kind not
  // sent yet). Kinds the offer has no m-line for are not added: a peer that
  // offered audio only (tsunagu-bot) gets no renegotiation it cannot take.
  async _attachLocal(pc) {
    const stream = this.localStream;
    if (!stream) return;
    for (const track of stream.getTracks()) {
      const trs = pc.getTransceivers().filter((t) => !t.stopped && t.receiver && t.receiver.track &&
        t.receiver.track.kind === track.kind);
      if (trs.some((t) => t.sender.track)) continue; // this kind is sent already
      if (trs[0]) await this._onto(trs[0], track, stream);
    }
  }

  // track (or null) onto transceiver t, which then sends if it did not
  async _onto(t, track, stream) {
    await t.sender.replaceTrack(track);
    if (!track) return;
    if (stream && t.sender.setStreams) t.sender.setStreams(stream);
    if (t.direction === "recvonly") t.direction = "sendrecv";
    else if (t.direction === "inactive") t.direction = "sendonly";
  }

  async _addCandidate(m, pc, c) {
    try {
      await pc.addIceCandidate(c === null ? undefined : c); // null: end of candidates
    } catch (e) {
      if (!m.ignoreOffer) this._log("bad candidate from " + m.id + ": " + why(e));
    }
  }

  _closePc(m) {
    clearTimeout(m.restartTimer);
    clearInterval(m.watchTimer);
    m.restartTimer = m.watchTimer = null;
    if (m.pc) {
      const pc = m.pc;
      m.pc = null;
      pc.onnegotiationneeded = pc.onicecandidate = pc.ontrack = null;
      pc.onconnectionstatechange = pc.oniceconnectionstatechange = pc.onicecandidateerror = null;
      pc.close();
    }
    for (const track of [...m.tracks]) {
      m.tracks.delete(track);
      this._emit("track-removed", { peerId: m.id, track });
    }
  }

  _connectionEvent(m, pc) {
    this._emit("connection", { peerId: m.id, connection: pc.connectionState, ice: pc.iceConnectionState,
      pairType: pairWord(m.pair), pair: m.pair });
  }

  async _connectionChanged(m, pc) {
    if (m.pc !== pc) return;
    const st = pc.connectionState;
    this._log("call with " + (m.name || m.id) + ": " + st);
    if (st === "connected") await this._refreshPair(m, pc);
    if (m.pc !== pc) return;
    this._connectionEvent(m, pc);
    // Chromium may pass through "failed" for a few ms while ICE is still
    // checking (seen: failed -> connecting -> connected in 100 ms): an error
    // only if it still holds a second later
    if (st === "failed" && pc.iceConnectionState !== "failed")
      setTimeout(() => {
        if (m.pc !== pc || pc.connectionState !== "failed" || pc.iceConnectionState === "failed" || m.failedSaid) return;
        m.failedSaid = true;
        const text = "the connection failed (" + pc.iceConnectionState + " ICE, DTLS did not complete)";
        this._error("ice-failed", text, { peerId: m.id, reason: text });
      }, 1000);
  }

  async _refreshPair(m, pc) {
    let pair = null;
    try { pair = selectedPair(await pc.getStats()).pair; } catch (e) { /* closed meanwhile */ }
    if (pair && m.pc === pc) m.pair = pair;
  }

  // A path that fails or stays disconnected: restart ICE (fresh candidates
  // and TURN allocations) after iceRestartAfterMs; again while it does not
  // come back, at most RESTARTS_MAX times.
  async _iceChanged(m, pc) {
    if (m.pc !== pc) return;
    const ice = pc.iceConnectionState;
    if (ice === "connected" || ice === "completed") {
      clearTimeout(m.restartTimer);
      m.restartTimer = null;
      m.restartsInRow = 0;
      m.failedSaid = false;
      m.wasConnected = true;
      m.rtpFlowing = false; // a (new) path: media must flow on it before its stall counts
      await this._refreshPair(m, pc);
      if (m.pc === pc) this._connectionEvent(m, pc);
      return;
    }
    if (ice === "failed" && !m.failedSaid && !m.wasConnected) {
      m.failedSaid = true;
      this._error("ice-failed", "ICE failed", { peerId: m.id, reason: "no network path (ICE failed); " + this._iceReason(m) });
    }
    if ((ice === "failed" || ice === "disconnected") && !m.restartTimer) this._armRestart(m, pc);
  }

  // Media stopped while ICE still says connected: a browser notices a dead
  // relay only after seconds of failed consent checks, so the received
  // bytes (RTP and RTCP) are watched too, as tsunagu-bot does. Only a call
  // whose media flowed since its last (re)connection counts: one where
  // nothing is sent at all is not restarted over and over.
  _watch(m, pc) {
    const every = Math.min(1000, Math.max(100, this._restartMs / 2));
    m.rtpSeen = null; // stats id -> bytes received, at the last look
    m.rtpFlowing = false;
    m.watchTimer = setInterval(async () => {
      if (m.pc !== pc || m.watchBusy || pc.connectionState !== "connected") return;
      m.watchBusy = true;
      // growth of any counter counts (an ICE restart may start new ones at 0)
      const seen = new Map();
      let grew = false;
      try {
        (await pc.getStats()).forEach((r) => {
          if (r.type !== "inbound-rtp" && r.type !== "candidate-pair") return;
          const n = r.bytesReceived || 0;
          seen.set(r.id, n);
          if (m.rtpSeen && n > (m.rtpSeen.get(r.id) ?? 0)) grew = true;
        });
      } catch (e) {
        return;
      } finally {
        m.watchBusy = false;
      }
      if (m.pc !== pc) return;
      const now = Date.now();
      const first = !m.rtpSeen;
      m.rtpSeen = seen;
      if (grew) m.rtpFlowing = true;
      if (grew) m.restartsInRow = 0; // media again: a working path
      if (first || grew) return void (m.rtpAt = now);
      if (!this._rtpStalled(m) || m.restartTimer) return;
      this._log("no media from " + (m.name || m.id) + " for " + (now - m.rtpAt) + " ms: the path is dead");
      m.rtpAt = now; // the next look counts from here
      if (!m.polite) this._restartDead(m);
      this._armRestart(m, pc);
    }, every);
  }

  _rtpStalled(m) { return m.rtpFlowing && Date.now() - m.rtpAt >= this._restartMs; }

  // An ICE restart for a dead path, at most RESTARTS_MAX without media between.
  _restartDead(m) {
    if ((m.restartsInRow || 0) >= RESTARTS_MAX) {
      this._error("ice-failed", "no path after " + RESTARTS_MAX + " ICE restarts", { peerId: m.id,
        reason: "the network path died and " + RESTARTS_MAX + " ICE restarts did not bring it back; " +
          this._iceReason(m) });
      return false;
    }
    m.restartsInRow = (m.restartsInRow || 0) + 1;
    this._restart(m, "path-failed");
    return true;
  }

  _armRestart(m, pc) {
    const delay = m.polite ? 3 * this._restartMs : this._restartMs;
    m.restartTimer = setTimeout(() => {
      m.restartTimer = null;
      if (m.pc !== pc || this.state === "left") return;
      const ice = pc.iceConnectionState;
      if (ice === "closed" || ((ice === "connected" || ice === "completed") && !this._rtpStalled(m))) return;
      if (this._rtpStalled(m)) m.rtpAt = Date.now();
      if (!this._restartDead(m)) return;
      this._armRestart(m, pc); // again if this one does not bring it back
    }, delay);
  }

  _restart(m, reason) {
    if (!m.pc) return;
    m.iceRestarts++;
    this._log("ICE restart with " + (m.name || m.id) + " (" + reason + ")");
    this._emit("ice-restart", { peerId: m.id, reason });
    m.pc.restartIce(); // negotiationneeded: an offer with new credentials
  }

  restartIce(peerId) {
    for (const m of this._members.values()) if (!peerId || m.id === peerId) this._restart(m, "api");
  }

  _onRelaysChanged(msg) {
    if (!Array.isArray(msg.iceServers)) return;
    this.iceServers = msg.iceServers;
    this._log("relays changed (" + (msg.reason || "?") + ", now " + (msg.relay || "?") + "): " + this._serverList());
    for (const m of this._members.values()) {
      if (!m.pc) continue;
      try {
        m.pc.setConfiguration(this._rtcConfig());
      } catch (e) {
        this._error("ice-servers-refused", why(e), { peerId: m.id, reason: this._refused(e, "new ") });
        continue;
      }
      // the offerer restarts; the answerer gathers anew when the restart
      // offer comes, with the servers just set
      if (!m.polite) this._restart(m, "relays-changed");
    }
  }

  /* ---- local media ---- */

  _senderOf(pc, kind) {
    for (const t of pc.getTransceivers())
      if (!t.stopped && t.receiver && t.receiver.track && t.receiver.track.kind === kind) return t;
    return null;
  }

  async _sendTrack(kind, track) {
    for (const m of this._members.values()) {
      const pc = m.pc;
      if (!pc) continue;
      const t = this._senderOf(pc, kind);
      if (t) await this._onto(t, track, this.localStream); // from recvonly: a renegotiation
      else if (track) pc.addTrack(track, this.localStream);
    }
  }

  async setLocalStream(stream) {
    const old = this.localStream;
    this.localStream = stream || null;
    for (const kind of KINDS) {
      const t = stream ? stream.getTracks().find((x) => x.kind === kind) || null : null;
      if (t) t.enabled = !this._muted[kind];
      const before = old ? old.getTracks().find((x) => x.kind === kind) || null : null;
      if (t !== before) await this._sendTrack(kind, t);
    }
  }

  setMuted(kind, muted) {
    this._muted[kind] = !!muted;
    if (this.localStream) for (const t of this.localStream.getTracks()) if (t.kind === kind) t.enabled = !muted;
  }

  isMuted(kind) { return !!this._muted[kind]; }

  async replaceTrack(track) {
    const kind = track.kind;
    track.enabled = !this._muted[kind];
    if (!this.localStream) this.localStream = new MediaStream();
    for (const t of this.localStream.getTracks()) if (t.kind === kind) this.localStream.removeTrack(t);
    this.localStream.addTrack(track);
    await this._sendTrack(kind, track);
  }

  async switchDevice(kind, deviceId) {
    const old = this.localStream ? this.localStream.getTracks().find((t) => t.kind === kind) : null;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ [kind]: { deviceId: { exact: deviceId } } });
    } catch (e) {
      throw this._error("media", why(e), { reason: "could not open that " +
        (kind === "audio" ? "microphone" : "camera") + " (" + why(e) + ")" });
    }
    const track = stream.getTracks().find((t) => t.kind === kind);
    await this.replaceTrack(track);
    if (old && old !== track) old.stop();
    return track;
  }

  /* ---- stats ---- */

  async stats() {
    const out = {};
    for (const m of [...this._members.values()]) {
      const pc = m.pc;
      const s = { id: m.id, name: m.name, connection: pc ? pc.connectionState : "new", pairType: null,
        pair: null, rttMs: null, bitrateIn: 0, bitrateOut: 0, lossPercent: 0, jitterMs: null,
        audio: null, video: null };
      out[m.id] = s;
      if (!pc) continue;
      let report;
      try { report = await pc.getStats(); } catch (e) { continue; }
      const { cp, pair } = selectedPair(report);
      if (pair) m.pair = pair;
      s.pair = m.pair;
      s.pairType = pairWord(m.pair);
      if (cp && typeof cp.currentRoundTripTime === "number") s.rttMs = cp.currentRoundTripTime * 1000;
      const now = Date.now();
      const cur = { t: now };
      for (const kind of KINDS) cur[kind] = { bytesIn: 0, bytesOut: 0, recv: 0, sent: 0, lost: 0, jitter: null, seen: false };
      report.forEach((r) => {
        const k = cur[r.kind || r.mediaType];
        if (!k) return;
        if (r.type === "inbound-rtp") {
          k.seen = true;
          k.bytesIn += r.bytesReceived || 0;
          k.recv += r.packetsReceived || 0;
          k.lost += Math.max(0, r.packetsLost || 0);
          if (typeof r.jitter === "number") k.jitter = Math.max(k.jitter ?? 0, r.jitter * 1000);
        } else if (r.type === "outbound-rtp") {
          k.seen = true;
          k.bytesOut += r.bytesSent || 0;
          k.sent += r.packetsSent || 0;
        } else if (r.type === "remote-inbound-rtp" && s.rttMs === null && typeof r.roundTripTime === "number") {
          s.rttMs = r.roundTripTime * 1000;
        }
      });
      // rates over the last second or more, whoever asks how often: against
      // the newest earlier look at least 1 s old (else the oldest one kept)
      const hist = m.hist || (m.hist = []);
      const prev = [...hist].reverse().find((h) => now - h.t >= 1000) || hist[0];
      const dt = prev ? (now - prev.t) / 1000 : 0;
      let recvAll = 0, lostAll = 0;
      for (const kind of KINDS) {
        const k = cur[kind];
        if (!k.seen) continue;
        const p = prev && prev[kind];
        const rate = (a, b) => (p && dt > 0 ? Math.max(0, (a - b) * 8 / dt) : 0);
        const dRecv = p ? Math.max(0, k.recv - p.recv) : k.recv, dLost = p ? Math.max(0, k.lost - p.lost) : k.lost;
        const st = {
          bitrateIn: Math.round(rate(k.bytesIn, p && p.bytesIn)), bitrateOut: Math.round(rate(k.bytesOut, p && p.bytesOut)),
          packetsReceived: k.recv, packetsLost: k.lost, packetsSent: k.sent,
          lossPercent: dRecv + dLost > 0 ? (100 * dLost) / (dRecv + dLost) : 0,
          jitterMs: k.jitter, bytesReceived: k.bytesIn, bytesSent: k.bytesOut,
        };
        s[kind] = st;
        s.bitrateIn += st.bitrateIn;
        s.bitrateOut += st.bitrateOut;
        recvAll += dRecv;
        lostAll += dLost;
        if (k.jitter !== null) s.jitterMs = Math.max(s.jitterMs ?? 0, k.jitter);
      }
      s.lossPercent = recvAll + lostAll > 0 ? (100 * lostAll) / (recvAll + lostAll) : 0;
      hist.push(cur);
      while (hist.length > 1 && (now - hist[1].t >= 1000 || hist.length > 50)) hist.shift();
    }
    return out;
  }
}

export default TsunaguClient;
