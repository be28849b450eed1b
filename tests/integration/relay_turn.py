#!/usr/bin/python3
"""relay_turn.py - TURN protocol behaviour of the real tsunagu-relay binary.

Starts tsunagu-relay on 127.0.0.1 (and ::1) with free ports and drives it
with the stdlib client of relay_stun.py: every error code the relay must
produce (400 401 403 420 437 438 440 441 442 443 486), permissions,
channels, Send/Data, ChannelData both ways, REST and static credentials,
lifetimes, TCP framing, IPv6 relaying, junk input, and the metrics that
count them. Usage: relay_turn.py PATH/TO/tsunagu-relay
"""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relay_stun import *  # noqa: E402,F401,F403

SECRET = "s3cret-for-tests"


def pair(relay, c, proto="udp", **kw):
    """Two clients with allocations on one relay."""
    a = Client(relay.addr, proto, "alice", "pa55", **kw)
    b = Client(relay.addr, proto, "bob", "w0rd", **kw)
    ma, mb = a.allocate(), b.allocate()
    c.success(ma, f"{proto}: allocate a")
    c.success(mb, f"{proto}: allocate b")
    return a, b


def test_binding_and_401(relay, c):
    cl = Client(relay.addr, "udp", "alice", "pa55")
    raw, tid = build(BINDING, REQUEST, fingerprint=True)
    cl.send_raw(raw)
    m = cl.recv_msg(tid)
    c.ok(m is not None and m.cls == SUCCESS, "binding: success without auth")
    c.ok(m is not None and m.xor(A_XOR_MAPPED) == tuple(cl.addr), "binding: XOR-MAPPED-ADDRESS")
    c.ok(m is not None and m.check_fp(), "binding: FINGERPRINT answered")
    c.ok(m is not None and not m.has(A_SOFTWARE), "binding: no SOFTWARE")

    raw, tid = build(ALLOCATE, REQUEST, [(A_REQ_TRANSPORT, bytes([17, 0, 0, 0]))])
    cl.send_raw(raw)
    m = cl.recv_msg(tid)
    c.error(m, 401, "allocate without credentials: 401")
    c.ok(m and m.has(A_REALM) and m.has(A_NONCE), "401 carries REALM and NONCE")
    c.ok(m and not m.has(A_MI) and not m.has(A_SOFTWARE), "401 has no MI and no SOFTWARE")
    c.ok(m and len(m.raw) <= 100 and len(m.raw) <= 4 * len(raw),
         f"401 small: {len(m.raw) if m else 0} bytes for a {len(raw)}-byte request")

    # amplification: only an Allocate that names its
    # transport earns the 401 with REALM and NONCE; bare requests get a
    # reply no bigger than ~1.5x
    for method, name, code in ((ALLOCATE, "bare Allocate", 400), (REFRESH, "bare Refresh", 437),
                               (CREATE_PERMISSION, "bare CreatePermission", 437),
                               (CHANNEL_BIND, "bare ChannelBind", 437)):
        raw, tid = build(method, REQUEST)
        cl.send_raw(raw)
        m = cl.recv_msg(tid)
        c.error(m, code, f"{name} without credentials: {code} before authentication")
        c.ok(m and not m.has(A_NONCE) and len(m.raw) <= 28,
             f"{name}: {len(m.raw) if m else 0}-byte answer to a {len(raw)}-byte request")

    before = relay.metric("tsunagu_relay_auth_failures_total")
    bad = Client(relay.addr, "udp", "alice", "wrong")
    c.error(bad.allocate(), 401, "wrong password: 401")
    bad2 = Client(relay.addr, "udp", "mallory", "x")
    c.error(bad2.allocate(), 401, "unknown user: 401")
    c.ok(relay.metric("tsunagu_relay_auth_failures_total") >= before + 2,
         "auth failures counted")
    for x in (cl, bad, bad2):
        x.close()


def test_malformed(relay, c):
    cl = Client(relay.addr, "udp", "alice", "pa55")
    cl.learn_nonce()
    # MI present but USERNAME missing -> 400
    raw, tid = build(ALLOCATE, REQUEST, [(A_REQ_TRANSPORT, bytes([17, 0, 0, 0])),
                                         (A_REALM, b"tsunagu"), (A_NONCE, cl.nonce)], key=cl.key)
    cl.send_raw(raw)
    c.error(cl.recv_msg(tid), 400, "MI without USERNAME: 400")
    cl.close()

    cl = Client(relay.addr, "udp", "alice", "pa55")
    c.error(cl.request(ALLOCATE, []), 400, "allocate without REQUESTED-TRANSPORT: 400")
    c.error(cl.request(ALLOCATE, [(A_REQ_TRANSPORT, bytes([6, 0, 0, 0]))]), 442,
            "REQUESTED-TRANSPORT TCP: 442")
    c.error(cl.request(ALLOCATE, [(A_REQ_TRANSPORT, bytes([17, 0, 0]))]), 400,
            "short REQUESTED-TRANSPORT: 400")
    m = cl.request(ALLOCATE, [(A_REQ_TRANSPORT, bytes([17, 0, 0, 0])), (0x7F31, b"abcd")])
    c.error(m, 420, "unknown comprehension-required attribute: 420")
    c.ok(m and m.get(A_UNKNOWN) == struct.pack("!H", 0x7F31), "420 lists UNKNOWN-ATTRIBUTES")
    c.ok(m and m.check_mi(cl.key), "authenticated 420 carries MESSAGE-INTEGRITY")
    raw, tid = build(ALLOCATE, REQUEST, [(A_REQ_TRANSPORT, bytes([17, 0, 0, 0])),
                                         (0x0031, b"xy")])
    cl.send_raw(raw)
    m = cl.recv_msg(tid)
    c.error(m, 420, "unauthenticated request with unknown attribute: 420")
    c.ok(m and len(m.raw) <= len(raw) + 16, "unauthenticated 420 stays small")
    m = cl.request(ALLOCATE, [(A_REQ_TRANSPORT, bytes([17, 0, 0, 0])), (0x8F31, b"abcd")])
    c.success(m, "unknown comprehension-optional attribute ignored")
    c.ok(m.cls == SUCCESS and m.check_mi(cl.key), "success carries valid MESSAGE-INTEGRITY")
    cl.close()


def test_allocate_semantics(relay, c):
    cl = Client(relay.addr, "udp", "alice", "pa55")
    cl.learn_nonce()
    tid = os.urandom(12)
    extra = [(A_LIFETIME, u32(777)), (A_EVEN_PORT, b"\x00"), (A_DONT_FRAGMENT, b""),
             (A_REQ_FAMILY, bytes([1, 0, 0, 0]))]
    m1 = cl.allocate(extra, tid=tid, fingerprint=True)
    c.success(m1, "allocate with LIFETIME, EVEN-PORT, DONT-FRAGMENT, FAMILY, FINGERPRINT")
    c.ok(m1.check_fp() and m1.check_mi(cl.key), "response has valid MI and FINGERPRINT")
    c.ok(m1.lifetime() == 777, f"lifetime 777 granted (got {m1.lifetime()})")
    rel = m1.xor(A_XOR_RELAYED)
    c.ok(rel and rel[0] == "127.0.0.1" and relay.lo <= rel[1] <= relay.hi and rel[1] % 2 == 0,
         f"relayed address in range and even: {rel}")
    c.ok(m1.xor(A_XOR_MAPPED) == tuple(cl.addr), "allocate: XOR-MAPPED-ADDRESS")
    m2 = cl.allocate(extra, tid=tid, fingerprint=True)
    c.ok(m2.cls == SUCCESS and m2.xor(A_XOR_RELAYED) == rel,
         "retransmitted Allocate gets the same success")
    c.error(cl.allocate(), 437, "second Allocate (new transaction): 437")
    m = cl.refresh(1200)
    c.ok(m.cls == SUCCESS and m.lifetime() == 1200, "refresh to 1200 s")
    m = cl.refresh(99999)
    c.ok(m.cls == SUCCESS and m.lifetime() == 3600, f"refresh capped at max (got {m.lifetime()})")
    m = cl.refresh(5)
    c.ok(m.cls == SUCCESS and m.lifetime() == 600, f"refresh below default -> default ({m.lifetime()})")
    c.error(cl.request(REFRESH, [(A_REQ_FAMILY, bytes([2, 0, 0, 0]))]), 443,
            "refresh with other family: 443")
    other = Client(relay.addr, "udp", "bob", "w0rd", sock=cl.sock)
    other.nonce = cl.nonce
    c.error(other.refresh(), 441, "refresh by another user: 441")
    m = cl.refresh(0)
    c.ok(m.cls == SUCCESS and m.lifetime() == 0, "refresh 0 releases")
    c.error(cl.refresh(), 437, "refresh after release: 437")
    c.error(cl.permit(("127.0.0.1", relay.lo)), 437, "CreatePermission after release: 437")
    c.error(cl.bind(0x4000, ("127.0.0.1", relay.lo)), 437, "ChannelBind after release: 437")
    m = cl.allocate()
    c.success(m, "allocate again on the released 5-tuple")
    cl.refresh(0)
    cl.close()

    n = Client(relay.addr, "udp", "alice", "pa55")
    c.error(n.refresh(), 437, "refresh without allocation: 437")
    c.error(n.permit(("127.0.0.1", 9)), 437, "CreatePermission without allocation: 437")
    n.close()

    # RFC 6156: IPv6 relayed address on request; EVEN-PORT with R bit
    v6 = Client(relay.addr, "udp", "alice", "pa55")
    m = v6.allocate([(A_REQ_FAMILY, bytes([2, 0, 0, 0]))])
    c.success(m, "allocate IPv6 relayed address")
    c.ok(m.cls == SUCCESS and m.xor(A_XOR_RELAYED)[0] == "::1", "XOR-RELAYED-ADDRESS is ::1")
    c.error(v6.permit(("127.0.0.2", 5000)), 403, "v4 private peer on v6 allocation: 403")
    v6.refresh(0)
    c.error(v6.allocate([(A_REQ_FAMILY, bytes([3, 0, 0, 0]))]), 440, "unknown family: 440")
    r = v6.allocate([(A_EVEN_PORT, b"\x80")])
    c.success(r, "EVEN-PORT with R bit")
    tok = r.get(A_RESERVATION_TOKEN)
    c.ok(tok is not None and len(tok) == 8, "RESERVATION-TOKEN returned")
    v6.refresh(0)
    if tok:
        t2 = Client(relay.addr, "udp", "alice", "pa55")
        m = t2.allocate([(A_RESERVATION_TOKEN, tok)])
        c.ok(m.cls == SUCCESS and m.xor(A_XOR_RELAYED)[1] == r.xor(A_XOR_RELAYED)[1] + 1,
             "RESERVATION-TOKEN gives the odd port")
        t2.refresh(0)
        t2.close()
    v6.close()


def test_stale_nonce(relay, c):
    cl = Client(relay.addr, "udp", "alice", "pa55")
    cl.allocate()
    cl.refresh(0)
    time.sleep(2.2)  # --nonce-ttl 2
    tid = os.urandom(12)
    raw, _ = build(ALLOCATE, REQUEST, [(A_REQ_TRANSPORT, bytes([17, 0, 0, 0])),
                                       (A_USERNAME, b"alice"), (A_REALM, b"tsunagu"),
                                       (A_NONCE, cl.nonce)], tid=tid, key=cl.key)
    cl.send_raw(raw)
    m = cl.recv_msg(tid)
    c.error(m, 438, "expired nonce: 438")
    c.ok(m and m.has(A_NONCE) and m.get(A_NONCE) != cl.nonce and m.has(A_REALM),
         "438 carries a fresh NONCE and REALM")
    c.success(cl.allocate(), "allocate with the fresh nonce")
    cl.refresh(0)
    # a nonce made for another client address is not valid here
    other = Client(relay.addr, "udp", "alice", "pa55")
    other.nonce = cl.nonce
    c.error(_one_shot(other), 438,
            "nonce of another address: 438")
    cl.close()
    other.close()


def _one_shot(cl):
    raw, tid = build(ALLOCATE, REQUEST, [(A_REQ_TRANSPORT, bytes([17, 0, 0, 0])),
                                         (A_USERNAME, b"alice"), (A_REALM, b"tsunagu"),
                                         (A_NONCE, cl.nonce)], key=cl.key)
    cl.send_raw(raw)
    return cl.recv_msg(tid)


def test_rest(relay, c):
    now = int(time.time())
    user, pw = rest_credentials(SECRET, now + 3600)
    cl = Client(relay.addr, "udp", user, pw)
    c.success(cl.allocate(), "REST credentials accepted (with static users configured)")
    cl.refresh(0)
    cl.close()
    user, pw = rest_credentials(SECRET, now + 3600, ident=None)
    cl = Client(relay.addr, "udp", user, pw)
    c.success(cl.allocate(), "REST username without :ID accepted")
    cl.refresh(0)
    cl.close()
    user, pw = rest_credentials(SECRET, now - 10)
    cl = Client(relay.addr, "udp", user, pw)
    c.error(cl.allocate(), 401, "expired REST username: 401")
    cl.close()
    user, pw = rest_credentials("other-secret", now + 3600)
    cl = Client(relay.addr, "udp", user, pw)
    c.error(cl.allocate(), 401, "REST password from another secret: 401")
    cl.close()


def test_policy(relay, c):
    cl = Client(relay.addr, "udp", "alice", "pa55")
    c.success(cl.allocate(), "allocate for policy checks")
    before = relay.metric("tsunagu_relay_permission_denied_total")
    bad = ["0.0.0.0", "127.0.0.1", "10.0.0.1", "192.168.1.1", "172.16.0.1", "169.254.1.1",
           "100.64.0.1", "224.0.0.1", "255.255.255.255", "::", "::1", "::ffff:127.0.0.1",
           "::ffff:10.0.0.1", "::127.0.0.1", "fe80::1", "fc00::1", "64:ff9b::7f00:1"]
    for ip in bad:
        c.error(cl.permit((ip, 5000)), 403, f"peer {ip}: 403")
    c.error(cl.bind(0x4100, ("127.0.0.1", 5000)), 403, "ChannelBind to loopback: 403")
    c.error(cl.permit(("127.0.0.1", relay.hi + 1)), 403,
            "own relay IP outside the relay port range: 403")
    c.ok(relay.metric("tsunagu_relay_permission_denied_total") >= before + len(bad) + 2,
         "permission_denied_total counts every refusal")
    c.success(cl.permit(("8.8.8.8", 53)), "public peer allowed")
    c.error(cl.permit(("2001:4860::8888", 53)), 443, "public v6 peer on v4 allocation: 443")
    c.error(cl.request(CREATE_PERMISSION, []), 400, "CreatePermission without peer: 400")
    cl.refresh(0)
    cl.close()

    # SSRF through the relay's own IP: a permission for
    # 127.0.0.1:<relayed port> is a permission for the IP, but Send and
    # ChannelData must still not reach the host's other ports, nor their
    # answers come back
    svc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    svc.bind(("127.0.0.1", 0))
    svc.settimeout(0.5 * TIMEOUT_MULT)
    sport = svc.getsockname()[1]
    cl = Client(relay.addr, "udp", "alice", "pa55")
    try:
        c.success(cl.allocate(), "ssrf: allocate")
        c.error(cl.permit(("127.0.0.1", sport)), 403, "ssrf: permission to a host service: 403")
        c.success(cl.permit(("127.0.0.1", relay.lo)), "ssrf: permission to a relayed port")
        before = relay.metric('tsunagu_relay_dropped_total{reason="no_permission"}') or 0
        cl.send_ind(("127.0.0.1", sport), b"GET-INTO-PRIVATE-SERVICE")
        try:
            got = svc.recvfrom(100)
        except socket.timeout:
            got = None
        c.ok(got is None, "ssrf: Send to the host's other port is not relayed", repr(got))
        svc.sendto(b"reply", ("127.0.0.1", cl.relayed[1]))
        c.ok(cl.recv_data(0.5) is None, "ssrf: a host service cannot answer into the allocation")
        after = relay.metric('tsunagu_relay_dropped_total{reason="no_permission"}') or 0
        c.ok(after >= before + 2, f"ssrf: both counted as no_permission ({before} -> {after})")
        cl.refresh(0)
    finally:
        cl.close()
        svc.close()


def test_data(relay, c, proto):
    a, b = pair(relay, c, proto)
    ra, rb = a.relayed, b.relayed
    c.success(a.permit(rb), f"{proto}: a permits b's relayed address (own address allowed)")
    a.send_ind(rb, b"dropped: b has no permission yet")
    got = b.recv_data(0.5)
    c.ok(got is None, f"{proto}: data without permission is not delivered")
    c.success(b.permit(ra), f"{proto}: b permits a's relayed address")
    a.send_ind(rb, b"hello via send")
    got = b.recv_data()
    c.ok(got == ("data", tuple(ra), b"hello via send"), f"{proto}: Send -> Data indication {got}")
    # channels
    c.error(a.bind(0x3FFF, rb), 400, f"{proto}: channel 0x3FFF: 400")
    c.error(a.bind(0x8000, rb), 400, f"{proto}: channel 0x8000: 400")
    c.error(a.bind(0x5000, rb), 400, f"{proto}: channel 0x5000 (RFC 8656 range): 400")
    c.error(a.bind(0x7FFF, rb), 400, f"{proto}: channel 0x7FFF: 400")
    c.error(a.request(CHANNEL_BIND, [(A_XOR_PEER, xor_addr(rb[0], rb[1], b"\0" * 12))]), 400,
            f"{proto}: ChannelBind without CHANNEL-NUMBER: 400")
    c.error(a.request(CHANNEL_BIND, [(A_CHANNEL_NUMBER, struct.pack("!HH", 0x4001, 0))]), 400,
            f"{proto}: ChannelBind without XOR-PEER-ADDRESS: 400")
    c.success(a.bind(0x4001, rb), f"{proto}: bind 0x4001 to b")
    c.success(a.bind(0x4001, rb), f"{proto}: rebind same pair refreshes")
    c.error(a.bind(0x4002, rb), 400, f"{proto}: same peer on another channel: 400")
    c.error(a.bind(0x4001, (rb[0], rb[1] + 1 if rb[1] < relay.hi else rb[1] - 1)), 400,
            f"{proto}: same channel to another peer: 400")
    a.send_chan(0x4001, b"odd-len via channel")  # 19 bytes: padded on TCP
    got = b.recv_data()
    c.ok(got == ("data", tuple(ra), b"odd-len via channel"),
         f"{proto}: ChannelData -> Data indication at b {got}")
    c.success(b.bind(0x4444, ra), f"{proto}: b binds 0x4444 to a")
    a.send_chan(0x4001, b"x" * 101)
    got = b.recv_data()
    c.ok(got == ("chan", 0x4444, b"x" * 101), f"{proto}: ChannelData both ways")
    b.send_chan(0x4444, b"back")
    got = a.recv_data()
    c.ok(got == ("chan", 0x4001, b"back"), f"{proto}: ChannelData b -> a")
    before = relay.metric('tsunagu_relay_dropped_total{reason="no_channel"}')
    a.send_chan(0x4999, b"unbound")
    time.sleep(0.2)
    c.ok(relay.metric('tsunagu_relay_dropped_total{reason="no_channel"}') == before + 1,
         f"{proto}: ChannelData on unbound channel dropped and counted")
    for x in (a, b):
        x.refresh(0)
        x.close()


def test_tcp_framing(relay, c):
    cl = Client(relay.addr, "tcp", "alice", "pa55")
    # two Binding requests in one write, then one split in three writes
    r1, t1 = build(BINDING, REQUEST)
    r2, t2 = build(BINDING, REQUEST)
    cl.send_raw(r1 + r2)
    m1, m2 = cl.recv_msg(t1), cl.recv_msg(t2)
    c.ok(m1 and m2 and m1.cls == SUCCESS and m2.cls == SUCCESS, "tcp: two messages in one write")
    r3, t3 = build(BINDING, REQUEST, fingerprint=True)
    for part in (r3[:3], r3[3:21], r3[21:]):
        cl.send_raw(part)
        time.sleep(0.05)
    m3 = cl.recv_msg(t3)
    c.ok(m3 is not None and m3.cls == SUCCESS, "tcp: one message split over three writes")
    c.success(cl.allocate(), "tcp: allocate")
    cl.refresh(0)
    # junk on a stream closes that connection only
    cl.send_raw(b"\xff" * 64)
    try:
        cl.sock.settimeout(2 * TIMEOUT_MULT)
        closed = cl.sock.recv(100) == b""
    except ConnectionResetError:
        closed = True
    except OSError:
        closed = False
    c.ok(closed, "tcp: junk closes the connection")
    cl.close()


def test_ipv6_listener(relay, c):
    """A client reaching the relay over IPv6 gets v4 and v6 relayed addresses;
    two v6 allocations relay to each other."""
    srv = ("::1", relay.port6)
    a = Client(srv, "udp", "alice", "pa55", family=socket.AF_INET6)
    b = Client(srv, "udp", "bob", "w0rd", family=socket.AF_INET6)
    m = a.allocate([(A_REQ_FAMILY, bytes([2, 0, 0, 0]))])
    c.success(m, "v6 client: allocate IPv6")
    c.ok(m.cls == SUCCESS and m.xor(A_XOR_MAPPED) == ("::1", a.addr[1]),
         "v6 client: XOR-MAPPED-ADDRESS is [::1]")
    c.success(b.allocate([(A_REQ_FAMILY, bytes([2, 0, 0, 0]))]), "v6 client b: allocate IPv6")
    c.success(a.permit(b.relayed), "v6: permission to own v6 relayed address")
    c.success(b.permit(a.relayed), "v6: and back")
    a.send_ind(b.relayed, b"over v6")
    got = b.recv_data()
    c.ok(got == ("data", tuple(a.relayed), b"over v6"), f"v6: Send -> Data {got}")
    for x in (a, b):
        x.refresh(0)
        x.close()
    v4 = Client(srv, "udp", "alice", "pa55", family=socket.AF_INET6)
    m = v4.allocate()
    c.ok(m.cls == SUCCESS and m.xor(A_XOR_RELAYED)[0] == "127.0.0.1",
         "v6 client: default family is IPv4")
    v4.refresh(0)
    v4.close()


A_ADD_FAMILY = 0x8000        # ADDITIONAL-ADDRESS-FAMILY (RFC 8656 s.18.11)
A_ADDR_ERROR = 0x8001        # ADDRESS-ERROR-CODE (s.18.12)


def test_dual(relay, c):
    """RFC 8656 s.7.2 dual allocation over TCP: both relayed addresses in one
    success, and closing the connection releases the one allocation (both
    sockets, one gauge unit)."""
    before = relay.metric("tsunagu_relay_allocations")
    cl = Client(relay.addr, "tcp", "alice", "pa55")
    tid = os.urandom(12)
    m = cl.allocate([(A_ADD_FAMILY, bytes([2, 0, 0, 0]))], tid=tid)
    c.success(m, "tcp: dual allocate")
    rel = [parse_xor_addr(v, m.tid) for at, v, _ in m.attrs if at == A_XOR_RELAYED] \
        if m.cls == SUCCESS else []
    c.ok([":" in h for h, _ in rel] == [False, True], f"tcp: IPv4 then IPv6 relayed {rel}")
    c.ok(m.cls == SUCCESS and not m.has(A_ADDR_ERROR), "tcp: no ADDRESS-ERROR-CODE")
    c.ok(relay.metric("tsunagu_relay_allocations") == before + 1, "one allocation in the gauge")
    cl.close()
    deadline = time.time() + 3 * TIMEOUT_MULT
    while time.time() < deadline and relay.metric("tsunagu_relay_allocations") != before:
        time.sleep(0.05)
    c.ok(relay.metric("tsunagu_relay_allocations") == before, "closing the connection releases it")
    # both relayed ports are free again: a bind to each succeeds
    for host, port in rel:
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((host, port))
            freed = True
        except OSError:
            freed = False
        finally:
            s.close()
        c.ok(freed, f"relayed port {host}:{port} closed")


def test_tcp_close_releases(relay, c):
    before = relay.metric("tsunagu_relay_allocations")
    cl = Client(relay.addr, "tcp", "alice", "pa55")
    c.success(cl.allocate(), "tcp: allocate before closing")
    c.ok(relay.metric("tsunagu_relay_allocations") == before + 1,
         "gauge counts it as soon as the success is out")
    cl.close()
    deadline = time.time() + 3 * TIMEOUT_MULT
    while time.time() < deadline and relay.metric("tsunagu_relay_allocations") != before:
        time.sleep(0.05)
    c.ok(relay.metric("tsunagu_relay_allocations") == before,
         "closing the TCP connection releases its allocation")


def test_junk(relay, c):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    rnd = os.urandom
    before = relay.metric('tsunagu_relay_dropped_total{reason="malformed"}')
    junk = [b"", b"\x00", rnd(19), rnd(20), rnd(100), rnd(1500)]
    good, _ = build(BINDING, REQUEST, fingerprint=True)
    bad_fp = bytearray(good)
    bad_fp[-1] ^= 1
    junk.append(bytes(bad_fp))
    truncated, _ = build(ALLOCATE, REQUEST, [(A_REQ_TRANSPORT, bytes([17, 0, 0, 0]))])
    for i in range(1, len(truncated)):
        junk.append(truncated[:i])
    lying = bytearray(truncated)
    struct.pack_into("!H", lying, 22, 200)  # attribute length past the end
    junk.append(bytes(lying))
    junk.append(struct.pack("!HH", 0x4001, 500) + b"short")  # ChannelData lying length
    for _ in range(200):
        junk.append(b"\x00\x01" + rnd(2) + b"\x21\x12\xa4\x42" + rnd(60))
    for j in junk:
        s.sendto(j, relay.addr)
    s.settimeout(0.5)
    answers = 0
    try:
        while True:
            s.recvfrom(2000)
            answers += 1
    except socket.timeout:
        pass
    c.ok(answers == 0, f"junk gets no answer (got {answers})")
    c.ok(relay.metric('tsunagu_relay_dropped_total{reason="malformed"}') > before,
         "malformed input counted")
    cl = Client(relay.addr, "udp", "alice", "pa55")
    raw, tid = build(BINDING, REQUEST)
    cl.send_raw(raw)
    c.ok(cl.recv_msg(tid) is not None, "relay still answers after junk")
    cl.close()
    s.close()


def test_quota(relay, c):
    cls = []
    for i in range(3):
        cl = Client(relay.addr, "udp", "quota", "q")
        c.success(cl.allocate(), f"quota user allocation {i + 1}/3")
        cls.append(cl)
    extra = Client(relay.addr, "udp", "quota", "q")
    c.error(extra.allocate(), 486, "per-user quota reached: 486")
    cls[0].refresh(0)
    c.success(extra.allocate(), "released allocation frees the per-user quota at once")
    other = Client(relay.addr, "udp", "alice", "pa55")
    c.success(other.allocate(), "another user is not limited by it")
    for x in cls[1:] + [extra, other]:
        x.refresh(0)
        x.close()
    cls[0].close()
    # REST credentials: the quota counts the ID, so fresh credentials of one
    # member (new expiry, same ID) do not multiply its quota
    now = int(time.time())
    rest = []
    for i in range(3):
        u, p = rest_credentials(SECRET, now + 1000 + i, ident="carol")
        cl = Client(relay.addr, "udp", u, p)
        c.success(cl.allocate(), f"REST carol allocation {i + 1}/3")
        rest.append(cl)
    u, p = rest_credentials(SECRET, now + 2000, ident="carol")
    more = Client(relay.addr, "udp", u, p)
    c.error(more.allocate(), 486, "REST quota counts the ID across expiries: 486")
    u, p = rest_credentials(SECRET, now + 2000, ident="dave")
    dave = Client(relay.addr, "udp", u, p)
    c.success(dave.allocate(), "another REST ID has its own quota")
    rest[0].refresh(0)
    c.success(more.allocate(), "REST quota freed at release")
    for x in rest[1:] + [more, dave]:
        x.refresh(0)
        x.close()
    rest[0].close()


def test_reservation_metric(relay, c):
    """Issue 14 item 6: an EVEN-PORT reservation holds a quota unit but is
    no allocation: tsunagu_relay_allocations leaves it out (it counted it),
    tsunagu_relay_reservations counts it."""
    def gauges():
        return (relay.metric("tsunagu_relay_allocations"),
                relay.metric("tsunagu_relay_reservations"))
    a0, r0 = gauges()
    c.ok(r0 is not None, "tsunagu_relay_reservations is exported")
    cl = Client(relay.addr, "udp", "alice", "pa55")
    m = cl.allocate([(A_EVEN_PORT, b"\x80")])
    c.success(m, "reservation metric: EVEN-PORT R allocation")
    tok = m.get(A_RESERVATION_TOKEN)
    c.ok(gauges() == (a0 + 1, (r0 or 0) + 1), f"one allocation, one reservation ({gauges()})")
    cl.refresh(0)
    c.ok(gauges() == (a0, (r0 or 0) + 1), f"released: no allocation, reservation held ({gauges()})")
    t2 = Client(relay.addr, "udp", "alice", "pa55")
    c.success(t2.allocate([(A_RESERVATION_TOKEN, tok or b"\0" * 8)]), "reservation used")
    c.ok(gauges() == (a0 + 1, r0), f"used: an allocation again, no reservation ({gauges()})")
    t2.refresh(0)
    c.ok(gauges() == (a0, r0), f"all back ({gauges()})")
    cl.close()
    t2.close()


def test_many_peers(relay, c):
    """Issue 14 item 3: a CreatePermission with more XOR-PEER-ADDRESS
    attributes than the codec indexes (40) was dropped in silence from 37
    peers on (37 + USERNAME, REALM, NONCE + MI > 40); it is answered 508
    like the 33-36 case, signed, and installs nothing."""
    cl = Client(relay.addr, "udp", "alice", "pa55")
    c.success(cl.allocate(), "many peers: allocate")
    for n in (33, 36, 37, 40, 41, 60, 200):
        m = cl.permit(*[(f"203.0.113.{i % 250 + 1}", 5000 + i) for i in range(n)])
        c.error(m, 508, f"CreatePermission with {n} peers: 508")
        c.ok(m.cls == ERROR and m.check_mi(cl.key), f"{n} peers: the 508 is signed")
    # 60 attributes naming one peer IP (one permission): still answered
    m = cl.permit(*[("203.0.113.7", 6000 + i) for i in range(60)])
    c.error(m, 508, "60 XOR-PEER-ADDRESS of one IP: 508 (over the attribute cap)")
    c.success(cl.permit(("203.0.113.9", 5000)), "one peer afterwards: success")
    # another method past the cap: 400, not silence
    m = cl.request(REFRESH, [(A_SOFTWARE, b"x")] * 45)
    c.error(m, 400, "Refresh with 45 attributes: 400")
    cl.refresh(0)
    cl.close()


def relayed_socket_opt(relay, port, family, level, opt):
    """getsockopt on the relay's relayed UDP socket bound to port, read
    through a duplicate of its fd (pidfd_getfd: we are the relay's parent,
    so ptrace rules allow it)."""
    import ctypes
    path = "/proc/net/udp6" if family == socket.AF_INET6 else "/proc/net/udp"
    inode = None
    with open(path) as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                inode = cols[9]
    if inode is None:
        raise AssertionError(f"no UDP socket on port {port} in {path}")
    pid = relay.proc.pid
    target = None
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                target = int(fd)
        except OSError:
            pass
    if target is None:
        raise AssertionError(f"relay holds no fd for socket inode {inode}")
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        fd = libc.syscall(438, pidfd, target, 0)  # SYS_pidfd_getfd
        if fd < 0:
            raise AssertionError("pidfd_getfd: " + os.strerror(ctypes.get_errno()))
    finally:
        os.close(pidfd)
    s = socket.socket(fileno=fd)
    try:
        return s.getsockopt(level, opt)
    finally:
        s.close()


def test_dont_fragment(relay, c):
    """RFC 8656 s.7.2: DONT-FRAGMENT is honoured by setting DF on the
    relayed socket, and only then."""
    IP_MTU_DISCOVER, IP_PMTUDISC_DO, IPV6_DONTFRAG = 10, 2, 62
    cl = Client(relay.addr, "udp", "alice", "pa55")
    c.success(cl.allocate([(A_DONT_FRAGMENT, b"")]), "v4 allocate with DONT-FRAGMENT")
    c.ok(relayed_socket_opt(relay, cl.relayed[1], socket.AF_INET, socket.IPPROTO_IP,
                            IP_MTU_DISCOVER) == IP_PMTUDISC_DO,
         "v4 relayed socket has IP_PMTUDISC_DO (DF set)")
    cl.refresh(0)
    cl = Client(relay.addr, "udp", "alice", "pa55")
    c.success(cl.allocate(), "v4 allocate without DONT-FRAGMENT")
    c.ok(relayed_socket_opt(relay, cl.relayed[1], socket.AF_INET, socket.IPPROTO_IP,
                            IP_MTU_DISCOVER) != IP_PMTUDISC_DO,
         "without DONT-FRAGMENT the relayed socket keeps the default")
    cl.refresh(0)
    cl = Client(relay.addr, "udp", "alice", "pa55")
    c.success(cl.allocate([(A_DONT_FRAGMENT, b""), (A_REQ_FAMILY, bytes([2, 0, 0, 0]))]),
              "v6 allocate with DONT-FRAGMENT")
    c.ok(relayed_socket_opt(relay, cl.relayed[1], socket.AF_INET6, socket.IPPROTO_IPV6,
                            IPV6_DONTFRAG) == 1,
         "v6 relayed socket has IPV6_DONTFRAG")
    cl.refresh(0)


def main():
    exe = relay_exe()
    c = Checks()
    relay = Relay(exe, "--user", "alice:pa55", "--user", "bob:w0rd", "--user", "quota:q",
                  "--auth-secret", SECRET, "--nonce-ttl", "2", "--max-allocations-per-user", "3",
                  "--threads", "3",
                  v6=True)
    try:
        test_binding_and_401(relay, c)
        test_malformed(relay, c)
        test_allocate_semantics(relay, c)
        test_rest(relay, c)
        test_policy(relay, c)
        test_data(relay, c, "udp")
        test_data(relay, c, "tcp")
        test_tcp_framing(relay, c)
        test_ipv6_listener(relay, c)
        test_tcp_close_releases(relay, c)
        test_dual(relay, c)
        test_junk(relay, c)
        test_quota(relay, c)
        test_stale_nonce(relay, c)
        test_dont_fragment(relay, c)
        test_many_peers(relay, c)
        test_reservation_metric(relay, c)
        c.ok(relay.proc.poll() is None, "relay still running")
    finally:
        if c.failed:
            print("# relay log tail:\n# " + relay.logtext().replace("\n", "\n# "))
        relay.stop()

    # a relay with no IPv6 relay address answers 440 to an IPv6 request,
    # and a global quota of 2 gives 486 to the third allocation
    r2 = Relay(exe, "--user", "alice:pa55", "--max-allocations", "2", "--threads", "1")
    try:
        cl = Client(r2.addr, "udp", "alice", "pa55")
        c.error(cl.allocate([(A_REQ_FAMILY, bytes([2, 0, 0, 0]))]), 440,
                "IPv6 requested, none available: 440")
        # a dual request gets the IPv4 half and ADDRESS-ERROR-CODE IPv6 440
        m = cl.allocate([(A_ADD_FAMILY, bytes([2, 0, 0, 0]))])
        c.success(m, "dual request on an IPv4-only relay: success")
        aec = m.get(A_ADDR_ERROR) if m.cls == SUCCESS else None
        c.ok(aec is not None and aec[0] == 2 and (aec[2] & 7) * 100 + aec[3] == 440,
             f"ADDRESS-ERROR-CODE IPv6 440 ({aec!r})")
        c.ok(m.cls == SUCCESS and sum(at == A_XOR_RELAYED for at, _, _ in m.attrs) == 1,
             "one XOR-RELAYED-ADDRESS")
        cl.refresh(0)
        cls = [Client(r2.addr, "udp", "alice", "pa55") for _ in range(3)]
        c.success(cls[0].allocate(), "global quota 1/2")
        c.success(cls[1].allocate(), "global quota 2/2")
        c.error(cls[2].allocate(), 486, "global quota reached: 486")
        cls[0].refresh(0)
        c.success(cls[2].allocate(), "released allocation frees the global quota")
        c.ok(r2.metric("tsunagu_relay_allocations") == 2, "allocations gauge is 2")
    finally:
        r2.stop()

    # allocation-default-address-family keep: an Allocate without
    # REQUESTED-ADDRESS-FAMILY (browsers, libnice) gets the family the client
    # came over; the attribute still wins; ipv6 makes IPv6 the default
    r3 = Relay(exe, "--user", "alice:pa55", "--threads", "1",
               "--allocation-default-address-family", "keep", v6=True)
    try:
        for fam, srv, want in ((socket.AF_INET6, ("::1", r3.port6), "::1"),
                               (socket.AF_INET, r3.addr, "127.0.0.1")):
            cl = Client(srv, "udp", "alice", "pa55", family=fam)
            m = cl.allocate()
            got = m.xor(A_XOR_RELAYED)[0] if m.cls == SUCCESS else m
            c.ok(got == want, f"keep: a client over {want} gets a {want} relayed address ({got})")
            cl.refresh(0)
            cl.close()
        cl = Client(("::1", r3.port6), "udp", "alice", "pa55", family=socket.AF_INET6)
        m = cl.allocate([(A_REQ_FAMILY, bytes([1, 0, 0, 0]))])
        c.ok(m.cls == SUCCESS and m.xor(A_XOR_RELAYED)[0] == "127.0.0.1",
             "keep: REQUESTED-ADDRESS-FAMILY IPv4 from an IPv6 client still wins")
        cl.refresh(0)
        cl.close()
    finally:
        r3.stop()
    r4 = Relay(exe, "--user", "alice:pa55", "--threads", "1",
               "--allocation-default-address-family", "ipv6", v6=True)
    try:
        cl = Client(r4.addr, "udp", "alice", "pa55")
        m = cl.allocate()
        c.ok(m.cls == SUCCESS and m.xor(A_XOR_RELAYED)[0] == "::1",
             "ipv6: an IPv4 client gets an IPv6 relayed address by default")
        cl.refresh(0)
        cl.close()
    finally:
        r4.stop()
    r5 = Relay(exe, "--user", "alice:pa55", "--allocation-default-address-family", "ipv5",
               start=False)
    r5.proc = subprocess.Popen([exe] + r5.args, stdout=r5.log, stderr=r5.log)
    try:
        r5.proc.wait(timeout=10 * TIMEOUT_MULT)
    finally:
        if r5.proc.poll() is None:
            r5.proc.kill()
            r5.proc.wait()
    c.ok(r5.proc.returncode == 2 and "ipv4, ipv6 or keep" in r5.logtext(),
         f"a bad allocation-default-address-family exits 2 naming the values "
         f"({r5.proc.returncode})")
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
