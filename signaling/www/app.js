/* tsunagu demo call page: joins a room on tsunagu-signal (/ws) and calls
 * every other member (a mesh), following DESIGN.md's call convention:
 *  - the member that joins later offers to every peer listed in `joined`;
 *  - signal.data is {description}, {candidate} (trickle ICE) or
 *    {candidate:null} at the end of gathering;
 *  - peer-left ends that call.
 * URL parameters: ?room=R&name=N&autojoin=1&relay=1&token=JWT
 * For automated tests the page exposes window.tsunaguState (refreshed once a
 * second from getStats) and window.tsunaguStats() (fresh, a Promise).
 *
 * What breaks a call shows in the status line with its reason, not only in
 * the log below: an RTCPeerConnection the browser refuses to build (ICE
 * servers it rejects), a failed offer/answer step, ICE finding no path (with
 * the TURN errors the browser reported), a refused join or another error
 * from signaling. The line stays "in ROOM — n/m call(s) connected" and the
 * problem follows it; state.problem holds it for tests. */
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const state = {
    status: "idle", joined: false, id: null, room: null, name: null, relayOnly: false,
    iceServers: [], peers: {}, errors: [], log: [], resumes: 0, localTracks: 0,
    joins: 0, drains: 0, drainResumes: 0, oldCloses: [], problem: null,
  };
  window.tsunaguState = state;

  let ws = null, resumeToken = null, localStream = null, leaving = false, resuming = false;
  let reconnectTimer = null, statsTimer = null, reconnectDelay = 500;
  // drain in cluster mode: the draining node's connection, still read while
  // the new one resumes elsewhere; its close (4001 once we moved) is expected
  let oldWs = null;
  // what we send while not in the room on a live connection (reconnecting,
  // or a resume not answered yet): sent after `resumed`, which a message
  // ahead of it would get `not-joined` instead of reaching its peer
  let held = [];
  let problemOf = null; // the peer id whose call state.problem is about, if any
  const pcs = new Map(); // peer id -> {pc, name, pending: [], tile}

  function log(msg) {
    const line = new Date().toISOString().slice(11, 23) + " " + msg;
    state.log.push(line);
    if (state.log.length > 200) state.log.shift();
    const el = $("log");
    el.textContent += line + "\n";
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

  // A failure the user must see: the status line (with the call count when
  // in a room), and the log. The latest one wins.
  function problem(text, peerId) {
    state.problem = text;
    problemOf = peerId || null;
    log(text);
    if (state.joined) refreshStatus();
    else setStatus(text, "bad");
  }

  // "InvalidAccessError: Failed to construct ..." (an Error's name and text)
  function why(e) {
    if (!e) return "unknown error";
    return (e.name && e.name !== "Error" ? e.name + ": " : "") + (e.message || String(e));
  }

  function who(id, name) { return name || (state.peers[id] && state.peers[id].name) || id; }

  // The ICE servers as the page got them, for messages ("turn:h:p, stun:h")
  function serverList() {
    const urls = [];
    for (const s of state.iceServers) urls.push(...[].concat(s.urls || []));
    return urls.length ? urls.join(", ") : "none";
  }

  // Why ICE found no path: what the browser said about the ICE servers
  // (icecandidateerror: "turn:127.0.0.1:9 701 ..."), and what to check.
  function iceReason(entry) {
    const errs = [...new Set(entry.iceErrors)].slice(0, 3);
    let r = errs.length ? "ICE server errors: " + errs.join("; ") : "ICE servers: " + serverList();
    r += state.relayOnly
      ? " (relay only needs a TURN server this browser can reach: tsunagu-signal --turn-url/--turn-secret, tsunagu-turncheck)"
      : " (a TURN server helps across NATs and firewalls)";
    return r;
  }

  function send(obj) {
    if (state.joined && (resuming || !ws || ws.readyState !== WebSocket.OPEN)) {
      if (held.length < 1000) held.push(obj);
      return;
    }
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  }

  function sendNow(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  }

  function wsUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  }

  /* ---- media ---- */

  async function startMedia() {
    if (localStream) return localStream;
    try {
      localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
    } catch (e) {
      log("camera+microphone unavailable (" + e.name + "), trying microphone only");
      localStream = await navigator.mediaDevices.getUserMedia({ audio: true });
    }
    state.localTracks = localStream.getTracks().length;
    const t = tile("self", (state.name || "me") + " (you)");
    t.classList.add("self");
    const v = t.querySelector("video");
    v.muted = true;
    v.srcObject = localStream;
    return localStream;
  }

  function tile(id, label) {
    let t = document.getElementById("tile-" + id);
    if (!t) {
      t = document.createElement("div");
      t.className = "tile";
      t.id = "tile-" + id;
      t.innerHTML = '<video autoplay playsinline></video><span class="label"></span><span class="net"></span>';
      $("grid").appendChild(t);
    }
    t.querySelector(".label").textContent = label;
    return t;
  }

  /* ---- peer connections ---- */

  function peerState(id) {
    if (!state.peers[id]) state.peers[id] = { name: "", connection: "new", ice: "new", pair: null, inbound: {}, outbound: {} };
    return state.peers[id];
  }

  function createPc(id, name) {
    const old = pcs.get(id);
    if (old) return old;
    let pc;
    try {
      pc = new RTCPeerConnection({
        iceServers: state.iceServers,
        iceTransportPolicy: state.relayOnly ? "relay" : "all",
      });
    } catch (e) {
      // e.g. InvalidAccessError for a turn: URL without username/credential,
      // SyntaxError for a URL the browser cannot parse: both come from
      // signaling's joined.iceServers
      throw new Error("the browser refused the ICE servers from signaling (" + serverList() +
        "): " + why(e) + " — check tsunagu-signal's --turn-url and --turn-secret");
    }
    const entry = { pc, name, pending: [], tile: tile(id, name || id), iceErrors: [], candidates: 0 };
    pcs.set(id, entry);
    peerState(id).name = name;
    for (const track of localStream.getTracks()) pc.addTrack(track, localStream);
    pc.onicecandidate = (ev) => {
      send({ type: "signal", to: id, data: { candidate: ev.candidate ? ev.candidate.toJSON() : null } });
      if (ev.candidate) entry.candidates++;
      else if (!entry.candidates)
        // gathering over with nothing to offer: no path can ever be found
        callProblem(id, "no ICE candidates gathered; " + iceReason(entry));
    };
    // the browser's word on an ICE server that did not work (RFC 8489/8656
    // error codes, or 701 when it got no answer at all)
    pc.onicecandidateerror = (ev) => {
      entry.iceErrors.push((ev.url || "?") + " " + ev.errorCode + " " + (ev.errorText || "").trim());
      if (entry.iceErrors.length > 20) entry.iceErrors.shift();
    };
    pc.ontrack = (ev) => {
      const v = entry.tile.querySelector("video");
      if (v.srcObject !== ev.streams[0]) v.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    };
    pc.onconnectionstatechange = () => {
      peerState(id).connection = pc.connectionState;
      log("call with " + (name || id) + ": " + pc.connectionState);
      const net = entry.tile.querySelector(".net");
      if (pc.connectionState !== "connected") net.textContent = pc.connectionState;
      if (pc.connectionState === "failed" && !peerState(id).problem)
        callProblem(id, pc.iceConnectionState === "failed"
          ? "no network path (ICE failed); " + iceReason(entry)
          : "the connection failed (" + pc.iceConnectionState + " ICE, DTLS did not complete)");
      else if (pc.connectionState === "connected" && peerState(id).problem) {
        peerState(id).problem = null; // a late path: it works now
        if (problemOf === id) state.problem = problemOf = null;
      }
      refreshStatus();
    };
    pc.oniceconnectionstatechange = () => {
      peerState(id).ice = pc.iceConnectionState;
      if (pc.iceConnectionState === "failed" && !peerState(id).problem)
        callProblem(id, "no network path (ICE failed); " + iceReason(entry));
    };
    return entry;
  }

  function closePc(id) {
    const e = pcs.get(id);
    if (!e) return;
    e.pc.close();
    e.tile.remove();
    pcs.delete(id);
    delete state.peers[id];
    if (problemOf === id) state.problem = problemOf = null; // that call is over
    refreshStatus();
  }

  // One call's failure: on its tile, in the state for tests, and (the
  // latest) in the status line.
  function callProblem(id, text) {
    const ps = peerState(id);
    ps.problem = text;
    const e = pcs.get(id);
    if (e) e.tile.querySelector(".net").textContent = "failed";
    problem("call with " + who(id) + " failed: " + text, id);
  }

  async function call(id, name) {
    let step = "RTCPeerConnection";
    try {
      const { pc } = createPc(id, name);
      step = "createOffer";
      const offer = await pc.createOffer();
      step = "setLocalDescription";
      await pc.setLocalDescription(offer);
      send({ type: "signal", to: id, data: { description: { type: offer.type, sdp: offer.sdp } } });
      log("offer sent to " + (name || id));
    } catch (e) {
      callProblem(id, step === "RTCPeerConnection" ? e.message : step + ": " + why(e));
    }
  }

  async function onSignal(from, data) {
    if (!data || typeof data !== "object") return;
    if (data.description) {
      const d = data.description;
      let step = "RTCPeerConnection";
      try {
        const entry = createPc(from, state.peers[from] ? state.peers[from].name : "");
        const pc = entry.pc;
        step = "setRemoteDescription(" + d.type + ")";
        await pc.setRemoteDescription(d);
        for (const c of entry.pending.splice(0)) await addCandidate(pc, c);
        if (d.type === "offer") {
          step = "createAnswer";
          const answer = await pc.createAnswer();
          step = "setLocalDescription(answer)";
          await pc.setLocalDescription(answer);
          send({ type: "signal", to: from, data: { description: { type: answer.type, sdp: answer.sdp } } });
          log("answered " + (entry.name || from));
        }
      } catch (e) {
        callProblem(from, step === "RTCPeerConnection" ? e.message : step + ": " + why(e));
      }
    } else if ("candidate" in data) {
      const entry = pcs.get(from);
      if (!entry) return;
      if (!entry.pc.remoteDescription) entry.pending.push(data.candidate);
      else await addCandidate(entry.pc, data.candidate);
    }
  }

  async function addCandidate(pc, c) {
    try {
      // null marks the end of the peer's candidates
      await pc.addIceCandidate(c === null ? undefined : c);
    } catch (e) {
      log("bad candidate: " + e.message);
    }
  }

  /* ---- signaling ---- */

  function connect(onOpen) {
    clearTimeout(reconnectTimer);
    const sock = new WebSocket(wsUrl());
    ws = sock;
    sock.onopen = () => { reconnectDelay = 500; onOpen(); };
    // messages from the old connection of a drain still count: it carries
    // ours until the member moved
    sock.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      handle(m).catch((e) => log("error handling " + m.type + ": " + e.message));
    };
    sock.onclose = (ev) => {
      if (sock !== ws) {
        // the draining node's connection: 4001 (we moved) or 1001 (drain over)
        if (sock === oldWs) oldWs = null;
        state.oldCloses.push(ev.code);
        log("old signaling connection closed (" + ev.code + ")" + (ev.code === 4001 ? ": our place moved" : ""));
        return;
      }
      if (leaving || !state.joined) {
        if (!leaving) setStatus("disconnected (" + ev.code + ")", "bad");
        return;
      }
      // The network dropped: come back under the same id with `resume`;
      // calls already connected keep their media meanwhile.
      setStatus("reconnecting…", "bad");
      log("signaling connection lost (" + ev.code + "), resuming");
      reconnectTimer = setTimeout(resumeNow, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 8000);
    };
  }

  function resumeNow() {
    connect(() => {
      resuming = true;
      sendNow({ type: "resume", token: resumeToken });
    });
  }

  // Drain notice with "drain":"resume" (cluster): another node can take our
  // place now. Keep the old connection open and read it; open a new one (the
  // load balancer no longer sends new connections to the draining node) and
  // resume there. Calls keep their media throughout.
  function drainResume() {
    state.drainResumes++;
    log("server draining: resuming on a new connection");
    oldWs = ws;
    resuming = true; // hold what we send until `resumed`
    reconnectDelay = 500;
    resumeNow();
  }

  async function handle(m) {
    switch (m.type) {
      case "joined":
        state.joined = true;
        state.joins++;
        state.id = m.id;
        state.iceServers = m.iceServers || [];
        resumeToken = m.resume;
        log("joined " + m.room + " as " + m.id + " with " + m.peers.length + " peer(s)");
        if (state.relayOnly && !state.iceServers.some((s) => [].concat(s.urls).some((u) => /^turns?:/.test(u))))
          problem("relay only, but this server hands out no TURN server: calls cannot connect (tsunagu-signal --turn-url)");
        history.replaceState(null, "", "?room=" + encodeURIComponent(m.room));
        // we are the later joiner: we call everyone already here
        for (const p of m.peers) {
          peerState(p.id).name = p.name;
          await call(p.id, p.name);
        }
        refreshStatus();
        break;
      case "resumed":
        resuming = false;
        state.resumes++;
        log("resumed as " + m.id);
        for (const h of held.splice(0)) send(h);
        for (const id of [...pcs.keys()]) if (!m.peers.some((p) => p.id === id)) closePc(id);
        refreshStatus();
        break;
      case "peer-joined":
        peerState(m.peer.id).name = m.peer.name;
        log(m.peer.name + " joined; waiting for their offer");
        break;
      case "peer-left":
        log((state.peers[m.id] && state.peers[m.id].name || m.id) + " left");
        closePc(m.id);
        break;
      case "signal":
        await onSignal(m.from, m.data);
        break;
      case "error":
        if (m.code === "server-busy" && m.drain) {
          // the drain notice (SIGTERM), not a failure: see docs/protocol.md
          state.drains++;
          if (m.drain === "resume" && state.joined && resumeToken && !resuming && !oldWs) drainResume();
          else log("server draining: will reconnect after it closes");
          break;
        }
        state.errors.push(m.code);
        log("server error " + m.code + ": " + m.message);
        if (resuming && m.code === "unauthorized") {
          // too late to resume (window passed, or the server restarted):
          // join again as a new member; the others saw us leave
          resuming = false;
          resumeToken = null;
          state.joined = false;
          held = [];
          if (oldWs) {
            // a drain whose hand-over was refused: end the old member now
            if (oldWs.readyState === WebSocket.OPEN) oldWs.send(JSON.stringify({ type: "leave" }));
            oldWs.close(1000);
            oldWs = null;
          }
          for (const id of [...pcs.keys()]) closePc(id);
          log("could not resume; joining again");
          sendNow({ type: "join", room: state.room, name: state.name, token: params.get("token") || undefined });
        } else if (resuming && m.code === "server-busy") {
          // the cluster cannot hand us over right now (Redis, load): drop this
          // connection and resume again after the back-off
          log("resume deferred; retrying");
          if (ws) ws.close(4000, "retry resume");
        } else if (!state.joined) {
          stopCall();
          problem("could not join: " + m.code + " (" + m.message + ")");
        } else if (!resuming) {
          problem("server error " + m.code + ": " + m.message);
        }
        break;
      default:
        break;
    }
  }

  function refreshStatus() {
    if (!state.joined) return;
    const n = pcs.size, up = [...pcs.values()].filter((e) => e.pc.connectionState === "connected").length;
    const base = "in " + state.room + " — " + up + "/" + n + " call(s) connected" + (state.relayOnly ? " (relay only)" : "");
    if (state.problem) setStatus(base + " — " + state.problem, "bad");
    else setStatus(base, "ok");
  }

  async function join() {
    const name = $("name").value.trim() || "guest";
    const room = $("room").value.trim();
    if (!room) { $("room").focus(); return; }
    state.name = name; state.room = room; state.relayOnly = $("relay").checked;
    state.problem = problemOf = null;
    leaving = false;
    $("join").disabled = true;
    setStatus("starting camera…");
    try {
      await startMedia();
    } catch (e) {
      setStatus("no camera/microphone: " + e.message, "bad");
      state.errors.push("media");
      $("join").disabled = false;
      return;
    }
    setStatus("connecting…");
    $("hint").hidden = true;
    connect(() => send({ type: "join", room, name, token: params.get("token") || undefined }));
    $("leave").disabled = $("mute").disabled = $("camera").disabled = $("invite").disabled = false;
    $("relay").disabled = $("name").disabled = $("room").disabled = true;
    statsTimer = setInterval(() => collectStats().catch(() => {}), 1000);
  }

  function leave() {
    sendNow({ type: "leave" });
    stopCall();
    setStatus("left");
  }

  function stopCall() {
    leaving = true;
    clearTimeout(reconnectTimer);
    if (ws) ws.close(1000);
    if (oldWs) oldWs.close(1000);
    oldWs = null;
    held = [];
    for (const id of [...pcs.keys()]) closePc(id);
    if (localStream) localStream.getTracks().forEach((t) => t.stop());
    localStream = null;
    const self = document.getElementById("tile-self");
    if (self) self.remove();
    clearInterval(statsTimer);
    state.joined = false;
    $("join").disabled = false;
    $("leave").disabled = $("mute").disabled = $("camera").disabled = $("invite").disabled = true;
    $("relay").disabled = $("name").disabled = $("room").disabled = false;
  }

  /* ---- stats (for the tiles and for tests) ---- */

  async function collectStats() {
    for (const [id, e] of pcs) {
      const report = await e.pc.getStats();
      const ps = peerState(id);
      let pairId = null;
      const byId = new Map();
      report.forEach((s) => {
        byId.set(s.id, s);
        if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
      });
      if (!pairId) report.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pairId = s.id; });
      const pair = pairId && byId.get(pairId);
      if (pair) {
        const l = byId.get(pair.localCandidateId) || {}, r = byId.get(pair.remoteCandidateId) || {};
        ps.pair = {
          local: l.candidateType, remote: r.candidateType, localAddress: l.address, remoteAddress: r.address,
          localPort: l.port, remotePort: r.port, protocol: l.protocol, relayProtocol: l.relayProtocol,
          rtt: pair.currentRoundTripTime, bytesSent: pair.bytesSent, bytesReceived: pair.bytesReceived,
        };
      }
      report.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind) ps.inbound[s.kind] = { bytes: s.bytesReceived || 0, packets: s.packetsReceived || 0, lost: s.packetsLost || 0 };
        if (s.type === "outbound-rtp" && s.kind) ps.outbound[s.kind] = { bytes: s.bytesSent || 0, packets: s.packetsSent || 0 };
      });
      const net = e.tile.querySelector(".net");
      if (ps.pair) net.textContent = ps.pair.local + "/" + ps.pair.remote + (ps.pair.rtt !== undefined ? " · " + Math.round(ps.pair.rtt * 1000) + " ms" : "");
    }
    return state;
  }
  window.tsunaguStats = collectStats;
  /* Test hook: drop the signaling connection the way a network change does
   * (no leave); the page resumes and calls keep their media meanwhile. */
  window.tsunaguDropSignaling = () => { if (ws) ws.close(4000, "test drop"); };

  /* ---- controls ---- */

  $("join").onclick = join;
  $("leave").onclick = leave;
  $("mute").onclick = () => {
    if (!localStream) return;
    const on = localStream.getAudioTracks().some((t) => t.enabled);
    localStream.getAudioTracks().forEach((t) => { t.enabled = !on; });
    $("mute").textContent = on ? "Unmute" : "Mute";
    state.muted = on;
  };
  $("camera").onclick = () => {
    if (!localStream) return;
    const on = localStream.getVideoTracks().some((t) => t.enabled);
    localStream.getVideoTracks().forEach((t) => { t.enabled = !on; });
    $("camera").textContent = on ? "Camera on" : "Camera off";
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
  for (const id of ["name", "room"]) $(id).addEventListener("keydown", (ev) => { if (ev.key === "Enter") join(); });
  window.addEventListener("beforeunload", () => { if (state.joined) { leaving = true; sendNow({ type: "leave" }); } });

  $("name").value = params.get("name") || localStorage.getItem("tsunagu-name") || "";
  $("room").value = params.get("room") || "";
  $("name").addEventListener("change", () => localStorage.setItem("tsunagu-name", $("name").value));
  if (params.get("relay") === "1") $("relay").checked = true;
  if (params.get("autojoin") === "1" && $("room").value) join();
})();
