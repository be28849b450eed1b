// fakepc.mjs - a stand-in RTCPeerConnection for node, just enough of the
// JSEP state machine to drive tsunagu.js's call logic (who offers, perfect
// negotiation, trickle ICE, ICE restart, replaceTrack, stats) through a real
// tsunagu-signal. No media and no real ICE: "connected" comes a tick after
// both descriptions are set (unless the test broke the path). The browser
// tests (Chromium, Firefox) check the same logic against real WebRTC.

let seq = 0;

export class FakeTrack {
  constructor(kind) {
    this.kind = kind;
    this.id = kind + "-" + ++seq;
    this.enabled = true;
    this.stopped = false;
  }
  stop() { this.stopped = true; }
  addEventListener() {}
}

export class FakeStream {
  constructor(tracks) { this._t = [...tracks]; }
  getTracks() { return [...this._t]; }
  addTrack(t) { this._t.push(t); }
  removeTrack(t) { this._t = this._t.filter((x) => x !== t); }
}

const ufragOf = (sdp) => (/ufrag=(\S+)/.exec(sdp) || [])[1];
const tick = () => new Promise((r) => setTimeout(r, 1));

export class FakePC {
  static all = [];

  constructor(config) {
    FakePC.all.push(this);
    this.configs = [config];
    this.signalingState = "stable";
    this.connectionState = "new";
    this.iceConnectionState = "new";
    this.localDescription = null;
    this.remoteDescription = null;
    this.remoteCandidates = [];
    this.offersMade = 0;
    this.answersMade = 0;
    this.rollbacks = 0;
    this.restartIceCalls = 0;
    this.broken = false; // a dead path: ICE "failed" instead of "connected"
    this.live = false; // media flows: inbound bytes grow with time (the watchdog's input)
    this.frozen = false; // media stopped while ICE still says connected (a relay just died)
    this._liveBytes = 0;
    this._trs = [];
    this._ufrag = null;
    this._remoteUfrag = null;
    this._dirty = false;
    this._restart = false;
    this._negQueued = false;
    this._bytes = 0;
    this.statsStep = 0;
  }

  _fire(name, ev) {
    const fn = this["on" + name];
    if (fn) fn(ev || {});
  }

  _queueNeg() {
    this._dirty = true;
    if (this._negQueued) return;
    this._negQueued = true;
    setTimeout(() => {
      this._negQueued = false;
      if (this.signalingState === "stable" && this._dirty) this._fire("negotiationneeded");
    }, 0);
  }

  _tr(kind, direction, track) {
    const tr = {
      direction, stopped: false, receiver: { track: new FakeTrack(kind) },
      sender: { track: track || null, async replaceTrack(t) { this.track = t; }, setStreams() {} },
    };
    this._trs.push(tr);
    this._queueNeg();
    return tr;
  }

  addTrack(track) { return this._tr(track.kind, "sendrecv", track).sender; }
  addTransceiver(kind, init) { return this._tr(kind, (init && init.direction) || "sendrecv"); }
  getTransceivers() { return [...this._trs]; }
  getSenders() { return this._trs.map((t) => t.sender); }
  setConfiguration(c) { this.configs.push(c); }
  restartIce() { this.restartIceCalls++; this._restart = true; this._queueNeg(); }

  _gather() {
    // a new ufrag means a new gathering: two candidates, then the end
    const u = this._ufrag;
    setTimeout(() => {
      for (let i = 0; i < 2; i++) {
        const c = { candidate: "candidate:" + i + " 1 udp 1 127.0.0.1 " + (9000 + i) + " typ host ufrag " + u,
          sdpMid: "0", sdpMLineIndex: 0 };
        this._fire("icecandidate", { candidate: { toJSON: () => c } });
      }
      this._fire("icecandidate", { candidate: null });
    }, 2);
  }

  _stable() {
    this.signalingState = "stable";
    this._dirty = false;
    this._restart = false;
    setTimeout(() => {
      if (this.signalingState === "closed") return;
      const to = this.broken ? "failed" : "connected";
      if (this.iceConnectionState !== to) {
        this.iceConnectionState = to;
        this._fire("iceconnectionstatechange");
      }
      if (this.connectionState !== to) {
        this.connectionState = to;
        this._fire("connectionstatechange");
      }
    }, 3);
  }

  async setLocalDescription() {
    await tick();
    if (this.signalingState === "closed") throw new Error("InvalidStateError: closed");
    const kinds = this._trs.map((t) => t.receiver.track.kind).join(",");
    let newUfrag = false;
    if (this.signalingState === "stable" || this.signalingState === "have-local-offer") {
      if (!this._ufrag || this._restart) {
        this._ufrag = "u" + ++seq;
        newUfrag = true;
      }
      this.offersMade++;
      this.localDescription = { type: "offer", sdp: "v=0 fake offer " + this.offersMade + " ufrag=" + this._ufrag + " m=" + kinds };
      this.signalingState = "have-local-offer";
    } else if (this.signalingState === "have-remote-offer") {
      if (!this._ufrag || this._remoteRestarted) {
        this._ufrag = "u" + ++seq;
        newUfrag = true;
      }
      this._remoteRestarted = false;
      this.answersMade++;
      this.localDescription = { type: "answer", sdp: "v=0 fake answer ufrag=" + this._ufrag + " m=" + kinds };
      this._stable();
    }
    if (newUfrag) this._gather();
  }

  async setRemoteDescription(d) {
    await tick();
    if (d.type === "offer") {
      if (this.signalingState === "have-local-offer") {
        this.rollbacks++; // implicit rollback (the polite end)
        this.localDescription = null;
      }
      const u = ufragOf(d.sdp);
      this._remoteRestarted = !!this._remoteUfrag && u !== this._remoteUfrag;
      this._remoteUfrag = u;
      this.remoteDescription = d;
      this.signalingState = "have-remote-offer";
      this._tracksOf(d.sdp, true);
    } else if (d.type === "answer") {
      if (this.signalingState !== "have-local-offer") throw new Error("InvalidStateError: answer in " + this.signalingState);
      this._remoteUfrag = ufragOf(d.sdp);
      this.remoteDescription = d;
      this._tracksOf(d.sdp, false);
      this._stable();
    }
  }

  // a track event per m-line kind the remote side has, once per transceiver;
  // "sends" here means what the m-line lists (a fake: every m-line sends)
  _tracksOf(sdp, mayCreate) {
    const kinds = (/m=(\S+)/.exec(sdp) || [])[1] || "";
    for (const kind of kinds.split(",").filter(Boolean)) {
      if (this._trs.some((t) => t.receiver.track.kind === kind && t.fired)) continue;
      let tr = this._trs.find((t) => t.receiver.track.kind === kind && !t.fired);
      if (!tr) {
        if (!mayCreate) continue;
        tr = { direction: "recvonly", stopped: false, receiver: { track: new FakeTrack(kind) },
          sender: { track: null, async replaceTrack(t) { this.track = t; }, setStreams() {} } };
        this._trs.push(tr);
      }
      tr.fired = true;
      this._fire("track", { track: tr.receiver.track, streams: [] });
    }
  }

  async addIceCandidate(c) {
    await tick();
    if (!this.remoteDescription) throw new Error("InvalidStateError: no remote description");
    this.remoteCandidates.push(c === undefined ? null : c);
  }

  // statsStep 0 then 1 give: 100 packets then 190 received and 10 lost (10 %),
  // 4 ms jitter, 12 ms RTT, a relay/host pair
  async getStats() {
    await tick();
    const n = this.statsStep || 0; // set by the test
    const m = new Map();
    const add = (o) => m.set(o.id, o);
    add({ id: "T", type: "transport", selectedCandidatePairId: "CP" });
    add({ id: "CP", type: "candidate-pair", localCandidateId: "L", remoteCandidateId: "R", state: "succeeded",
      nominated: true, currentRoundTripTime: 0.012 });
    add({ id: "L", type: "local-candidate", candidateType: "relay", protocol: "udp", relayProtocol: "udp" });
    add({ id: "R", type: "remote-candidate", candidateType: "host", protocol: "udp" });
    add({ id: "IA", type: "inbound-rtp", kind: "audio", bytesReceived: 10000 + n * 4000, packetsReceived: 100 + n * 90,
      packetsLost: n * 10, jitter: 0.004 });
    if (this.live) {
      if (!this.frozen && this.connectionState === "connected") this._liveBytes += 1000;
      add({ id: "IV", type: "inbound-rtp", kind: "video", bytesReceived: this._liveBytes, packetsReceived: this._liveBytes / 1000,
        packetsLost: 0, jitter: 0.001 });
    }
    add({ id: "OA", type: "outbound-rtp", kind: "audio", bytesSent: 20000 + n * 8000, packetsSent: 100 + n * 100 });
    return m;
  }

  close() {
    this.signalingState = "closed";
    this.connectionState = "closed";
    this.iceConnectionState = "closed";
  }
}
