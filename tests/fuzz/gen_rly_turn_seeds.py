#!/usr/bin/env python3
"""Write the seed corpus of fuzz_rly_turn (tests/fuzz/corpus/rly_turn/seed-*).

Each seed is a session in the record format described at the top of
fuzz_rly_turn.c: kind:u8 len:u16be payload. Requests are written without
credentials and with the "sign" flag, so the harness appends USERNAME, REALM,
NONCE, MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT itself.

Run from anywhere:  python3 tests/fuzz/gen_rly_turn_seeds.py
Check what a seed reaches:  FUZZ_RLY_TURN_TRACE=1 build/tests/fuzz/fuzz_rly_turn_replay FILE
"""
import ipaddress
import os
import struct

COOKIE = 0x2112A442
# methods / classes (RFC 8489 s.5)
BINDING, ALLOCATE, REFRESH, SEND, CREATE_PERMISSION, CHANNEL_BIND = 1, 3, 4, 6, 8, 9
REQUEST, INDICATION = 0x0000, 0x0010
# attributes
A_CHANNEL_NUMBER, A_LIFETIME, A_XOR_PEER, A_DATA = 0x000C, 0x000D, 0x0012, 0x0013
A_REQ_FAMILY, A_EVEN_PORT, A_REQ_TRANSPORT, A_DONT_FRAGMENT = 0x0017, 0x0018, 0x0019, 0x001A
A_RESERVATION_TOKEN = 0x0022
A_ADDITIONAL_FAMILY = 0x8000

# record kinds (low 2 bits) and flags (the other six), fuzz_rly_turn.c
CLIENT, PEER, TIME, RELOAD = 0, 1, 2, 3
SIGN, REST, SHA256, NO_FP = 4, 8, 16, 32
SWEEP, TCP_GONE, FAIL_OPEN, FAIL_ATTACH, FAIL_DF, DRAIN = 1, 2, 4, 8, 16, 32

_serial = 0


def tid():
    global _serial
    _serial += 1
    return bytes([0x5A] * 11 + [_serial & 0xFF])


def attr(t, v):
    pad = (4 - len(v) % 4) % 4
    return struct.pack("!HH", t, len(v)) + v + b"\0" * pad


def xor_addr(ip, port, t):
    a = ipaddress.ip_address(ip)
    xport = port ^ (COOKIE >> 16)
    if a.version == 4:
        x = int(a) ^ COOKIE
        return struct.pack("!BBH", 0, 1, xport) + struct.pack("!I", x)
    mask = struct.pack("!I", COOKIE) + t
    raw = bytes(b ^ m for b, m in zip(a.packed, mask))
    return struct.pack("!BBH", 0, 2, xport) + raw


def msg(method, cls, attrs, t=None):
    t = t or tid()
    body = b"".join(attrs)
    typ = (method & 0xF) | ((method & 0x70) << 1) | ((method & 0xF80) << 2) | cls
    return struct.pack("!HHI", typ, len(body), COOKIE) + t + body


def rec(kind, flags, payload):
    return bytes([(flags << 2) | kind]) + struct.pack("!H", len(payload)) + payload


def client(flags, m):
    return rec(CLIENT, flags, m)


def signed(m, tuple_=0, extra=0):
    return client(SIGN | tuple_ | extra, m)


def u32(v):
    return struct.pack("!I", v)


UDP = u32(17 << 24)


def allocate(*more):
    return msg(ALLOCATE, REQUEST, [attr(A_REQ_TRANSPORT, UDP)] + list(more))


def permission(ip, port):
    t = tid()
    return msg(CREATE_PERMISSION, REQUEST, [attr(A_XOR_PEER, xor_addr(ip, port, t))], t)


def channel_bind(chan, ip, port):
    t = tid()
    return msg(CHANNEL_BIND, REQUEST, [attr(A_CHANNEL_NUMBER, struct.pack("!HH", chan, 0)),
                                       attr(A_XOR_PEER, xor_addr(ip, port, t))], t)


def send_ind(ip, port, data):
    t = tid()
    return msg(SEND, INDICATION, [attr(A_XOR_PEER, xor_addr(ip, port, t)), attr(A_DATA, data)], t)


def refresh(life, *more):
    return msg(REFRESH, REQUEST, [attr(A_LIFETIME, u32(life))] + list(more))


def chandata(chan, data, pad=True):
    p = (4 - len(data) % 4) % 4 if pad else 0
    return struct.pack("!HH", chan, len(data)) + data + b"\0" * p


def peer(alloc_id, peer_idx, data):
    return rec(PEER, 0, bytes([alloc_id | peer_idx << 3]) + data)


def advance(ms, flags=0):
    return rec(TIME, flags, u32(ms))


def seeds():
    s = {}
    # the whole UDP path: allocate, permission, channel, data both ways,
    # refresh, time passing, delete
    s["seed-udp-full"] = b"".join([
        client(0, msg(BINDING, REQUEST, [])),
        client(0, allocate()),                      # 401 (no credentials)
        signed(allocate()),
        signed(permission("203.0.113.5", 4000)),
        signed(channel_bind(0x4001, "203.0.113.6", 5000)),
        client(0, send_ind("203.0.113.5", 4000, b"hello peer")),
        client(0, chandata(0x4001, b"over the channel")),
        peer(0, 0, b"data indication back"),
        peer(0, 1, b"channel data back"),
        signed(refresh(600)),
        advance(301000, SWEEP),                     # the permission expires
        client(0, send_ind("203.0.113.5", 4000, b"dropped: no permission")),
        signed(refresh(0)),
    ])
    # a dual allocation signed with SHA-256: IPv6 peer, one family deleted
    fam6 = struct.pack("!BBH", 2, 0, 0)
    s["seed-dual-sha256"] = b"".join([
        signed(allocate(attr(A_ADDITIONAL_FAMILY, fam6)), 0, SHA256),
        signed(permission("2001:db8:1::5", 4000), 0, SHA256),
        signed(channel_bind(0x4002, "2001:db8:1::5", 4000), 0, SHA256),
        client(0, chandata(0x4002, b"v6 channel")),
        peer(0, 2, b"from the v6 peer"),
        signed(refresh(0, attr(A_REQ_FAMILY, fam6)), 0, SHA256),
        signed(permission("203.0.113.5", 4000), 0, SHA256),
        client(0, send_ind("203.0.113.5", 4000, b"v4 half lives on")),
        signed(refresh(0), 0, SHA256),
    ])
    # a TCP client with REST credentials: EVEN-PORT R, legacy channels after
    # a reload, padded ChannelData, the connection closing
    s["seed-tcp-rest"] = b"".join([
        signed(allocate(attr(A_EVEN_PORT, b"\x80")), 2, REST),
        rec(RELOAD, 1, b""),                        # legacy channels, 2000 B/s
        signed(channel_bind(0x5001, "203.0.113.5", 4000), 2, REST),
        advance(1000),                              # the bucket fills
        client(2, chandata(0x5001, b"legacy channel, padded")),
        peer(0, 0, b"back on the stream"),
        advance(1000, TCP_GONE),
        # the reserved odd port, claimed from another 5-tuple (the harness
        # puts in the token the relay handed out)
        signed(msg(ALLOCATE, REQUEST, [attr(A_REQ_TRANSPORT, UDP),
                                       attr(A_RESERVATION_TOKEN, b"\0" * 8)]), 1),
        signed(refresh(0), 1),
        signed(allocate(attr(A_EVEN_PORT, b"\x80")), 0),
        advance(31000, SWEEP),                       # this held odd port expires
    ])
    # error paths: 441, 486, 403 draining, 508 no port, 420 DF, 437, stale
    s["seed-errors"] = b"".join([
        signed(allocate()),
        signed(refresh(600), 0, REST),               # 441: another user
        rec(RELOAD, 2, b""),                         # max 1 allocation
        signed(allocate(), 1),                       # 486
        rec(RELOAD, 0, b""),
        advance(0, DRAIN),
        signed(allocate(), 1),                       # 403
        advance(0, DRAIN | FAIL_OPEN),
        signed(allocate(), 1),                       # 508
        advance(0, FAIL_OPEN | FAIL_DF),
        signed(allocate(attr(A_DONT_FRAGMENT, b"")), 1),  # 420
        signed(permission("203.0.113.5", 4000), 3),  # 437: no allocation
        signed(permission("127.0.0.1", 4000)),       # 403: policy
        signed(permission("192.0.2.100", 6379)),     # own IP, not a relayed port
        signed(channel_bind(0x3FFF, "203.0.113.5", 4000)),  # 400
        rec(RELOAD, 4, b""),                         # IPv4 only
        signed(allocate(attr(A_ADDITIONAL_FAMILY, struct.pack("!BBH", 2, 0, 0))), 1),
        signed(allocate(attr(A_REQ_FAMILY, struct.pack("!BBH", 2, 0, 0))), 3),  # 440
        rec(RELOAD, 5 | 8, b""),                     # IPv6 only; sends fail
        signed(allocate(attr(A_ADDITIONAL_FAMILY, struct.pack("!BBH", 2, 0, 0))), 3),
        signed(permission("2001:db8:1::5", 4000), 3),
        client(3, send_ind("2001:db8:1::5", 4000, b"the kernel says no")),
        rec(RELOAD, 0 | 8, b""),
        advance(86400 * 1000 + 1000, SWEEP),         # everything expires
        signed(allocate(), 0, REST),                 # REST credential expired
    ])
    # RFC 3489 Binding requests (no cookie, a 16-byte ID; RFC 8489 s.12):
    # plain, with CHANGE-REQUEST (420), with SOFTWARE (ignored), on TCP
    id16 = bytes(range(0x10, 0x20))
    plain = struct.pack("!HH", 1, 0) + id16
    chg = struct.pack("!HH", 1, 8) + id16 + struct.pack("!HHI", 3, 4, 6)
    soft = struct.pack("!HH", 1, 8) + id16 + struct.pack("!HH", 0x8022, 4) + b"nice"
    s["seed-rfc3489-binding"] = b"".join([
        client(0, plain), client(1, chg), client(2, soft), client(3, plain)])
    return s


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "rly_turn")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
