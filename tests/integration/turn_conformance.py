#!/usr/bin/python3
"""Black-box RFC 8656 / RFC 8489 / RFC 6156 conformance checks for a TURN server.

The server is started by someone else; this client only takes the facts it needs
as flags (address, credentials, realm, which peer address the server allows, whether
it has an IPv6 relay address, its per-user quota). Every check prints
`PASS name` or `FAIL name: why`; the last line is `N passed, M failed`.
Exit status 1 when any check failed, 2 on a usage error.

See docs/conformance.md for the list of checks, the RFC rules each one enforces,
and the decisions taken where the RFCs leave room.
"""

import argparse
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import turnclient as t  # noqa: E402


class Fail(Exception):
    pass


def need(cond, why):
    if not cond:
        raise Fail(why)


def desc(resp):
    if resp is None:
        return "no response"
    s = resp.name()
    if resp.cls == t.ERROR and resp.error_reason():
        s += " (%s)" % resp.error_reason()
    return s


def expect_success(resp, what):
    need(resp is not None and resp.cls == t.SUCCESS, "%s: expected success, got %s" % (what, desc(resp)))
    return resp


def expect_error(resp, code, what):
    codes = code if isinstance(code, (tuple, list)) else (code,)
    need(resp is not None and resp.cls == t.ERROR and resp.error_code() in codes,
         "%s: expected error %s, got %s" % (what, "/".join(map(str, codes)), desc(resp)))
    return resp


def split_hostport(s):
    if s.startswith("["):
        host, _, port = s[1:].partition("]:")
    else:
        host, _, port = s.rpartition(":")
    return host, int(port)


class Peer:
    """A real UDP socket playing the peer on the far side of the relay."""

    def __init__(self, ip):
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.addr = self.sock.getsockname()[:2]

    def recv(self, timeout):
        self.sock.settimeout(max(0.01, timeout))
        try:
            data, src = self.sock.recvfrom(65536)
            return data, src[:2]
        except (socket.timeout, BlockingIOError):
            return None

    def sendto(self, data, addr):
        self.sock.sendto(data, addr)

    def close(self):
        self.sock.close()


class Suite:
    def __init__(self, args):
        self.args = args
        self.server = split_hostport(args.server)
        self.user, _, self.password = (args.user or ":").partition(":")
        self.secret = args.secret
        self.realm = args.realm
        self.results = []
        self.clients = []
        self.retired = []        # released clients, sockets closed at the end of the run
        self.peers = []
        self.auth_log = []       # (request name, response, key) of every authenticated transaction
        self.transactions = 0
        self.current = "none"
        self.tag = os.urandom(3).hex()    # REST usernames differ between runs, too
        self.rest_expiry = int(time.time()) + 3600

    # -- helpers
    def cred(self, kind=None, ident=None):
        kind = kind or self.args.bulk_cred
        if kind == "rest":
            need(self.secret, "no --secret given")
            # One REST username per check by default, so a server that frees quota late
            # (coturn: ~1 s after Refresh 0) fails only the quota check, not every later one.
            return t.rest_credentials(self.secret, self.rest_expiry, ident or "c-%s-%s" % (self.current, self.tag))
        need(self.user, "no --user given")
        return self.user, self.password

    def w(self, seconds):
        """A wait scaled by --time-mult (sanitizer builds are slower)."""
        return seconds * self.args.time_mult

    def cred_v(self, suffix):
        """The bulk credential; with REST, a username of its own for this part of the check."""
        if self.args.bulk_cred == "rest":
            return self.cred("rest", "c-%s-%s-%s" % (self.current, suffix, self.tag))
        return self.cred()

    def log(self, req, resp, key):
        self.transactions += 1
        if key is not None:
            # the request chose a PASSWORD-ALGORITHM: MESSAGE-INTEGRITY-SHA256 is due
            self.auth_log.append((req.name(), resp, key, req.has(t.PASSWORD_ALGORITHM)))

    def client(self, cred=None, tcp=False, pwalg=None, mi256_len=32):
        user, pw = cred if cred else self.cred()
        c = t.Client(self.server, user, pw, tcp=tcp, timeout=self.args.timeout, log=self.log,
                     pwalg=pwalg, mi256_len=mi256_len)
        self.clients.append(c)
        return c

    def peer(self, ip=None):
        p = Peer(ip or self.args.peer_ip)
        self.peers.append(p)
        return p

    def allocated(self, cred=None, tcp=False, pwalg=None, **kw):
        c = self.client(cred, tcp, pwalg=pwalg)
        expect_success(c.allocate(**kw), "Allocate")
        need(c.relayed is not None, "Allocate success without XOR-RELAYED-ADDRESS")
        return c

    def cleanup(self):
        for c in self.clients:
            try:
                if c.relayed is not None and c.nonce is not None:
                    c.request(t.Message(t.REFRESH).add_u32(t.LIFETIME, 0), timeout=0.5)
            except (OSError, t.StunError):
                pass
            # Keep the socket open until the run ends: were its port handed to a later
            # client, a server that deletes late (coturn, ~1 s) would see that client on
            # a 5-tuple still allocated and answer 437.
            self.retired.append(c)
        for p in self.peers:
            p.close()
        self.clients, self.peers = [], []

    def run(self, name, fn):
        t0 = time.monotonic()
        self.current = name
        try:
            note = fn()
            ok, why = True, note or ""
        except Fail as e:
            ok, why = False, str(e)
        except Exception as e:  # noqa: BLE001 - a strange answer must fail the check, not stop the suite
            ok, why = False, "%s: %s" % (type(e).__name__, e)
        finally:
            self.cleanup()
        dt = time.monotonic() - t0
        self.results.append({"name": name, "ok": ok, "why": why, "seconds": round(dt, 3)})
        if ok:
            print("PASS %s%s" % (name, (" (%s)" % why) if why and self.args.verbose else ""), flush=True)
        else:
            print("FAIL %s: %s" % (name, why), flush=True)

    # ================================================================ checks

    def check_binding_no_auth(self):
        c = self.client()
        r = expect_success(c.request(t.Message(t.BINDING), auth=False), "Binding")
        xm = r.get_xor(t.XOR_MAPPED_ADDRESS)
        need(xm is not None, "no XOR-MAPPED-ADDRESS in Binding success")
        need(tuple(xm) == tuple(c.local()), "XOR-MAPPED-ADDRESS %s != our address %s" % (xm, c.local()))

    def check_fingerprint_echoed(self):
        c = self.client()
        r = expect_success(c.request(t.Message(t.BINDING), auth=False, fingerprint=True), "Binding+FINGERPRINT")
        need(r.verify_fingerprint() is True, "Binding response FINGERPRINT %s" %
             ("missing" if r.verify_fingerprint() is None else "invalid"))
        r = expect_success(c.allocate(fingerprint=True), "Allocate+FINGERPRINT")
        need(r.verify_fingerprint() is True, "Allocate response FINGERPRINT %s" %
             ("missing" if r.verify_fingerprint() is None else "invalid"))
        need(r.verify_integrity(c.key()) is True, "Allocate response MESSAGE-INTEGRITY not valid before FINGERPRINT")

    def check_allocate_no_credentials_401(self):
        c = self.client()
        req = t.Message(t.ALLOCATE).add(t.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))
        data = req.encode()
        r = c.raw_exchange(data, req.txid)
        expect_error(r, 401, "Allocate without credentials")
        need(r.get_str(t.REALM) == self.realm, "401 REALM %r, expected %r" % (r.get_str(t.REALM), self.realm))
        need(r.get(t.NONCE), "401 without NONCE")
        need(not r.has(t.XOR_RELAYED_ADDRESS), "401 carries XOR-RELAYED-ADDRESS")
        need(len(r.raw) <= self.args.max_unauth_response,
             "401 is %d bytes for a %d-byte request (bound %d)" % (len(r.raw), len(data), self.args.max_unauth_response))
        return "%d-byte request -> %d-byte 401 (x%.1f)" % (len(data), len(r.raw), len(r.raw) / len(data))

    def check_allocate_wrong_password_401(self):
        user, _ = self.cred()
        c = self.client((user, "definitely-not-the-password"))
        expect_error(c.allocate(), 401, "Allocate with a wrong password")
        c2 = self.client(("no-such-user-xyz", "whatever"))
        expect_error(c2.allocate(), 401, "Allocate with an unknown user")

    def check_forged_nonce_438(self):
        c = self.client()
        # learn realm (and a real nonce) first
        expect_error(c.request(t.Message(t.ALLOCATE).add(t.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0])),
                               auth=False), 401, "first Allocate")
        c.realm = self.realm
        forged = "forged-nonce-" + os.urandom(8).hex()
        c.nonce = forged
        m = t.Message(t.ALLOCATE).add(t.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))
        r = c.request(m, retry_auth=False)
        expect_error(r, 438, "Allocate with a forged NONCE")
        fresh = r.get_str(t.NONCE)
        need(fresh and fresh != forged, "438 without a fresh NONCE (got %r)" % fresh)
        need(r.get_str(t.REALM) == self.realm, "438 without REALM %r" % self.realm)
        c.nonce = fresh
        expect_success(c.allocate(), "Allocate with the NONCE from 438")

    def check_stale_nonce_438(self):
        lt = self.args.nonce_lifetime
        c = self.allocated()
        time.sleep(lt + 1.0)
        old = c.nonce
        r = c.request(t.Message(t.REFRESH).add_u32(t.LIFETIME, 600), retry_auth=False)
        expect_error(r, 438, "Refresh with a nonce older than %ss" % lt)
        need(r.get_str(t.NONCE) and r.get_str(t.NONCE) != old, "438 without a fresh NONCE")
        c.nonce = r.get_str(t.NONCE)
        expect_success(c.refresh(600), "Refresh with the fresh NONCE")

    def check_allocate_success_fields(self):
        c = self.client()
        r = expect_success(c.allocate(), "Allocate (%s credentials)" % self.args.bulk_cred)
        rel = r.get_xor(t.XOR_RELAYED_ADDRESS)
        need(rel is not None, "no XOR-RELAYED-ADDRESS")
        need(":" not in rel[0], "relayed address %s is not IPv4 though no family was requested" % (rel,))
        need(rel[0] != "0.0.0.0" and rel[1] != 0, "relayed address %s:%d is not usable" % rel)
        xm = r.get_xor(t.XOR_MAPPED_ADDRESS)
        need(xm is not None and tuple(xm) == tuple(c.local()),
             "XOR-MAPPED-ADDRESS %s != our address %s" % (xm, c.local()))
        lt = r.get_u32(t.LIFETIME)
        need(lt is not None and 0 < lt <= self.args.max_lifetime, "LIFETIME %s not in 1..%d" % (lt, self.args.max_lifetime))
        mi = r.verify_integrity(c.key())
        need(mi is True, "MESSAGE-INTEGRITY %s" % ("missing" if mi is None else "does not verify with the long-term key"))
        return "relayed %s:%d lifetime %d" % (rel[0], rel[1], lt)

    def check_rest_credentials(self):
        c = self.client(self.cred("rest", "alice"))
        r = expect_success(c.allocate(), "Allocate with REST credentials")
        need(r.verify_integrity(c.key()) is True, "MESSAGE-INTEGRITY does not verify with the REST password")
        user, pw = t.rest_credentials(self.secret, int(time.time()) - 60, "alice")
        c2 = self.client((user, pw))
        expect_error(c2.allocate(), 401, "Allocate with an expired REST username")
        user, pw = t.rest_credentials(self.secret + "x", int(time.time()) + 3600, "alice")
        c3 = self.client((user, pw))
        expect_error(c3.allocate(), 401, "Allocate with a REST password made with another secret")

    def check_static_and_rest_together(self):
        a = self.client(self.cred("user"))
        ra = a.allocate()
        b = self.client(self.cred("rest", "bob"))
        rb = b.allocate()
        bad = []
        if ra is None or ra.cls != t.SUCCESS:
            bad.append("static user: %s" % desc(ra))
        if rb is None or rb.cls != t.SUCCESS:
            bad.append("REST username: %s" % desc(rb))
        need(not bad, "both credential kinds on one server: " + "; ".join(bad))

    def check_other_user_441(self):
        c = self.allocated()
        other = self.cred("rest", "mallory")
        need(other[0] != c.user, "need a second username")
        mine = (c.user, c.password)
        c.user, c.password = other
        try:
            r = c.request(t.Message(t.REFRESH).add_u32(t.LIFETIME, 600))
        finally:
            c.user, c.password = mine      # so the clean-up can release the allocation
        expect_error(r, 441, "Refresh on the allocation's 5-tuple by another valid user")

    def check_requested_transport_tcp_442(self):
        # A server implementing RFC 6062 (TCP relaying) would answer 400 over UDP; the
        # servers under test do not relay TCP, so 442 is the one right answer.
        c = self.client()
        expect_error(c.allocate(transport=t.PROTO_TCP), 442, "Allocate REQUESTED-TRANSPORT 6 (TCP) over UDP")
        if self.args.tcp_too:
            c = self.client(tcp=True)
            expect_error(c.allocate(transport=t.PROTO_TCP), 442, "Allocate REQUESTED-TRANSPORT 6 (TCP) over TCP")

    def check_requested_transport_missing_400(self):
        c = self.client()
        expect_error(c.allocate(transport=None), 400, "Allocate without REQUESTED-TRANSPORT")

    def check_unknown_attribute_420(self):
        c = self.client()
        r = c.request(t.Message(t.BINDING).add(0x0031, b"\x01\x02\x03\x04"), auth=False)
        expect_error(r, 420, "Binding with comprehension-required attribute 0x0031")
        need(0x0031 in (r.unknown_attributes() or []), "Binding 420 UNKNOWN-ATTRIBUTES %s lacks 0x0031" %
             r.unknown_attributes())
        r = c.allocate(extra=[(0x0031, b"\0\0\0\0")])
        expect_error(r, 420, "Allocate with comprehension-required attribute 0x0031")
        need(0x0031 in (r.unknown_attributes() or []), "Allocate 420 UNKNOWN-ATTRIBUTES %s lacks 0x0031" %
             r.unknown_attributes())
        need(not r.has(t.XOR_RELAYED_ADDRESS), "420 carries an allocation")

    def check_unknown_optional_ignored(self):
        c = self.client()
        expect_success(c.allocate(extra=[(0x8031, b"opt!")]), "Allocate with comprehension-optional 0x8031")

    def check_even_port(self):
        # 7.2: EVEN-PORT with R=0 asks for an even relayed port (turnutils_uclient sends it)
        c = self.client()
        r = expect_success(c.allocate(extra=[(t.EVEN_PORT, b"\x00")]), "Allocate with EVEN-PORT (R=0)")
        rel = r.get_xor(t.XOR_RELAYED_ADDRESS)
        need(rel is not None and rel[1] % 2 == 0, "EVEN-PORT asked, relayed port is %s" % (rel,))
        need(not r.has(t.RESERVATION_TOKEN), "RESERVATION-TOKEN returned though R=0")
        return "relayed port %d" % rel[1]

    def check_allocate_again_437(self):
        c = self.allocated()
        r = c.allocate()
        expect_error(r, 437, "second Allocate on the same 5-tuple (new transaction id)")

    def check_allocate_retransmit(self):
        c = self.client()
        m = t.Message(t.ALLOCATE).add(t.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))
        r = expect_success(c.request(m), "Allocate")   # 401 round trip handled inside
        rel = r.get_xor(t.XOR_RELAYED_ADDRESS)
        c.relayed = rel
        # the very same bytes (transaction id, NONCE, MESSAGE-INTEGRITY), as a UDP retransmission carries
        data = t.Message(t.ALLOCATE, txid=m.txid, attrs=m.attrs).encode(key=c.key())
        r2 = c.raw_exchange(data, m.txid)
        expect_success(r2, "retransmitted Allocate (same transaction id)")
        rel2 = r2.get_xor(t.XOR_RELAYED_ADDRESS)
        need(rel2 == rel, "retransmission answered with relayed %s, first answer %s" % (rel2, rel))

    def check_refresh_zero_deletes(self):
        c = self.allocated()
        r = expect_success(c.refresh(0), "Refresh LIFETIME 0")
        lt = r.get_u32(t.LIFETIME)
        need(lt in (None, 0), "Refresh 0 success says LIFETIME %s" % lt)
        expect_error(c.refresh(600), 437, "Refresh after deletion")
        expect_error(c.create_permission((self.args.peer_ip, 9)), 437, "CreatePermission after deletion")
        expect_error(c.channel_bind(0x4000, (self.args.peer_ip, 9)), 437, "ChannelBind after deletion")
        expect_success(c.allocate(), "new Allocate on the released 5-tuple")

    def check_lifetime_capped(self):
        c = self.client()
        r = expect_success(c.allocate(lifetime=10 * 86400), "Allocate LIFETIME 864000")
        lt = r.get_u32(t.LIFETIME)
        need(lt is not None and 0 < lt <= self.args.max_lifetime,
             "Allocate asked 864000 s, got LIFETIME %s (max %d)" % (lt, self.args.max_lifetime))
        r = expect_success(c.refresh(0xFFFFFFFF), "Refresh LIFETIME 0xffffffff")
        lt2 = r.get_u32(t.LIFETIME)
        need(lt2 is not None and 0 < lt2 <= self.args.max_lifetime,
             "Refresh asked 4294967295 s, got LIFETIME %s (max %d)" % (lt2, self.args.max_lifetime))
        return "capped to %d / %d" % (lt, lt2)

    def check_send_data_indication(self):
        c = self.allocated()
        p = self.peer()
        expect_success(c.create_permission(p.addr), "CreatePermission %s" % (p.addr,))
        payload = b"hello peer " + os.urandom(8)
        c.send_indication(p.addr, payload)
        got = p.recv(self.w(1.0))
        need(got is not None, "peer %s received nothing after a Send indication" % (p.addr,))
        need(got[0] == payload, "peer got %r, sent %r" % (got[0][:32], payload[:32]))
        need(tuple(got[1]) == tuple(c.relayed), "datagram came from %s, relayed address is %s" % (got[1], c.relayed))
        reply = b"hello client " + os.urandom(8)
        p.sendto(reply, tuple(c.relayed))
        d = c.recv_data(self.w(1.0))
        need(d is not None, "no Data indication for the peer's reply")
        need(d[0] == "data", "peer reply arrived as %s, expected a Data indication" % d[0])
        need(tuple(d[1]) == tuple(p.addr), "Data indication XOR-PEER-ADDRESS %s, peer is %s" % (d[1], p.addr))
        need(d[2] == reply, "Data indication DATA %r, peer sent %r" % (d[2][:32], reply[:32]))

    def check_no_permission_dropped(self):
        c = self.allocated()
        p = self.peer()
        p.sendto(b"unsolicited", tuple(c.relayed))
        d = c.recv_data(self.w(0.6))
        need(d is None, "data from a peer without permission was relayed: %s" % (d,))
        c.send_indication(p.addr, b"no permission yet")
        need(p.recv(self.w(0.4)) is None, "Send indication to a peer without permission reached the peer")
        # and the same paths work once the permission exists (so the check can tell)
        expect_success(c.create_permission(p.addr), "CreatePermission")
        p.sendto(b"solicited", tuple(c.relayed))
        d = c.recv_data(self.w(1.0))
        need(d is not None and d[2] == b"solicited", "after CreatePermission the peer's data still did not arrive")

    def check_channel_roundtrip(self):
        c = self.allocated()
        p = self.peer()
        r = expect_success(c.channel_bind(0x4000, p.addr), "ChannelBind 0x4000 (no prior CreatePermission)")
        need(r.verify_integrity(c.key()) is True, "ChannelBind success without valid MESSAGE-INTEGRITY")
        payload = os.urandom(37)
        c.send_channel(0x4000, payload)
        got = p.recv(self.w(1.0))
        need(got is not None and got[0] == payload, "peer did not receive the ChannelData payload (%s)" % (got,))
        need(tuple(got[1]) == tuple(c.relayed), "ChannelData came out of %s, not the relayed address %s" % (got[1], c.relayed))
        reply = os.urandom(23)
        p.sendto(reply, tuple(c.relayed))
        d = c.recv_data(self.w(1.0))
        need(d is not None, "nothing came back for the peer's reply")
        need(d[0] == "channel" and d[1] == 0x4000,
             "peer reply came back as %s %s, expected ChannelData 0x4000" % (d[0], d[1]))
        need(d[2] == reply, "ChannelData payload differs")
        c.send_channel(0x4000, b"")          # length 0 is valid and still sends a datagram (12.6)
        got = p.recv(self.w(1.0))
        need(got is not None and got[0] == b"", "zero-length ChannelData not relayed as an empty datagram (%s)" % (got,))
        # Send indications still work on a bound peer (RFC 8656 11.1)
        c.send_indication(p.addr, b"via send")
        got = p.recv(self.w(1.0))
        need(got is not None and got[0] == b"via send", "Send indication to a channel-bound peer not delivered")

    def check_channel_bind_invalid_number(self):
        c = self.allocated()
        p = self.peer()
        for ch in (0x3FFF, 0x5000, 0x7FFF):
            expect_error(c.channel_bind(ch, p.addr), 400, "ChannelBind channel 0x%04X" % ch)
        r = c.request(t.Message(t.CHANNEL_BIND).add(t.CHANNEL_NUMBER, struct.pack("!HH", 0x4000, 0)))
        expect_error(r, 400, "ChannelBind without XOR-PEER-ADDRESS")

    def check_channel_bind_conflicts(self):
        c = self.allocated()
        p1, p2 = self.peer(), self.peer()
        expect_success(c.channel_bind(0x4001, p1.addr), "ChannelBind 0x4001 -> peer1")
        expect_error(c.channel_bind(0x4001, p2.addr), 400, "ChannelBind 0x4001 -> a different peer")
        expect_error(c.channel_bind(0x4002, p1.addr), 400, "ChannelBind 0x4002 -> the already bound peer1")
        expect_success(c.channel_bind(0x4001, p1.addr), "ChannelBind 0x4001 -> peer1 again (refresh)")
        # the failed binds must not have changed where 0x4001 goes
        c.send_channel(0x4001, b"still peer1")
        got = p1.recv(self.w(1.0))
        need(got is not None and got[0] == b"still peer1", "after the rejected binds 0x4001 no longer reaches peer1")
        need(p2.recv(self.w(0.2)) is None, "peer2 received data on 0x4001")

    V4_DENIED = ["0.0.0.0", "127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.1.1",
                 "100.64.0.1", "224.0.0.1", "255.255.255.255"]
    V6_SPELLINGS = ["::1", "::", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::127.0.0.1", "::ffff:0.0.0.0"]
    V6_NATIVE_DENIED = ["fe80::1", "fc00::1", "ff02::1"]

    def check_create_permission_malformed_400(self):
        # 10.2: at least one XOR-PEER-ADDRESS is required
        c = self.allocated()
        expect_error(c.request(t.Message(t.CREATE_PERMISSION)), 400, "CreatePermission without XOR-PEER-ADDRESS")

    def check_peer_family_mismatch_443(self):
        # 10.2 / 12.2: a peer of the other family than the relayed address -> 443.
        # 2001:db8::1 and 192.0.2.1 are documentation addresses, in no deny list.
        c = self.allocated()
        expect_error(c.create_permission(("2001:db8::1", 5000)), 443, "IPv4 allocation: CreatePermission [2001:db8::1]")
        expect_error(c.channel_bind(0x4003, ("2001:db8::1", 5000)), 443, "IPv4 allocation: ChannelBind [2001:db8::1]")
        if self.args.v6_relay:
            c6 = self.allocated(family=t.FAMILY_V6)
            expect_error(c6.create_permission(("192.0.2.1", 5000)), 443, "IPv6 allocation: CreatePermission 192.0.2.1")

    def check_peer_policy_v4(self):
        c = self.allocated()
        port = self.server[1]       # the TURN server's own listening port: the juiciest target
        bad = []
        for ip in self.V4_DENIED:
            r = c.create_permission((ip, port))
            if r is None or r.cls != t.ERROR or r.error_code() != 403:
                bad.append("%s -> %s" % (ip, desc(r)))
        r = c.channel_bind(0x4010, ("127.0.0.1", port))
        if r is None or r.cls != t.ERROR or r.error_code() != 403:
            bad.append("ChannelBind 127.0.0.1:%d -> %s" % (port, desc(r)))
        need(not bad, "CreatePermission not refused with 403: " + "; ".join(bad))

    def check_peer_policy_v6_spellings(self):
        bad = []
        port = self.server[1]
        c = self.allocated()
        for ip in self.V6_SPELLINGS:
            r = c.create_permission((ip, port))
            # On an IPv4 allocation 443 (Peer Address Family Mismatch) also refuses.
            if r is None or r.cls != t.ERROR or r.error_code() not in (403, 443):
                bad.append("v4 allocation: %s -> %s" % (ip, desc(r)))
        if self.args.v6_relay:
            c6 = self.allocated(family=t.FAMILY_V6)
            need(c6.relayed and ":" in c6.relayed[0], "IPv6 Allocate gave %s" % (c6.relayed,))
            for ip in self.V6_SPELLINGS + self.V6_NATIVE_DENIED:
                r = c6.create_permission((ip, port))
                if r is None or r.cls != t.ERROR or r.error_code() != 403:
                    bad.append("v6 allocation: %s -> %s" % (ip, desc(r)))
        need(not bad, "not refused: " + "; ".join(bad))

    def check_own_relayed_allowed(self):
        pairs = [None] + ([t.FAMILY_V6] if self.args.v6_relay else [])
        for fam in pairs:
            a = self.allocated(cred=self.cred_v("a%s" % fam), family=fam)
            b = self.allocated(cred=self.cred_v("b%s" % fam), family=fam)
            label = "IPv6" if fam else "IPv4"
            expect_success(a.create_permission(b.relayed), "%s: A CreatePermission to B's relayed %s" % (label, b.relayed,))
            expect_success(b.create_permission(a.relayed), "%s: B CreatePermission to A's relayed %s" % (label, a.relayed,))
            a.send_indication(b.relayed, b"A to B")
            d = b.recv_data(self.w(1.0))
            need(d is not None and d[2] == b"A to B", "%s: B did not receive A's data through the relay" % label)
            need(tuple(d[1]) == tuple(a.relayed), "%s: B saw peer %s, A's relayed address is %s" % (label, d[1], a.relayed))
            self.cleanup()          # stay within a small per-user quota

    def check_address_family_v6(self):
        c = self.client()
        r = c.allocate(family=t.FAMILY_V6)
        if self.args.v6_relay:
            expect_success(r, "Allocate REQUESTED-ADDRESS-FAMILY IPv6")
            rel = r.get_xor(t.XOR_RELAYED_ADDRESS)
            need(rel and ":" in rel[0], "IPv6 requested, relayed address is %s" % (rel,))
            return "relayed %s" % (rel,)
        expect_error(r, 440, "Allocate REQUESTED-ADDRESS-FAMILY IPv6 on a server without IPv6 relay address")

    def check_address_family_invalid_440(self):
        c = self.client()
        expect_error(c.allocate(family=0x03), 440, "Allocate REQUESTED-ADDRESS-FAMILY 0x03")
        expect_success(c.allocate(family=t.FAMILY_V4), "Allocate REQUESTED-ADDRESS-FAMILY IPv4 afterwards")

    def check_quota_486(self):
        n = self.args.quota
        cl = [self.allocated() for _ in range(n)]
        extra = self.client()
        expect_error(extra.allocate(), 486, "Allocate number %d with a per-user quota of %d" % (n + 1, n))
        expect_success(cl[0].refresh(0), "Refresh 0 of one allocation")
        cl[0].relayed = None
        extra2 = self.client()
        expect_success(extra2.allocate(), "Allocate right after releasing one (quota must be freed at once)")

    def check_junk_ignored(self):
        c = self.client()
        tx = os.urandom(12)
        hdr = lambda n: struct.pack("!HHI", 0x0001, n, t.MAGIC) + tx   # Binding request header
        # (bytes, may a 400 answer it?) Non-STUN bytes must get silence; a message whose
        # header is valid but whose body is malformed may also get 400 (RFC 8489 6.3.1),
        # never a success.
        junk = [
            (b"\xff" * 40, False),                                    # neither STUN nor ChannelData
            (os.urandom(3), False),                                    # shorter than any header
            (hdr(0)[:14], False),                                      # truncated STUN header
            (hdr(64), False),                                          # length says 64, body missing
            (hdr(6) + b"\0" * 6, False),                               # length not a multiple of 4
            (hdr(8) + struct.pack("!HH", 0x8022, 200) + b"abcd", True),  # attribute overruns the message
            (struct.pack("!HH", 0x4000, 100) + b"x" * 8, False),        # ChannelData, no allocation, lying length
            (b"\x16\x03\x01\x00\x05hello", False),                      # a TLS record on the UDP port
        ]
        bad = []
        for j, may400 in junk:
            c.conn.send(j)
            pkt = c.conn.recv(self.w(0.25))
            if pkt is None:
                continue
            try:
                m = t.parse(pkt)
                what = m.name()
                ok = may400 and m.cls == t.ERROR and m.error_code() == 400
            except t.StunError:
                what, ok = "%d bytes %s" % (len(pkt), pkt[:16].hex()), False
            if not ok:
                bad.append("%s -> %s" % (j[:24].hex(), what))
        need(not bad, "junk answered: " + "; ".join(bad))
        r = c.request(t.Message(t.BINDING), auth=False)
        expect_success(r, "Binding after junk")
        # also the TCP side: junk then a valid request on a fresh connection
        tc = t.TcpConn(self.server, self.args.timeout)
        try:
            tc.send(b"\xff" * 64)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and not tc.closed:
                if tc.buf or not tc._fill(deadline):
                    break
            need(not tc.buf, "server answered TCP junk with %r" % tc.buf[:24])
        finally:
            tc.close()
        c2 = self.client(tcp=True)
        expect_success(c2.request(t.Message(t.BINDING), auth=False), "TCP Binding after TCP junk")

    def check_tcp_framing(self):
        c = self.client(tcp=True)
        a, b = t.Message(t.BINDING), t.Message(t.BINDING)
        c.conn.send(a.encode() + b.encode())       # two messages in one segment
        got = set()
        for _ in range(2):
            pkt = c.conn.recv(self.args.timeout)
            need(pkt is not None, "only %d of 2 coalesced Binding requests answered" % len(got))
            got.add(t.parse(pkt).txid)
        need(got == {a.txid, b.txid}, "answers do not match the coalesced requests")
        m = t.Message(t.BINDING)
        data = m.encode()
        for i in (0, 7, 23):                       # one message split over three segments
            c.conn.send(data[i:{0: 7, 7: 23, 23: len(data)}[i]])
            time.sleep(0.05)
        r = c.conn.recv(self.args.timeout)
        need(r is not None and t.parse(r).txid == m.txid, "split Binding request not answered")
        r = expect_success(c.allocate(), "Allocate over TCP")
        need(r.verify_integrity(c.key()) is True, "TCP Allocate success MESSAGE-INTEGRITY invalid")
        need(tuple(r.get_xor(t.XOR_MAPPED_ADDRESS)) == tuple(c.local()), "TCP XOR-MAPPED-ADDRESS is not our address")

    def check_tcp_channel_data(self):
        c = self.allocated(tcp=True)
        p = self.peer()
        expect_success(c.channel_bind(0x4000, p.addr), "ChannelBind over TCP")
        # two padded ChannelData messages in one segment: 5 bytes (+3 pad) and 8 bytes (no pad)
        c.conn.send(t.channel_data(0x4000, b"12345", pad=True) + t.channel_data(0x4000, b"abcdefgh", pad=True))
        got = [p.recv(self.w(1.0)), p.recv(self.w(1.0))]
        need(all(g is not None for g in got), "peer received %d of 2 ChannelData sent over TCP" %
             sum(g is not None for g in got))
        need([g[0] for g in got] == [b"12345", b"abcdefgh"], "peer received %r" % [g[0] for g in got])
        # the server's ChannelData to us over TCP must be padded to 4
        p.sendto(b"xyzzy", tuple(c.relayed))
        p.sendto(b"0123456", tuple(c.relayed))
        for payload in (b"xyzzy", b"0123456"):
            hdr = c.conn.recv_exact(4, self.w(1.0))
            need(hdr is not None, "no ChannelData over TCP for the peer's %r" % payload)
            ch, n = struct.unpack("!HH", hdr)
            need(ch == 0x4000 and n == len(payload), "got header channel 0x%04x length %d" % (ch, n))
            body = c.conn.recv_exact(t.pad4(n), self.w(1.0))
            need(body is not None, "ChannelData of %d bytes not padded to %d on TCP" % (n, t.pad4(n)))
            need(body[:n] == payload, "ChannelData payload differs")

    # ---------------------------------------------------------- RFC 8489 SHA-256

    def check_password_algorithms_offered(self):
        # RFC 8489 9.2.4: the 401 MAY list PASSWORD-ALGORITHMS; a server that does
        # sets the "Password algorithms" bit in the nonce cookie (9.2), and then a 438
        # MUST carry the list too (a client that sees the bit without the list must
        # not retry, 9.2.5). This suite asks for MD5 and SHA-256 (DESIGN of the relay).
        c = self.client()
        req = t.Message(t.ALLOCATE).add(t.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))
        r = expect_error(c.raw_exchange(req.encode(), req.txid), 401, "Allocate without credentials")
        nonce = r.get_str(t.NONCE) or ""
        feats = t.nonce_features(nonce)
        need(feats is not None, "401 NONCE %r does not start with the RFC 8489 cookie %s" % (nonce[:16], t.NONCE_COOKIE))
        need(feats & t.SEC_PASSWORD_ALGORITHMS, "nonce cookie %r without the Password algorithms bit" % nonce[:13])
        algs = t.password_algorithms(r.get(t.PASSWORD_ALGORITHMS))
        need(r.has(t.PASSWORD_ALGORITHMS), "401 without PASSWORD-ALGORITHMS")
        need(t.PWALG_SHA256 in algs and t.PWALG_MD5 in algs, "PASSWORD-ALGORITHMS lists %s, not SHA-256 and MD5" % algs)
        len401 = len(r.raw)
        # a forged nonce: the 438 carries a fresh cookie nonce and the list as well
        c.realm, c.nonce = self.realm, "forged-" + os.urandom(6).hex()
        r = expect_error(c.request(t.Message(t.ALLOCATE).add(t.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0])),
                                   retry_auth=False), 438, "Allocate with a forged NONCE")
        f438 = t.nonce_features(r.get_str(t.NONCE))
        need(f438 is not None and f438 & t.SEC_PASSWORD_ALGORITHMS and r.has(t.PASSWORD_ALGORITHMS),
             "438 without a cookie nonce (Password algorithms bit) and PASSWORD-ALGORITHMS")
        return "nonce %s..., algorithms %s, %d-byte 401" % (nonce[:13], algs, len401)

    def check_sha256_integrity(self):
        # RFC 8489 9.2.4 / 14.6: PASSWORD-ALGORITHM SHA-256 with the key
        # SHA-256(user:realm:pass); the response carries MESSAGE-INTEGRITY-SHA256
        c = self.client(pwalg=t.PWALG_SHA256)
        r = expect_success(c.allocate(), "Allocate with PASSWORD-ALGORITHM SHA-256")
        need(c.negotiated(), "the client did not get to choose SHA-256 (no PASSWORD-ALGORITHMS offered)")
        need(r.verify_integrity_sha256(c.key()) is True, "Allocate success MESSAGE-INTEGRITY-SHA256 %s" %
             ("missing" if r.verify_integrity_sha256(c.key()) is None else "does not verify with SHA-256(user:realm:pass)"))
        md5 = t.long_term_key(c.user, c.realm, c.password)
        need(r.verify_integrity_sha256(md5) is False, "MESSAGE-INTEGRITY-SHA256 also verifies with the MD5 key")
        # truncated to 16 bytes (14.6 allows down to 16, a multiple of 4)
        c.mi256_len = 16
        r = expect_success(c.refresh(600), "Refresh with MESSAGE-INTEGRITY-SHA256 truncated to 16 bytes")
        need(r.verify_integrity_sha256(c.key()) is True, "Refresh success MESSAGE-INTEGRITY-SHA256 invalid")
        c.mi256_len = 32
        # a tampered MESSAGE-INTEGRITY-SHA256 (last byte flipped) -> 401
        m = t.Message(t.REFRESH).add_u32(t.LIFETIME, 600)
        m.add_str(t.USERNAME, c.user).add_str(t.REALM, c.realm).add_str(t.NONCE, c.nonce)
        m.add(t.PASSWORD_ALGORITHM, struct.pack("!HH", t.PWALG_SHA256, 0)).add(t.PASSWORD_ALGORITHMS, c.pwalgs)
        data = bytearray(m.encode(key256=c.key()))
        data[-1] ^= 0x01
        expect_error(c.raw_exchange(bytes(data), m.txid), 401, "Refresh with a tampered MESSAGE-INTEGRITY-SHA256")
        # a wrong password with SHA-256 -> 401
        user, _ = self.cred()
        w = self.client((user, "not-the-password"), pwalg=t.PWALG_SHA256)
        expect_error(w.allocate(), 401, "Allocate with SHA-256 and a wrong password")
        # TURN REST credentials with SHA-256
        rc = self.client(self.cred("rest", "sha-%s" % self.tag), pwalg=t.PWALG_SHA256)
        r = expect_success(rc.allocate(), "Allocate with REST credentials and SHA-256")
        need(r.verify_integrity_sha256(rc.key()) is True, "REST + SHA-256: MESSAGE-INTEGRITY-SHA256 invalid")
        # and an RFC 5389 client on the same server: MD5 key, MESSAGE-INTEGRITY, as ever
        old = self.client()
        r = expect_success(old.allocate(), "Allocate by an RFC 5389 client (no PASSWORD-ALGORITHM)")
        need(r.verify_integrity(old.key()) is True, "RFC 5389 client: MESSAGE-INTEGRITY missing or invalid")
        return "SHA-256 static and REST, 16-byte truncation, MD5 client unchanged"

    def check_password_algorithms_mismatch_400(self):
        # RFC 8489 9.2.4: with the Password algorithms bit in the nonce, a request that
        # has PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS must echo the list exactly
        # and pick one of it; only one of the two is a 400 as well
        c = self.client(pwalg=t.PWALG_SHA256)
        first = expect_error(c.request(t.Message(t.ALLOCATE).add(t.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0])),
                                       auth=False), 401, "first Allocate")
        need(first.has(t.PASSWORD_ALGORITHMS), "401 without PASSWORD-ALGORITHMS")
        c.realm, c.nonce = self.realm, first.get_str(t.NONCE)
        key = t.long_term_key_sha256(c.user, c.realm, c.password)
        md5_only = struct.pack("!HH", t.PWALG_MD5, 0)
        cases = [
            ("PASSWORD-ALGORITHMS echo without SHA-256 (bid-down)", struct.pack("!HH", t.PWALG_SHA256, 0), md5_only),
            ("PASSWORD-ALGORITHM without PASSWORD-ALGORITHMS", struct.pack("!HH", t.PWALG_SHA256, 0), None),
            ("PASSWORD-ALGORITHMS without PASSWORD-ALGORITHM", None, first.get(t.PASSWORD_ALGORITHMS)),
        ]
        for what, pa, pas in cases:
            m = t.Message(t.ALLOCATE).add(t.REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))
            m.add_str(t.USERNAME, c.user).add_str(t.REALM, c.realm).add_str(t.NONCE, c.nonce)
            if pa is not None:
                m.add(t.PASSWORD_ALGORITHM, pa)
            if pas is not None:
                m.add(t.PASSWORD_ALGORITHMS, pas)
            r = c.raw_exchange(m.encode(key256=key), m.txid)
            expect_error(r, 400, what)
            need(not r.has(t.XOR_RELAYED_ADDRESS), "%s: 400 carries an allocation" % what)

    # ---------------------------------------------------------- RFC 8656 dual allocation

    def dual_relayed(self, r):
        rel = r.get_all_xor(t.XOR_RELAYED_ADDRESS)
        v4 = [a for a in rel if ":" not in a[0]]
        v6 = [a for a in rel if ":" in a[0]]
        return rel, v4, v6

    def check_dual_allocation(self):
        # RFC 8656 7.2 step 9: ADDITIONAL-ADDRESS-FAMILY IPv6 asks for an IPv4 and an
        # IPv6 relayed address on one allocation; a server with one family only meets
        # it partially and names the other in ADDRESS-ERROR-CODE (440)
        a = self.client(self.cred_v("a"))
        r = expect_success(a.allocate(extra=[(t.ADDITIONAL_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))]),
                           "Allocate ADDITIONAL-ADDRESS-FAMILY IPv6")
        need(r.verify_integrity(a.key()) is True, "dual Allocate success MESSAGE-INTEGRITY invalid")
        rel, v4, v6 = self.dual_relayed(r)
        if not self.args.v6_relay:
            need(len(rel) == 1 and len(v4) == 1, "IPv4-only server: expected one IPv4 XOR-RELAYED-ADDRESS, got %s" % rel)
            need(r.address_error() == (t.FAMILY_V6, 440), "IPv4-only server: ADDRESS-ERROR-CODE %s, expected (IPv6, 440)" %
                 (r.address_error(),))
            return "partial: %s + ADDRESS-ERROR-CODE IPv6 440" % (v4[0],)
        need(len(rel) == 2 and len(v4) == 1 and len(v6) == 1,
             "expected one IPv4 and one IPv6 XOR-RELAYED-ADDRESS, got %s" % (rel,))
        need(r.address_error() is None, "full dual allocation with ADDRESS-ERROR-CODE %s" % (r.address_error(),))
        a4, a6 = v4[0], v6[0]
        # IPv4 side: the suite's peer socket
        p = self.peer()
        # IPv6 side: another allocation's IPv6 relayed address (own relayed addresses
        # are allowed peers; a plain ::1 socket is not)
        b = self.allocated(cred=self.cred_v("b"), family=t.FAMILY_V6)
        r = expect_success(a.create_permission(p.addr, b.relayed), "CreatePermission IPv4 and IPv6 peers in one request")
        expect_success(b.create_permission(a6), "B CreatePermission to A's IPv6 relayed address")
        a.send_indication(p.addr, b"dual v4")
        got = p.recv(self.w(1.0))
        need(got is not None and got[0] == b"dual v4", "IPv4 peer did not get A's Send")
        need(tuple(got[1]) == tuple(a4), "IPv4 data left from %s, not A's IPv4 relayed %s" % (got[1], a4))
        a.send_indication(b.relayed, b"dual v6")
        d = b.recv_data(self.w(1.0))
        need(d is not None and d[2] == b"dual v6", "IPv6 peer did not get A's Send (%s)" % (d,))
        need(tuple(d[1]) == tuple(a6), "IPv6 data left from %s, not A's IPv6 relayed %s" % (d[1], a6))
        p.sendto(b"to a4", tuple(a4))
        d = a.recv_data(self.w(1.0))
        need(d is not None and d[2] == b"to a4" and tuple(d[1]) == tuple(p.addr), "IPv4 peer -> A: %s" % (d,))
        b.send_indication(a6, b"to a6")
        d = a.recv_data(self.w(1.0))
        need(d is not None and d[2] == b"to a6" and tuple(d[1]) == tuple(b.relayed), "IPv6 peer -> A: %s" % (d,))
        expect_success(a.channel_bind(0x4005, b.relayed), "ChannelBind to the IPv6 peer")
        a.send_channel(0x4005, b"chan v6")
        d = b.recv_data(self.w(1.0))
        need(d is not None and d[2] == b"chan v6" and tuple(d[1]) == tuple(a6), "ChannelData to the IPv6 peer: %s" % (d,))
        b.send_indication(a6, b"back on chan")
        d = a.recv_data(self.w(1.0))
        need(d is not None and d[0] == "channel" and d[1] == 0x4005 and d[2] == b"back on chan",
             "IPv6 peer's reply did not come back on channel 0x4005: %s" % (d,))
        # Refresh REQUESTED-ADDRESS-FAMILY IPv6 LIFETIME 0 deletes that half only (8.1)
        m = t.Message(t.REFRESH).add_u32(t.LIFETIME, 0).add(t.REQUESTED_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))
        expect_success(a.request(m), "Refresh REQUESTED-ADDRESS-FAMILY IPv6 LIFETIME 0")
        expect_error(a.create_permission(b.relayed), 443, "IPv6 peer after the IPv6 half was deleted")
        expect_success(a.create_permission(p.addr), "IPv4 peer after the IPv6 half was deleted")
        expect_success(a.refresh(0), "Refresh 0 of the rest")
        expect_error(a.refresh(600), 437, "Refresh after deletion")
        a.relayed = None
        return "relayed %s and [%s]:%d" % ("%s:%d" % a4, a6[0], a6[1])

    def check_dual_allocation_invalid_400(self):
        # RFC 8656 7.2: both family attributes (step 6), EVEN-PORT R with
        # ADDITIONAL-ADDRESS-FAMILY (step 8), ADDITIONAL-ADDRESS-FAMILY IPv4 (step 9)
        # -> 400; an unknown family value (0x03) is read as malformed -> 400 too
        c = self.client()
        aaf6 = (t.ADDITIONAL_ADDRESS_FAMILY, bytes([2, 0, 0, 0]))
        cases = [
            ("ADDITIONAL-ADDRESS-FAMILY IPv4", dict(extra=[(t.ADDITIONAL_ADDRESS_FAMILY, bytes([1, 0, 0, 0]))])),
            ("ADDITIONAL-ADDRESS-FAMILY 0x03", dict(extra=[(t.ADDITIONAL_ADDRESS_FAMILY, bytes([3, 0, 0, 0]))])),
            ("REQUESTED-ADDRESS-FAMILY IPv4 with ADDITIONAL-ADDRESS-FAMILY", dict(family=t.FAMILY_V4, extra=[aaf6])),
            ("ADDITIONAL-ADDRESS-FAMILY with EVEN-PORT R=1", dict(extra=[aaf6, (t.EVEN_PORT, b"\x80")])),
        ]
        for what, kw in cases:
            r = expect_error(c.allocate(**kw), 400, "Allocate " + what)
            need(not r.has(t.XOR_RELAYED_ADDRESS), "%s: 400 carries an allocation" % what)
        expect_success(c.allocate(), "plain Allocate afterwards")

    def check_integrity_everywhere(self):
        need(self.auth_log, "no authenticated transaction recorded")
        bad = []
        n = 0
        for name, resp, key, sha in self.auth_log:
            code = resp.error_code() if resp.cls == t.ERROR else None
            # RFC 8489 9.2.4: a request that chose a PASSWORD-ALGORITHM is answered with
            # MESSAGE-INTEGRITY-SHA256, any other with MESSAGE-INTEGRITY
            mi = resp.verify_integrity_sha256(key) if sha else resp.verify_integrity(key)
            what = "MESSAGE-INTEGRITY-SHA256" if sha else "MESSAGE-INTEGRITY"
            if resp.cls == t.SUCCESS:
                n += 1
                if mi is not True:
                    bad.append("%s: %s %s %s" % (name, resp.name(), what, "missing" if mi is None else "invalid"))
            elif mi is False and code not in (401, 438):
                bad.append("%s: %s carries an invalid %s" % (name, resp.name(), what))
        need(not bad, "; ".join(bad[:5]) + (" (+%d more)" % (len(bad) - 5) if len(bad) > 5 else ""))
        return "%d authenticated success responses verified" % n

    # ================================================================ driver

    def checks(self):
        a = self.args
        lst = [
            ("binding_no_auth", self.check_binding_no_auth),
            ("fingerprint_echoed", self.check_fingerprint_echoed),
            ("allocate_no_credentials_401", self.check_allocate_no_credentials_401),
            ("allocate_wrong_password_401", self.check_allocate_wrong_password_401),
            ("forged_nonce_438", self.check_forged_nonce_438),
            ("allocate_success_fields", self.check_allocate_success_fields),
            ("rest_credentials", self.check_rest_credentials),
            ("static_and_rest_together", self.check_static_and_rest_together),
            ("other_user_441", self.check_other_user_441),
            ("requested_transport_tcp_442", self.check_requested_transport_tcp_442),
            ("requested_transport_missing_400", self.check_requested_transport_missing_400),
            ("unknown_attribute_420", self.check_unknown_attribute_420),
            ("unknown_optional_ignored", self.check_unknown_optional_ignored),
            ("even_port", self.check_even_port),
            ("allocate_again_437", self.check_allocate_again_437),
            ("allocate_retransmit", self.check_allocate_retransmit),
            ("refresh_zero_deletes", self.check_refresh_zero_deletes),
            ("lifetime_capped", self.check_lifetime_capped),
            ("send_data_indication", self.check_send_data_indication),
            ("no_permission_dropped", self.check_no_permission_dropped),
            ("channel_roundtrip", self.check_channel_roundtrip),
            ("channel_bind_invalid_number", self.check_channel_bind_invalid_number),
            ("channel_bind_conflicts", self.check_channel_bind_conflicts),
            ("create_permission_malformed_400", self.check_create_permission_malformed_400),
            ("peer_family_mismatch_443", self.check_peer_family_mismatch_443),
            ("peer_policy_v4", self.check_peer_policy_v4),
            ("peer_policy_v6_spellings", self.check_peer_policy_v6_spellings),
            ("own_relayed_allowed", self.check_own_relayed_allowed),
            ("address_family_v6", self.check_address_family_v6),
            ("address_family_invalid_440", self.check_address_family_invalid_440),
            ("quota_486", self.check_quota_486),
            ("junk_ignored", self.check_junk_ignored),
            ("password_algorithms_offered", self.check_password_algorithms_offered),
            ("sha256_integrity", self.check_sha256_integrity),
            ("password_algorithms_mismatch_400", self.check_password_algorithms_mismatch_400),
            ("dual_allocation", self.check_dual_allocation),
            ("dual_allocation_invalid_400", self.check_dual_allocation_invalid_400),
        ]
        if a.tcp_too:
            lst += [("tcp_framing", self.check_tcp_framing),
                    ("tcp_channel_data", self.check_tcp_channel_data)]
        if a.nonce_lifetime is not None:
            lst.append(("stale_nonce_438", self.check_stale_nonce_438))
        lst.append(("integrity_everywhere", self.check_integrity_everywhere))
        return lst


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True, help="HOST:PORT of the TURN server (UDP, and TCP with --tcp-too)")
    ap.add_argument("--user", required=True, help="static long-term credential NAME:PASS")
    ap.add_argument("--secret", required=True, help="TURN REST API secret")
    ap.add_argument("--realm", required=True)
    ap.add_argument("--bulk-cred", choices=("user", "rest"), default="user",
                    help="credential used by the checks that are not about credentials (default user)")
    ap.add_argument("--peer-ip", default="127.0.0.2",
                    help="an address the server allows as a peer; the suite binds UDP peer sockets on it")
    ap.add_argument("--v6-relay", "--peer-v6", dest="v6_relay", action="store_true",
                    help="the server has an IPv6 relay address: IPv6 allocations must succeed")
    ap.add_argument("--quota", type=int, required=True, help="the server's per-user allocation quota (small)")
    ap.add_argument("--max-lifetime", type=int, default=3600, help="the server's maximum allocation lifetime")
    ap.add_argument("--nonce-lifetime", type=float, default=None,
                    help="if the server's nonces expire after this many seconds (small), also check a stale nonce")
    ap.add_argument("--max-unauth-response", type=int, default=200,
                    help="bound in bytes for the 401 to a minimal 28-byte Allocate")
    ap.add_argument("--tcp-too", action="store_true", help="also run the TCP checks")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds per transaction (default 2)")
    ap.add_argument("--time-mult", type=float, default=float(os.environ.get("TIMEOUT_MULT", "1") or 1),
                    help="scale every wait for data or for silence (default env TIMEOUT_MULT or 1)")
    ap.add_argument("--only", action="append", help="run only this check (repeatable)")
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.quota < 1 or args.quota > 50:
        ap.error("--quota must be 1..50 (start the server with a small per-user quota)")

    s = Suite(args)
    for name, fn in s.checks():
        if args.only and name not in args.only:
            continue
        s.run(name, fn)
    for c in s.retired:
        c.close()
    passed = sum(r["ok"] for r in s.results)
    failed = len(s.results) - passed
    print("%d passed, %d failed" % (passed, failed), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"server": args.server, "passed": passed, "failed": failed,
                       "results": s.results}, f, indent=1)
    return 1 if failed or not s.results else 0


if __name__ == "__main__":
    sys.exit(main())
