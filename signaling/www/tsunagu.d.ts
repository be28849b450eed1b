/* tsunagu.d.ts - the public API of tsunagu.js, the client library for
 * tsunagu-signal (docs/client.md is the guide, docs/protocol.md the wire).
 *
 * One TsunaguClient is one member of one room at a time: it owns the
 * signaling WebSocket (join, resume after a drop or a drain, keepalive) and
 * one RTCPeerConnection per other member (the call convention: the later
 * joiner offers; perfect negotiation with the later joiner impolite; trickle
 * ICE; ICE restart on `relays-changed` and when a media path fails). */

/** A WebSocket constructor: the browser's, or `ws` from npm in node. */
export type WebSocketLike = new (url: string) => {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: { code: number; reason?: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
};

export interface TsunaguOptions {
  /** Signaling URL. Default: ws(s)://<location.host>/ws (the page's own server). */
  url?: string;
  /** WebSocket constructor. Default: globalThis.WebSocket. */
  WebSocket?: WebSocketLike;
  /** RTCPeerConnection constructor. Default: globalThis.RTCPeerConnection.
   *  `null`: signaling only (no calls; `signal` events carry the call messages). */
  RTCPeerConnection?: (new (config?: RTCConfiguration) => RTCPeerConnection) | null;
  /** Local media sent on every call (may also be set later with setLocalStream). */
  localStream?: MediaStream | null;
  /** Send everything through TURN (iceTransportPolicy "relay"). Default false. */
  relayOnly?: boolean;
  /** Extra RTCConfiguration fields; iceServers always come from signaling. */
  rtcConfig?: Omit<RTCConfiguration, "iceServers">;
  /** A media path counts as failed after ICE stays failed/disconnected this
   *  long (ms), or when nothing arrives this long on a call whose media was
   *  flowing; then the offerer restarts ICE (fresh TURN allocations, same
   *  call). Default 2000. */
  iceRestartAfterMs?: number;
  /** First reconnect delay after a dropped signaling connection (ms, doubles
   *  up to reconnectMaxMs). Defaults 500 and 8000. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Application-level ping interval (ms); 0 turns it off. Default 20000. */
  pingIntervalMs?: number;
  /** Log sink for what the client does (one line per call). Default: none. */
  log?: (line: string) => void;
}

/** Client states. */
export type ClientState =
  | "idle"          // not joined yet
  | "connecting"    // join sent, waiting for `joined`
  | "joined"        // in the room
  | "reconnecting"  // connection lost (or draining): resuming
  | "left";         // left, kicked, or could not join; join() may be called again

/** The selected ICE candidate pair's type, as getStats() names candidate types. */
export type PairType = "host" | "srflx" | "prflx" | "relay";

export interface Member {
  id: string;
  name: string;
  /** Our role towards this member in perfect negotiation: true when we were
   *  in the room first (we yield on an offer collision). */
  polite: boolean;
  /** RTCPeerConnectionState of our call with them ("new" in signaling-only use). */
  connection: RTCPeerConnectionState;
  /** RTCIceConnectionState of that call. */
  ice: RTCIceConnectionState;
  /** Selected candidate pair, "local/remote" types, once known. */
  pair: { local: PairType; remote: PairType; protocol?: string; relayProtocol?: string;
          /** the candidates' addresses and ports, when the browser reports them */
          localAddress?: string; localPort?: number; remoteAddress?: string; remotePort?: number;
          /** the pair's byte counters (candidate-pair stats), as of the last look */
          bytesSent?: number; bytesReceived?: number } | null;
  /** The remote tracks received so far (live ones). */
  tracks: MediaStreamTrack[];
  /** ICE restarts done on this call. */
  iceRestarts: number;
}

export interface JoinInfo {
  id: string;
  room: string;
  /** Members already there (they are the ones we call). */
  peers: { id: string; name: string }[];
  iceServers: RTCIceServer[];
}

/** Error codes: the server's (docs/protocol.md "Error codes") and the client's own. */
export type ErrorCode =
  | "bad-request" | "unauthorized" | "room-full" | "unknown-peer" | "not-joined" | "too-large"
  | "rate-limited" | "kicked" | "server-busy"
  /** could not open the signaling WebSocket (or it closed before `joined`) */
  | "connect-failed"
  /** a resume was refused: we joined again as a new member (new id) */
  | "resume-failed"
  /** the browser refused the ICE servers signaling gave (RTCPeerConnection constructor) */
  | "ice-servers-refused"
  /** an offer/answer step failed */
  | "negotiation-failed"
  /** ICE found no path (or a path died and restarts did not bring it back) */
  | "ice-failed"
  /** getUserMedia failed (switchDevice) */
  | "media"
  /** join() without a room: no `room` option and no `room` claim in the token */
  | "no-room";

export interface TsunaguErrorInfo {
  code: ErrorCode | string;
  /** The server's message, or the client's technical one. */
  message: string;
  /** A sentence a user can read ("the room \"r\" is full"). For an error of
   *  one call (peerId set) it says what failed without naming the member
   *  ("no network path (ICE failed); ICE server errors: turn:h:3478 701 ...
   *  (relay only needs ... tsunagu-turncheck)"): the app says whose call. */
  reason: string;
  /** The member whose call it is about, if any. */
  peerId?: string;
  /** True when the client is out of the room because of it (state "left"). */
  fatal: boolean;
}

/** What join() rejects with. */
export class TsunaguError extends Error implements TsunaguErrorInfo {
  code: ErrorCode | string;
  reason: string;
  peerId?: string;
  fatal: boolean;
}

export interface RtpStats {
  /** bits per second over the last second or more: against the newest earlier
   *  stats() look at least 1 s old, else the oldest kept (0 on the first call) */
  bitrateIn: number;
  bitrateOut: number;
  packetsReceived: number;
  packetsLost: number;
  /** outbound-rtp packetsSent */
  packetsSent: number;
  /** percent of packets lost over the same window as the bitrates */
  lossPercent: number;
  /** ms, from inbound-rtp */
  jitterMs: number | null;
  bytesReceived: number;
  bytesSent: number;
}

export interface MemberStats {
  id: string;
  name: string;
  connection: RTCPeerConnectionState;
  /** The selected pair in one word for users: "relay" when either end is
   *  relayed, else "srflx"/"prflx" when either end is, else "host". */
  pairType: PairType | null;
  pair: Member["pair"];
  /** ms, the selected pair's currentRoundTripTime (or remote-inbound-rtp's) */
  rttMs: number | null;
  /** Totals over all tracks of the call. */
  bitrateIn: number;
  bitrateOut: number;
  lossPercent: number;
  jitterMs: number | null;
  audio: RtpStats | null;
  video: RtpStats | null;
}

export interface TsunaguEvents {
  /** state changes: joined, reconnecting, left ... */
  state: { state: ClientState; previous: ClientState };
  /** `joined` (also after a refused resume, with a new id) */
  joined: JoinInfo;
  /** resumed after a drop or a drain: same id, calls kept */
  resumed: { id: string; peers: { id: string; name: string }[] };
  /** the member list changed (joined, left, name); the full list of the others */
  members: Member[];
  "member-joined": Member;
  "member-left": Member;
  /** a remote track arrived (an ICE restart keeps tracks; a new one is a renegotiation) */
  track: { peerId: string; track: MediaStreamTrack; streams: readonly MediaStream[] };
  /** a remote track ended (the member left or removed it) */
  "track-removed": { peerId: string; track: MediaStreamTrack };
  /** one call's state, with the selected pair's type once connected */
  connection: {
    peerId: string;
    connection: RTCPeerConnectionState;
    ice: RTCIceConnectionState;
    pairType: PairType | null;
    pair: Member["pair"];
  };
  /** an ICE restart began (reason: "relays-changed", "path-failed" or "api") */
  "ice-restart": { peerId: string; reason: string };
  /** the server announced it is draining (`server-busy` with `drain`) */
  drain: { mode: string };
  /** application data from send()/broadcast() of another member */
  message: { from: string; data: unknown; broadcast: boolean };
  /** every incoming `signal` as received (call messages included) */
  signal: { from: string; data: unknown };
  error: TsunaguErrorInfo;
}

export class TsunaguClient {
  constructor(options?: TsunaguOptions);

  readonly state: ClientState;
  /** our peer id (null before joined) */
  readonly id: string | null;
  readonly room: string | null;
  readonly name: string | null;
  readonly iceServers: RTCIceServer[];
  /** the other members, in join order */
  readonly members: Member[];
  readonly localStream: MediaStream | null;

  /** Join the room named by the token's `room` claim (or opts.room; open
   *  servers take token null). Resolves on `joined`; rejects with a
   *  TsunaguError (unauthorized, room-full, server-busy, connect-failed...;
   *  not-joined when leave() came first). */
  join(token: string | null, name?: string, opts?: { room?: string }): Promise<JoinInfo>;
  /** Leave the room (the others see peer-left); calls close. Local tracks are
   *  not stopped (they are the app's). join() may be called again. */
  leave(): void;

  /** Subscribe; returns the unsubscribe function. */
  on<K extends keyof TsunaguEvents>(type: K, fn: (ev: TsunaguEvents[K]) => void): () => void;
  off<K extends keyof TsunaguEvents>(type: K, fn: (ev: TsunaguEvents[K]) => void): void;

  /** Set (or replace) the media sent on every call: tracks of the same kind
   *  are swapped with replaceTrack, new kinds are added (renegotiation). */
  setLocalStream(stream: MediaStream | null): Promise<void>;
  /** Mute/unmute our audio or video (track.enabled; no renegotiation). */
  setMuted(kind: "audio" | "video", muted: boolean): void;
  isMuted(kind: "audio" | "video"): boolean;
  /** Send `track` instead of our current track of its kind on every call (replaceTrack). */
  replaceTrack(track: MediaStreamTrack): Promise<void>;
  /** getUserMedia for that device, replaceTrack, stop the old track; resolves to the new track. */
  switchDevice(kind: "audio" | "video", deviceId: string): Promise<MediaStreamTrack>;

  /** Restart ICE on one call (or all): fresh candidates and allocations. */
  restartIce(peerId?: string): void;

  /** Application data through signaling, in order, to one member ... */
  send(to: string, data: unknown): void;
  /** ... or to every other member. */
  broadcast(data: unknown): void;

  /** Per member: bitrate, loss, jitter, RTT and pair type from getStats(). */
  stats(): Promise<Record<string, MemberStats>>;

  /** Drop the signaling connection as a network change does (no leave):
   *  the client resumes. For tests and demos. */
  dropConnection(): void;
}

export default TsunaguClient;
