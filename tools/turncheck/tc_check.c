/* tc_check.c - the steps of tsunagu-turncheck against one TURN URL and the
 * wording of their verdicts (see tc_check.h, docs/turncheck.md).
 *
 * The data steps use a second, plain UDP socket on this host as the TURN
 * "peer": the client lets it in with CreatePermission, then datagrams go
 * client -> Send indication -> relayed address -> peer and back, and once
 * more over a channel. So the relay must be allowed to relay to this host:
 * on a relay that denies private or loopback peers (the secure default),
 * run turncheck from a host with a public address, or name an allowed
 * address with --peer-ip. The relay's own check (tc_check_self) lends a
 * socket on one of its relayed ports instead, a peer its policy lets in. */
#include "tc_check.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rtc_clock.h"
#include "rtc_err.h"
#include "stn_msg.h"
#include "tc_turn.h"

#define TC_PROBES 3       /* datagrams per direction: one lost one is not a failure */
#define TC_CHANNEL 0x4000 /* the first channel number (RFC 8656 s.12) */

typedef struct {
    const tc_check_params *p;
    const tc_url *u;
    rtc_addr server;
    char server_s[RTC_ADDR_STRLEN];
    tc_conn *conn;
    tc_turn *turn;
    int peer_fd;
    bool own_peer_fd; /* opened here (not the relay's) */
    rtc_addr peer, relayed;
    rtc_addr relayed_src; /* where the relay's datagrams come from: the relayed
                           * address, or behind a 1:1 NAT the local one it stands for */
    char peer_s[RTC_ADDR_STRLEN], relayed_s[RTC_ADDR_STRLEN], src_s[RTC_ADDR_STRLEN];
} run;

const char *tc_verdict_name(tc_verdict v)
{
    switch (v) {
    case TC_OK:
        return "ok  ";
    case TC_WARN:
        return "warn";
    case TC_FAIL:
        return "FAIL";
    default:
        return "?";
    }
}

int tc_url_parse(const char *s, tc_url *u, char *why, size_t whylen)
{
    const char *p, *h, *he;
    bool secure;

    memset(u, 0, sizeof *u);
    u->text = s;
    if (!strncmp(s, "turns:", 6))
        secure = true, p = s + 6;
    else if (!strncmp(s, "turn:", 5))
        secure = false, p = s + 5;
    else {
        snprintf(why, whylen, "'%s': not a turn: or turns: URL (RFC 7065)", s);
        return RTC_EMSG;
    }
    if (*p == '[') {
        h = p + 1;
        if (!(he = strchr(h, ']'))) {
            snprintf(why, whylen, "'%s': no ']' after the IPv6 address", s);
            return RTC_EMSG;
        }
        p = he + 1;
    } else {
        h = p;
        he = p + strcspn(p, ":?");
        p = he;
    }
    if (he == h || (size_t)(he - h) >= sizeof u->host) {
        snprintf(why, whylen, "'%s': no host", s);
        return RTC_EMSG;
    }
    memcpy(u->host, h, (size_t)(he - h));
    u->port = secure ? 5349 : 3478; /* RFC 7065 s.3.1, RFC 8656 s.3.1 */
    if (*p == ':') {
        char *end;
        unsigned long v = strtoul(p + 1, &end, 10);
        if (end == p + 1 || v == 0 || v > 65535 || (*end && *end != '?')) {
            snprintf(why, whylen, "'%s': bad port", s);
            return RTC_EMSG;
        }
        u->port = (uint16_t)v;
        p = end;
    }
    u->proto = secure ? TC_TLS : TC_UDP;
    if (!*p)
        return 0;
    if (!strcmp(p, "?transport=tcp"))
        u->proto = secure ? TC_TLS : TC_TCP;
    else if (!strcmp(p, "?transport=udp") && !secure)
        u->proto = TC_UDP;
    else {
        snprintf(why, whylen, "'%s': the query must be ?transport=udp or ?transport=tcp "
                              "(turns: over DTLS is not supported)", s);
        return RTC_EMSG;
    }
    return 0;
}

/* Print (or hand to the hook) one verdict line. true when the check goes
 * on: the step did not fail and the hook did not say stop. */
__attribute__((format(printf, 4, 0))) static bool vsay(run *r, tc_verdict v, const char *step,
                                                       const char *fmt, va_list ap)
{
    char detail[600];
    bool ok = v != TC_FAIL;
    vsnprintf(detail, sizeof detail, fmt, ap);
    if (r->p->line)
        return r->p->line(r->p->line_arg, r->u->text, v, step, detail) && ok;
    if (!r->p->json) {
        fprintf(r->p->out, "%s %s: %s\n", tc_verdict_name(v), step, detail);
    } else {
        /* the detail holds no control characters (server text is filtered in
         * tc_turn.c), so escaping '"' and '\\' is enough */
        fprintf(r->p->out, "{\"url\":\"");
        for (const char *c = r->u->text; *c; c++)
            fprintf(r->p->out, *c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
        fprintf(r->p->out, "\",\"step\":\"%s\",\"ok\":%s,%s\"detail\":\"", step,
                ok ? "true" : "false", v == TC_WARN ? "\"warn\":true," : "");
        for (const char *c = detail; *c; c++)
            fprintf(r->p->out, *c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
        fprintf(r->p->out, "\"}\n");
    }
    fflush(r->p->out);
    return ok;
}

__attribute__((format(printf, 4, 5))) static bool say(run *r, bool ok, const char *step,
                                                      const char *fmt, ...)
{
    va_list ap;
    bool go;
    va_start(ap, fmt);
    go = vsay(r, ok ? TC_OK : TC_FAIL, step, fmt, ap);
    va_end(ap);
    return go;
}

__attribute__((format(printf, 3, 4))) static bool warn(run *r, const char *step,
                                                       const char *fmt, ...)
{
    va_list ap;
    bool go;
    va_start(ap, fmt);
    go = vsay(r, TC_WARN, step, fmt, ap);
    va_end(ap);
    return go;
}

static bool step_resolve(run *r)
{
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_ADDRCONFIG}, *res;
    int e = getaddrinfo(r->u->host, NULL, &hints, &res);
    if (e)
        return say(r, false, "resolve", "cannot resolve '%s': %s", r->u->host, gai_strerror(e));
    rtc_addr_from_sockaddr(&r->server, res->ai_addr);
    freeaddrinfo(res);
    r->server.port = r->u->port;
    rtc_addr_format(&r->server, true, r->server_s);
    return say(r, true, "resolve", "%s -> %s/%s", r->u->host, r->server_s,
               tc_proto_name(r->u->proto));
}

static bool step_connect(run *r)
{
    char why[400], tls[128];
    tc_conn_params cp = {.proto = r->u->proto, .server = r->server, .host = r->u->host,
                         .tls = r->p->tls, .timeout_ms = r->p->timeout_ms};
    if (!(r->conn = tc_conn_open(&cp, why, sizeof why)))
        return say(r, false, "connect", "%s", why);
    if (r->u->proto == TC_UDP)
        return true; /* nothing to say yet: the challenge shows whether anyone answers */
    if (r->u->proto == TC_TCP)
        return say(r, true, "connect", "%s/tcp", r->server_s);
    if (!r->p->tls_verify)
        return say(r, true, "connect", "%s/tls, %s, certificate NOT checked (%s)",
                   r->server_s, tc_conn_tls_info(r->conn, tls, sizeof tls),
                   r->p->self && r->p->self->tls_note ? r->p->self->tls_note : "--insecure");
    return say(r, true, "connect", "%s/tls, %s, certificate valid for '%s'", r->server_s,
               tc_conn_tls_info(r->conn, tls, sizeof tls), r->u->host);
}

/* The cause of a failed transaction, worded for the operator. */
static bool fail_result(run *r, const char *step, const tc_result *res)
{
    switch (res->status) {
    case TC_R_TIMEOUT:
        return say(r, false, step, "no answer on the port: nothing came back from %s/%s "
                                   "within %d ms (nothing listening, or a firewall)",
                   r->server_s, tc_proto_name(r->u->proto), r->p->timeout_ms);
    case TC_R_REFUSED:
        return say(r, false, step, "no answer on the port: %s/udp is unreachable (ICMP port "
                                   "unreachable: nothing listens there)", r->server_s);
    case TC_R_CLOSED:
        return say(r, false, step, "the server closed the connection");
    case TC_R_BADMI:
        return say(r, false, step, "the answer's MESSAGE-INTEGRITY does not verify with our "
                                   "key (not from the server that knows the password)");
    case TC_R_MALFORMED:
        return say(r, false, step, "malformed answer (bad FINGERPRINT or attribute)");
    case TC_R_IOERR:
        return say(r, false, step, "cannot send the request");
    case TC_R_ERROR:
        if (res->code == 401)
            return say(r, false, step, "401 %s with realm \"%s\": the server refused user "
                                       "\"%s\" (wrong password or secret, or an expired REST "
                                       "username)", res->reason, res->realm, r->p->user);
        if (res->code == 403)
            return say(r, false, step, "403 %s: the relay's peer policy refuses %s (run "
                                       "turncheck from a host the relay may relay to, or "
                                       "choose one with --peer-ip)", res->reason, r->peer_s);
        return say(r, false, step, "%d %s", res->code, res->reason);
    default:
        return say(r, false, step, "unexpected answer");
    }
}

static bool step_challenge(run *r)
{
    tc_req rq = {.method = STN_ALLOCATE, .transport_udp = true};
    tc_result res;
    tc_turn_transact(r->turn, &rq, &res);
    if (res.status == TC_R_SUCCESS)
        return say(r, false, "challenge", "the server allocated without credentials: anyone "
                                          "can use this relay");
    if (res.status != TC_R_ERROR || res.code != 401)
        return fail_result(r, "challenge", &res);
    if (!res.has_nonce || !res.realm[0])
        return say(r, false, "challenge", "401 without %s", res.has_nonce ? "REALM" : "NONCE");
    if (r->p->realm && strcmp(r->p->realm, res.realm))
        return say(r, false, "challenge", "401 with realm \"%s\", expected \"%s\"", res.realm,
                   r->p->realm);
    tc_turn_learn(r->turn);
    return say(r, true, "challenge", "401 with realm \"%s\" and a nonce", res.realm);
}

static bool open_peer(run *r)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (r->p->self) { /* the relay's socket, bound already */
        r->peer_fd = r->p->self->peer_fd;
        goto bound;
    }
    r->own_peer_fd = true;
    if (r->p->peer_ip)
        r->peer = *r->p->peer_ip;
    else
        tc_conn_local(r->conn, &r->peer);
    r->peer.port = 0;
    sl = rtc_addr_to_sockaddr(&r->peer, &ss);
    rtc_addr_format(&r->peer, false, r->peer_s);
    r->peer_fd = socket(r->peer.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->peer_fd < 0 || bind(r->peer_fd, (struct sockaddr *)&ss, sl))
        return say(r, false, "allocate", "cannot bind the peer socket to %s: %s", r->peer_s,
                   strerror(errno));
bound:
    sl = sizeof ss;
    getsockname(r->peer_fd, (struct sockaddr *)&ss, &sl);
    rtc_addr_from_sockaddr(&r->peer, (struct sockaddr *)&ss);
    rtc_addr_format(&r->peer, true, r->peer_s);
    return true;
}

/* Authenticated Allocate. The peer socket is opened first: the relayed
 * address must be of the peer's family (an IPv4 allocation cannot reach an
 * IPv6 peer, 443), so an IPv6 peer asks for an IPv6 relayed address. */
static bool step_allocate(run *r)
{
    tc_req rq = {.method = STN_ALLOCATE, .auth = true, .transport_udp = true};
    tc_result res;
    char mapped[RTC_ADDR_STRLEN] = "none";
    if (!open_peer(r))
        return false;
    rq.family_v6 = r->peer.family == AF_INET6;
    tc_turn_transact(r->turn, &rq, &res);
    if (res.status != TC_R_SUCCESS)
        return fail_result(r, "allocate", &res);
    if (!res.relayed.family)
        return say(r, false, "allocate", "success without XOR-RELAYED-ADDRESS");
    r->relayed = res.relayed;
    rtc_addr_format(&r->relayed, true, r->relayed_s);
    r->relayed_src = r->relayed;
    if (r->p->self && r->p->self->relayed_local &&
        r->p->self->relayed_local->family == r->relayed.family) {
        r->relayed_src = *r->p->self->relayed_local;
        r->relayed_src.port = r->relayed.port;
    }
    rtc_addr_format(&r->relayed_src, true, r->src_s);
    if (res.mapped.family)
        rtc_addr_format(&res.mapped, true, mapped);
    return say(r, true, "allocate", "relayed %s, mapped %s, lifetime %u s (user \"%s\")",
               r->relayed_s, mapped, res.lifetime, r->p->user);
}

/* The relay checking itself knows what it advertises (expect: its
 * --external-ip, or its relay address), but not where its clients are: a
 * loopback relayed address is fine for a test on one host, a private one
 * works only for clients on that network, and is the classic mistake of a
 * relay behind a cloud's 1:1 NAT, hence a warning naming the fix. */
static bool relayed_self(run *r, const char *ip, rtc_addr_scope rs)
{
    const tc_check_self *self = r->p->self;
    char want[RTC_ADDR_STRLEN];
    if (r->p->expect) {
        rtc_addr_format(r->p->expect, false, want);
        if (!rtc_addr_ip_equal(&r->relayed, r->p->expect))
            return say(r, false, "relayed-address", "relayed address %s differs from %s %s "
                                                    "(what the relay should advertise)", ip,
                       self->expect_what ? self->expect_what : "the expected", want);
    }
    switch (rs) {
    case RTC_ADDR_PUBLIC:
        if (self->relayed_local)
            return say(r, true, "relayed-address", "%s (public, --external-ip for %s)", ip,
                       r->src_s);
        return say(r, true, "relayed-address", "%s (public)", ip);
    case RTC_ADDR_LOOPBACK:
        return say(r, true, "relayed-address", "%s is a loopback address: only clients on this "
                                               "host can reach it (fine for local testing; "
                                               "others need --relay-ip or --external-ip)", ip);
    default:
        if (self->relayed_local)
            return warn(r, "relayed-address", "relayed address %s is %s, from --external-ip: "
                                              "clients outside its network cannot reach it "
                                              "(give the public address of the 1:1 NAT)",
                        ip, rtc_addr_scope_name(rs));
        return warn(r, "relayed-address", "relayed address %s is %s: clients outside its "
                                          "network cannot reach it; behind a 1:1 NAT (a cloud "
                                          "VM) set --external-ip PUBLIC/%s", ip,
                    rtc_addr_scope_name(rs), ip);
    }
}

/* Is the relayed address one that the relay's clients can reach? */
static bool step_relayed(run *r)
{
    char ip[RTC_ADDR_STRLEN], want[RTC_ADDR_STRLEN];
    rtc_addr_scope rs = rtc_addr_scope_of(&r->relayed), ss = rtc_addr_scope_of(&r->server);
    rtc_addr_format(&r->relayed, false, ip);
    if (r->p->self)
        return relayed_self(r, ip, rs);
    if (r->p->expect) {
        rtc_addr_format(r->p->expect, false, want);
        if (!rtc_addr_ip_equal(&r->relayed, r->p->expect))
            return say(r, false, "relayed-address", "relayed address %s differs from "
                                                    "--expect-ip %s (what the server should "
                                                    "advertise: check its --relay-ip / "
                                                    "--external-ip)", ip, want);
        return say(r, true, "relayed-address", "%s as expected", ip);
    }
    if (ss == RTC_ADDR_PUBLIC && rs != RTC_ADDR_PUBLIC)
        return say(r, false, "relayed-address", "relayed address %s is %s but the server is "
                                                "reached at public %s: remote peers cannot "
                                                "reach it (set the relay's --external-ip)",
                   ip, rtc_addr_scope_name(rs), r->server_s);
    return say(r, true, "relayed-address", "%s (%s, server %s)", ip, rtc_addr_scope_name(rs),
               rtc_addr_scope_name(ss));
}

static bool step_permission(run *r)
{
    tc_req rq = {.method = STN_CREATE_PERMISSION, .auth = true, .peer = &r->peer};
    tc_result res;
    tc_turn_transact(r->turn, &rq, &res);
    if (res.status != TC_R_SUCCESS)
        return fail_result(r, "permission", &res);
    return say(r, true, "permission", "for the peer socket %s", r->peer_s);
}

/* Peer socket: wait for one of our probes; 1 with its source, 0 timeout. */
static int peer_recv(run *r, uint64_t deadline, const char *tag, rtc_addr *from)
{
    uint8_t buf[2048];
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        ssize_t n = recvfrom(r->peer_fd, buf, sizeof buf, 0, (struct sockaddr *)&ss, &sl);
        uint64_t now;
        if (n >= 0) {
            size_t tl = strlen(tag);
            rtc_addr_from_sockaddr(from, (struct sockaddr *)&ss);
            if ((size_t)n >= tl && !memcmp(buf, tag, tl))
                return 1;
            continue;
        }
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        if ((now = rtc_clock_mono_ms()) >= deadline)
            return 0;
        struct pollfd p = {.fd = r->peer_fd, .events = POLLIN};
        poll(&p, 1, (int)(deadline - now));
    }
}

/* Client -> relay -> peer: TC_PROBES probes by Send indication or over the
 * channel; they must come from the relayed address. */
static bool to_peer(run *r, const char *step, uint16_t chan)
{
    char tag[64], from_s[RTC_ADDR_STRLEN];
    rtc_addr from;
    int got = 0, e = 0;
    uint64_t deadline;
    snprintf(tag, sizeof tag, "turncheck %s %u", step, (unsigned)rtc_clock_mono_ms());
    for (int i = 0; i < TC_PROBES && !e; i++)
        e = chan ? tc_turn_send_chan(r->turn, chan, r->u->proto != TC_UDP, tag, strlen(tag))
                 : tc_turn_send_ind(r->turn, &r->peer, tag, strlen(tag));
    if (e)
        return say(r, false, step, "cannot send to the server: %s", rtc_strerror(e));
    deadline = rtc_clock_mono_ms() + (uint64_t)r->p->timeout_ms;
    while (got < TC_PROBES) {
        int n = peer_recv(r, got ? rtc_clock_mono_ms() + 200 : deadline, tag, &from);
        if (n <= 0)
            break;
        rtc_addr_format(&from, true, from_s);
        if (!rtc_addr_equal(&from, &r->relayed_src))
            return say(r, false, step, "the data reached the peer from %s, not from the "
                                       "relayed address %s (a NAT in front of the relay? set "
                                       "its --external-ip)", from_s, r->src_s);
        got++;
    }
    if (!got)
        return say(r, false, step, "nothing reached the peer %s from the relayed address %s "
                                   "within %d ms (the relay cannot send to this host)",
                   r->peer_s, r->src_s, r->p->timeout_ms);
    return say(r, true, step, "%d/%d datagrams %s -> %s -> %s", got, TC_PROBES,
               chan ? "ChannelData" : "Send", r->src_s, r->peer_s);
}

/* Peer -> relayed address -> client: TC_PROBES probes, as Data indications
 * naming the peer, or as ChannelData on chan. */
static bool from_peer(run *r, const char *step, uint16_t chan)
{
    char tag[64];
    uint8_t buf[2048];
    struct sockaddr_storage ss;
    socklen_t sl = rtc_addr_to_sockaddr(&r->relayed, &ss);
    int got = 0;
    uint64_t deadline;
    snprintf(tag, sizeof tag, "turncheck %s %u", step, (unsigned)rtc_clock_mono_ms());
    for (int i = 0; i < TC_PROBES; i++)
        if (sendto(r->peer_fd, tag, strlen(tag), 0, (struct sockaddr *)&ss, sl) < 0)
            return say(r, false, step, "the peer socket cannot send to %s: %s", r->relayed_s,
                       strerror(errno));
    deadline = rtc_clock_mono_ms() + (uint64_t)r->p->timeout_ms;
    while (got < TC_PROBES) {
        rtc_addr from;
        uint16_t ch;
        size_t len;
        int n = tc_turn_recv_data(r->turn, got ? rtc_clock_mono_ms() + 200 : deadline, &from,
                                  &ch, buf, sizeof buf, &len);
        if (n < 0)
            return say(r, false, step, "the connection to the server failed: %s",
                       rtc_strerror(n));
        if (n == 0)
            break;
        if (len != strlen(tag) || memcmp(buf, tag, len))
            continue;
        if (chan ? ch != chan : !rtc_addr_equal(&from, &r->peer))
            continue;
        got++;
    }
    if (!got && r->p->self && r->p->self->relayed_local)
        return say(r, false, step, "nothing from the peer %s arrived within %d ms: the relayed "
                                   "address %s is unreachable from this host (--external-ip "
                                   "does not lead back to this relay: a wrong address, or a "
                                   "1:1 NAT that does not hairpin; then check from outside "
                                   "with tsunagu-turncheck)",
                   r->peer_s, r->p->timeout_ms, r->relayed_s);
    if (!got)
        return say(r, false, step, "nothing from the peer %s arrived within %d ms: the relayed "
                                   "port %s is unreachable from it (a firewall in front of the "
                                   "relay's relayed-port range?)",
                   r->peer_s, r->p->timeout_ms, r->relayed_s);
    return say(r, true, step, "%d/%d datagrams %s -> %s -> %s", got, TC_PROBES, r->peer_s,
               r->relayed_s, chan ? "ChannelData" : "Data indication");
}

static bool step_channel(run *r)
{
    tc_req rq = {.method = STN_CHANNEL_BIND, .auth = true, .peer = &r->peer,
                 .channel = TC_CHANNEL};
    tc_result res;
    tc_turn_transact(r->turn, &rq, &res);
    if (res.status != TC_R_SUCCESS)
        return fail_result(r, "channel-bind", &res);
    if (!say(r, true, "channel-bind", "channel 0x%04X -> %s", TC_CHANNEL, r->peer_s))
        return false;
    return to_peer(r, "channel-to-peer", TC_CHANNEL) &&
           from_peer(r, "channel-from-peer", TC_CHANNEL);
}

static bool step_refresh(run *r)
{
    tc_req rq = {.method = STN_REFRESH, .auth = true, .has_lifetime = true, .lifetime = 0};
    tc_result res;
    tc_turn_transact(r->turn, &rq, &res);
    if (res.status != TC_R_SUCCESS)
        return fail_result(r, "refresh", &res);
    return say(r, true, "refresh", "lifetime 0: allocation released");
}

/* A step after the allocation failed: give the allocation back without a
 * line (the failure is what the reader needs), so a relay checking itself,
 * or a check run in a loop, does not leave allocations behind until they
 * expire. One try, a short wait: the connection may be what failed. */
static void release(run *r)
{
    tc_req rq = {.method = STN_REFRESH, .auth = true, .has_lifetime = true, .lifetime = 0};
    tc_result res;
    int saved = r->turn->timeout_ms;
    r->turn->timeout_ms = saved < 500 ? saved : 500;
    tc_turn_transact(r->turn, &rq, &res);
    r->turn->timeout_ms = saved;
}

bool tc_check_url(const tc_check_params *p, const tc_url *u)
{
    run r = {.p = p, .u = u, .peer_fd = -1};
    tc_turn *t = malloc(sizeof *t);
    bool ok;

    if (!p->json && !p->line)
        fprintf(p->out, "--- %s\n", u->text);
    if (!t)
        return say(&r, false, "resolve", "out of memory");
    r.turn = t;
    ok = step_resolve(&r) && step_connect(&r);
    if (ok) {
        tc_turn_init(t, r.conn, p->user, p->pass, p->timeout_ms);
        ok = step_challenge(&r) && step_allocate(&r) && step_relayed(&r) &&
             step_permission(&r) && to_peer(&r, "send-to-peer", 0) &&
             from_peer(&r, "data-from-peer", 0) && step_channel(&r) && step_refresh(&r);
        if (!ok && r.relayed.family)
            release(&r);
        tc_turn_dispose(t);
    }
    if (r.peer_fd >= 0 && r.own_peer_fd)
        close(r.peer_fd);
    tc_conn_close(r.conn);
    free(t);
    return ok;
}
