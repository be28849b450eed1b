/* bot_ice.c - libnice adapter (see bot_ice.h).
 *
 * Loopback TURN: libnice skips loopback when it picks local addresses and
 * binds to the first real interface, so an Allocate sent to 127.0.0.1 leaves
 * through that interface and never arrives (notes/native-client.md). When a
 * TURN server resolves to loopback we add 127.0.0.1 as the only local
 * address before gathering (the same for a loopback STUN server).
 *
 * STUN: one stun: server per agent (libnice's stun-server property), used
 * for server-reflexive candidates unless the agent is relay only.
 *
 * STUN next to TURN (libnice 0.1.21, seen with NICE_DEBUG=all): the srflx
 * Binding request is RFC 3489 style (no magic cookie), and an answer is
 * matched by trying the agent's discovery items in the order they were
 * added; the first item on the same local socket that does not call the
 * answer "unmatched" takes it. A TURN item's STUN agent (RFC 5389) calls a
 * cookie-less answer a bad request ("no cookie!"), which stops the search:
 * the answer is dropped ("Incorrectly multiplexed STUN message ignored",
 * "failed slow validation"). gather_candidates adds the TURN items at once
 * but the STUN item only once the stun-server name is resolved, which is
 * asynchronous even for a numeric address, so the TURN item always came
 * first. So when a STUN server is used, the TURN servers are handed to
 * libnice just after the STUN item exists (see defer_turn). */
#include "bot_ice.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <agent.h>
#include <glib.h>
#include <interfaces.h>

#include "bot_tlsfwd.h"
#include "bot_turnfam.h"

#include "rtc_err.h"
#include "rtc_log.h"

#define MAX_PENDING 64

struct bot_ice {
    NiceAgent *agent;
    guint stream;
    bot_ice_cbs cbs;
    char ufrag[64], pwd[256];
    bool have_remote_creds, remote_done, closed;
    char *pending[MAX_PENDING]; /* remote candidates before credentials */
    size_t n_pending;
    char selected[32];
    char stun_desc[340];        /* the STUN server in use, for logs and reports */
    bot_ice_state st;
    int n_turn_udp, n_turn_tcp, n_turn_tls; /* relays configured, by transport to the server */
    bool relay_only;
    /* turns: servers: libnice talks plain TURN over TCP to a local
     * forwarder that does the TLS (bot_tlsfwd.h). */
    struct fwd_slot {
        bot_ice *ice;
        bot_tlsfwd *fwd;
        unsigned failed, secured;
    } fwd[BOT_ICE_MAX_TURN];
    size_t n_fwd;
    /* turn: UDP servers with --turn-family: libnice talks to a local shim
     * that adds REQUESTED-ADDRESS-FAMILY to its Allocates (bot_turnfam.h).
     * Freed only when libnice has closed (its Refresh 0 goes through them). */
    bot_turnfam *fam[BOT_ICE_MAX_TURN];
    size_t n_fam;
    char tls_desc[128];
    GMainContext *ctx;          /* the creating thread's default context */
    /* TURN servers held back until the STUN discovery item exists. */
    struct turn_cfg {
        char ip[64];
        guint port;
        char user[256], pass[256];
        NiceRelayType type;
    } turn_later[BOT_ICE_MAX_TURN];
    size_t n_turn_later;
    GSource *turn_src;          /* pending defer_turn; NULL once run */
    bool done_early;            /* gathering-done came before the TURN servers were added */
};

/* Numeric address for libnice (it does not resolve names). Blocking
 * getaddrinfo: called once per call set-up, never on the media path. */
static bool resolve(const char *host, int family, char *out, size_t cap, bool *loopback)
{
    struct addrinfo hints, *res = NULL;
    bool ok = false;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_DGRAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return false;
    if (getnameinfo(res->ai_addr, res->ai_addrlen, out, (socklen_t)cap, NULL, 0,
                    NI_NUMERICHOST) == 0) {
        ok = true;
        *loopback = !strncmp(out, "127.", 4) || !strcmp(out, "::1");
    }
    freeaddrinfo(res);
    return ok;
}

static void on_new_candidate(NiceAgent *agent, NiceCandidate *c, gpointer ud)
{
    bot_ice *ice = ud;
    gchar *sdp;
    const char *s;
    if (ice->closed)
        return;
    sdp = nice_agent_generate_local_candidate_sdp(agent, c);
    if (!sdp)
        return;
    s = g_str_has_prefix(sdp, "a=") ? sdp + 2 : sdp;
    ice->cbs.candidate(ice->cbs.ud, s);
    g_free(sdp);
}

static void on_gathering_done(NiceAgent *agent, guint stream, gpointer ud)
{
    bot_ice *ice = ud;
    (void)agent;
    (void)stream;
    if (ice->closed)
        return;
    /* Only the STUN item was there: the TURN items come next and libnice
     * says done again once they finish (end-of-candidates only then). */
    if (ice->turn_src) {
        ice->done_early = true;
        return;
    }
    ice->cbs.candidate(ice->cbs.ud, NULL);
}

static void describe_selected(bot_ice *ice)
{
    NiceCandidate *l = NULL, *r = NULL;
    static const char *types[] = {"host", "srflx", "prflx", "relay"};
    const char *rt = bot_ice_relay_transport(ice);
    /* libnice does not say which TURN server a relayed candidate came from;
     * when every configured server uses one transport, that is the one. */
    if (nice_agent_get_selected_pair(ice->agent, ice->stream, 1, &l, &r) && l)
        snprintf(ice->selected, sizeof ice->selected, "%s/%s%s",
                 l->type <= NICE_CANDIDATE_TYPE_RELAYED ? types[l->type] : "?",
                 l->transport == NICE_CANDIDATE_TRANSPORT_UDP ? "udp" : "tcp",
                 l->type != NICE_CANDIDATE_TYPE_RELAYED ? ""
                 : !strcmp(rt, "tls") ? " (TURN over TLS)"
                 : !strcmp(rt, "tcp") ? " (TURN over TCP)" : "");
}

/* The controlling agent may carry media on its selected pair for seconds
 * before the component reaches READY (its other checks still pending, as
 * behind NATs in tests/netlab), so the pair is also described here. */
static void on_selected_pair(NiceAgent *agent, guint stream, guint comp, NiceCandidate *l,
                             NiceCandidate *r, gpointer ud)
{
    bot_ice *ice = ud;
    (void)agent;
    (void)stream;
    (void)comp;
    (void)l;
    (void)r;
    if (!ice->closed)
        describe_selected(ice);
}

static void on_state(NiceAgent *agent, guint stream, guint comp, guint state, gpointer ud)
{
    bot_ice *ice = ud;
    bot_ice_state st;
    (void)agent;
    (void)stream;
    (void)comp;
    if (ice->closed)
        return;
    switch (state) {
    case NICE_COMPONENT_STATE_READY: st = BOT_ICE_READY; break;
    case NICE_COMPONENT_STATE_FAILED: st = BOT_ICE_FAILED; break;
    /* CONNECTED: a pair is selected and carries data. libnice says READY
     * only once every higher-priority pair has failed too, which behind NATs
     * (a host pair retried to an unreachable LAN address) came ~2 s later in
     * tests/netlab; DTLS started at READY then cost every call those 2 s. */
    case NICE_COMPONENT_STATE_CONNECTED: st = BOT_ICE_READY; break;
    case NICE_COMPONENT_STATE_CONNECTING: st = BOT_ICE_CONNECTING; break;
    default: return;
    }
    /* libnice reports READY again after later nominations: report once. */
    if (st == ice->st)
        return;
    ice->st = st;
    if (st == BOT_ICE_READY)
        describe_selected(ice);
    ice->cbs.state(ice->cbs.ud, st);
}

static void on_recv(NiceAgent *agent, guint stream, guint comp, guint len, gchar *buf, gpointer ud)
{
    bot_ice *ice = ud;
    (void)agent;
    (void)stream;
    (void)comp;
    if (!ice->closed)
        ice->cbs.recv(ice->cbs.ud, (uint8_t *)buf, len);
}

static void set_if_exists(NiceAgent *agent, const char *prop, gboolean v)
{
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(agent), prop))
        g_object_set(agent, prop, v, NULL);
}

static void fwd_error(void *ud, const char *msg)
{
    struct fwd_slot *fs = ud;
    bot_ice *ice = fs->ice;
    bool all = ice->relay_only && !ice->n_turn_udp && !ice->n_turn_tcp;
    fs->failed++;
    for (size_t i = 0; i < ice->n_fwd && all; i++)
        if (!ice->fwd[i].failed || ice->fwd[i].secured)
            all = false;
    if (!ice->closed && ice->cbs.turn_error)
        ice->cbs.turn_error(ice->cbs.ud, msg, all);
}

static void fwd_secured(void *ud, const char *desc)
{
    struct fwd_slot *fs = ud;
    fs->secured++;
    snprintf(fs->ice->tls_desc, sizeof fs->ice->tls_desc, "%s", desc);
}

/* libnice's side of a turns: server: a local forwarder. Its port, or 0. */
static uint16_t start_forwarder(bot_ice *ice, const bot_ice_params *p, const bot_turn *t,
                                const char *ip)
{
    struct fwd_slot *fs = &ice->fwd[ice->n_fwd];
    bot_tlsfwd_params fp = {p->tls, t->host, ip, t->port, 0, 0};
    bot_tlsfwd_cbs fc = {fwd_error, fwd_secured, fs};
    if (!p->tls || ice->n_fwd == BOT_ICE_MAX_TURN)
        return 0;
    fs->ice = ice;
    fs->fwd = bot_tlsfwd_new(&fp, &fc);
    if (!fs->fwd)
        return 0;
    ice->n_fwd++;
    return bot_tlsfwd_port(fs->fwd);
}

/* libnice's side of a turn: UDP server with --turn-family: a local shim.
 * Its port, or 0 (logged). */
static uint16_t start_famshim(bot_ice *ice, const bot_turn *t, const char *ip, uint8_t family)
{
    char err[160];
    bot_turnfam *f;
    if (ice->n_fam == BOT_ICE_MAX_TURN)
        return 0;
    f = bot_turnfam_new(ip, t->port, family, t->pass, err, sizeof err);
    if (!f) {
        RTC_LOG(RTC_LOG_WARN, "ice", "turn:%s:%u: no family shim: %s", t->host, t->port, err);
        return 0;
    }
    ice->fam[ice->n_fam++] = f;
    RTC_LOG(RTC_LOG_INFO, "ice", "turn:%s%s%s:%u (%s) through the local shim 127.0.0.1:%u, "
            "asking for an %s relayed address", strchr(t->host, ':') ? "[" : "", t->host,
            strchr(t->host, ':') ? "]" : "", t->port, ip, bot_turnfam_port(f),
            family == BOT_TURNFAM_IPV6 ? "IPv6" : "IPv4");
    return bot_turnfam_port(f);
}

/* Local addresses: libnice skips loopback, so a loopback TURN server (or
 * our own forwarder) needs 127.0.0.1 / ::1 added by hand; once any address
 * is added libnice uses only those, so when a remote server is reached
 * directly (TURN, STUN) or a forwarder stands for one and direct paths are
 * allowed, the real interfaces go in too. */
static void add_local_addresses(bot_ice *ice, bool lo4, bool lo6, bool others)
{
    for (int v = 0; v < 2; v++) {
        NiceAddress a;
        if (!(v ? lo6 : lo4))
            continue;
        nice_address_init(&a);
        nice_address_set_from_string(&a, v ? "::1" : "127.0.0.1");
        nice_agent_add_local_address(ice->agent, &a);
    }
    if (others && (lo4 || lo6)) {
        GList *ips = nice_interfaces_get_local_ips(FALSE);
        for (GList *i = ips; i; i = i->next) {
            NiceAddress a;
            nice_address_init(&a);
            if (nice_address_set_from_string(&a, i->data))
                nice_agent_add_local_address(ice->agent, &a);
        }
        g_list_free_full(ips, g_free);
    }
}

/* Server-reflexive candidates (RFC 8445 s.5.1.1.2): libnice takes one STUN
 * server per agent (its stun-server / stun-server-port properties, a
 * numeric address), so the first stun: URL that resolves to IPv4 is used;
 * the local addresses are IPv4 (a loopback TURN server adds only
 * 127.0.0.1), and libnice asks a STUN server only from host candidates of
 * its own family. Relay only: no STUN at all (force-relay would ignore it
 * anyway). Returns whether one is used; *lo says whether it is on loopback. */
static bool set_stun_server(bot_ice *ice, const bot_ice_params *p, bool *lo)
{
    for (size_t i = 0; i < p->n_stun && !p->relay_only; i++) {
        char ip[64];
        if (!resolve(p->stun[i].host, AF_INET, ip, sizeof ip, lo)) {
            RTC_LOG(RTC_LOG_INFO, "ice", "stun:%s:%u skipped: no IPv4 address", p->stun[i].host,
                    p->stun[i].port);
            continue;
        }
        g_object_set(ice->agent, "stun-server", ip, "stun-server-port", (guint)p->stun[i].port,
                     NULL);
        snprintf(ice->stun_desc, sizeof ice->stun_desc, "%s:%u (stun:%s:%u)", ip,
                 p->stun[i].port, p->stun[i].host, p->stun[i].port);
        return true;
    }
    return false;
}

static void set_relay(bot_ice *ice, const struct turn_cfg *t)
{
    nice_agent_set_relay_info(ice->agent, ice->stream, 1, t->ip, t->port, t->user, t->pass,
                              t->type);
}

/* TURN server for the agent: now, or (when a STUN server is used, see the
 * top of this file) kept for defer_turn. */
static void add_relay(bot_ice *ice, const char *ip, guint port, const bot_turn *t,
                      NiceRelayType type, bool later)
{
    struct turn_cfg c;
    snprintf(c.ip, sizeof c.ip, "%s", ip);
    c.port = port;
    snprintf(c.user, sizeof c.user, "%s", t->user);
    snprintf(c.pass, sizeof c.pass, "%s", t->pass);
    c.type = type;
    if (later && ice->n_turn_later < BOT_ICE_MAX_TURN)
        ice->turn_later[ice->n_turn_later++] = c;
    else
        set_relay(ice, &c);
}

static gboolean defer_turn(gpointer ud)
{
    bot_ice *ice = ud;
    g_source_unref(ice->turn_src);
    ice->turn_src = NULL;
    for (size_t i = 0; i < ice->n_turn_later; i++)
        set_relay(ice, &ice->turn_later[i]);
    RTC_LOG(RTC_LOG_DEBUG, "ice", "%zu TURN server(s) added after the STUN discovery%s",
            ice->n_turn_later, ice->done_early ? " (its gathering was already done)" : "");
    return G_SOURCE_REMOVE;
}

bot_ice *bot_ice_new(const bot_ice_params *p, const bot_ice_cbs *cbs)
{
    bot_ice *ice = calloc(1, sizeof *ice);
    bool need_lo4 = false, need_lo6 = false, fwd_remote = false, turn_remote = false;
    bool stun_used, stun_lo = false;
    gchar *uf = NULL, *pw = NULL;

    if (!ice)
        return NULL;
    ice->cbs = *cbs;
    ice->relay_only = p->relay_only;
    ice->ctx = g_main_context_ref_thread_default();
    ice->agent = nice_agent_new_full(ice->ctx, NICE_COMPATIBILITY_RFC5245,
                                     NICE_AGENT_OPTION_ICE_TRICKLE);
    if (!ice->agent)
        goto out_free;
    g_object_set(ice->agent, "controlling-mode", (gboolean)p->controlling, "force-relay",
                 (gboolean)p->relay_only, "ice-tcp", FALSE, NULL);
    set_if_exists(ice->agent, "upnp", FALSE);
    ice->stream = nice_agent_add_stream(ice->agent, 1);
    if (!ice->stream)
        goto out_agent;
    stun_used = set_stun_server(ice, p, &stun_lo);
    for (size_t i = 0; i < p->n_turn; i++) {
        char ip[64];
        bool lo = false;
        if (!resolve(p->turn[i].host, AF_UNSPEC, ip, sizeof ip, &lo)) {
            RTC_LOG(RTC_LOG_WARN, "ice", "cannot resolve TURN host %s", p->turn[i].host);
            continue;
        }
        if (p->turn[i].tls) {
            uint16_t lport = start_forwarder(ice, p, &p->turn[i], ip);
            if (!lport) {
                RTC_LOG(RTC_LOG_WARN, "ice", "cannot start the TLS forwarder for %s",
                        p->turn[i].host);
                continue;
            }
            RTC_LOG(RTC_LOG_DEBUG, "ice", "turns:%s:%u (%s) through the local TLS forwarder "
                    "127.0.0.1:%u", p->turn[i].host, p->turn[i].port, ip, lport);
            ice->n_turn_tls++;
            need_lo4 = true;
            fwd_remote |= !lo;
            add_relay(ice, "127.0.0.1", lport, &p->turn[i], NICE_RELAY_TYPE_TURN_TCP, stun_used);
            continue;
        }
        if (p->turn_family && !p->turn[i].tcp) {
            uint16_t lport = start_famshim(ice, &p->turn[i], ip, p->turn_family);
            if (!lport)
                continue;
            ice->n_turn_udp++;
            need_lo4 = true;
            fwd_remote |= !lo;
            add_relay(ice, "127.0.0.1", lport, &p->turn[i], NICE_RELAY_TYPE_TURN_UDP, stun_used);
            continue;
        }
        if (lo && strchr(ip, ':'))
            need_lo6 = true;
        else if (lo)
            need_lo4 = true;
        else
            turn_remote = true;
        if (p->turn[i].tcp)
            ice->n_turn_tcp++;
        else
            ice->n_turn_udp++;
        add_relay(ice, ip, p->turn[i].port, &p->turn[i],
                  p->turn[i].tcp ? NICE_RELAY_TYPE_TURN_TCP : NICE_RELAY_TYPE_TURN_UDP, stun_used);
    }
    /* A loopback STUN server needs 127.0.0.1 like a loopback TURN server;
     * when loopback is added for one server, a remote one (TURN, STUN, or
     * the real server behind a TLS forwarder) needs the real interfaces too. */
    need_lo4 |= stun_used && stun_lo;
    add_local_addresses(ice, need_lo4, need_lo6,
                        (fwd_remote && !p->relay_only) || turn_remote || (stun_used && !stun_lo));
    g_signal_connect(ice->agent, "new-candidate-full", G_CALLBACK(on_new_candidate), ice);
    g_signal_connect(ice->agent, "candidate-gathering-done", G_CALLBACK(on_gathering_done), ice);
    g_signal_connect(ice->agent, "component-state-changed", G_CALLBACK(on_state), ice);
    g_signal_connect(ice->agent, "new-selected-pair-full", G_CALLBACK(on_selected_pair), ice);
    nice_agent_attach_recv(ice->agent, ice->stream, 1, ice->ctx, on_recv, ice);
    if (!nice_agent_get_local_credentials(ice->agent, ice->stream, &uf, &pw))
        goto out_agent;
    snprintf(ice->ufrag, sizeof ice->ufrag, "%s", uf);
    snprintf(ice->pwd, sizeof ice->pwd, "%s", pw);
    g_free(uf);
    g_free(pw);
    if (!nice_agent_gather_candidates(ice->agent, ice->stream))
        goto out_agent;
    if (ice->n_turn_later) {
        /* The STUN name is resolved in a GTask that completes from an idle
         * source of G_PRIORITY_DEFAULT on this context (GResolver hands an
         * IP literal back that way), and it adds the STUN item there. A
         * source one step lower runs only once no default-priority source
         * is ready, so after it; and before the STUN answer can finish
         * gathering (libnice checks that on its 20 ms discovery tick). */
        ice->turn_src = g_idle_source_new();
        g_source_set_priority(ice->turn_src, G_PRIORITY_DEFAULT + 1);
        g_source_set_callback(ice->turn_src, defer_turn, ice, NULL);
        g_source_attach(ice->turn_src, ice->ctx);
    }
    return ice;
out_agent:
    g_signal_handlers_disconnect_by_data(ice->agent, ice);
    g_object_unref(ice->agent);
out_free:
    for (size_t i = 0; i < ice->n_fwd; i++)
        bot_tlsfwd_free(ice->fwd[i].fwd);
    for (size_t i = 0; i < ice->n_fam; i++)
        bot_turnfam_free(ice->fam[i]);
    g_main_context_unref(ice->ctx);
    free(ice);
    return NULL;
}

/* ud: NULL, or a NULL-terminated array of the agent's family shims, which
 * carried its last Refresh (LIFETIME 0) and can go now. */
static void closed_cb(GObject *src, GAsyncResult *res, gpointer ud)
{
    bot_turnfam **fam = ud;
    (void)res;
    g_object_unref(src);
    for (size_t i = 0; fam && fam[i]; i++)
        bot_turnfam_free(fam[i]);
    free(fam);
}

void bot_ice_free(bot_ice *ice)
{
    if (!ice)
        return;
    ice->closed = true;
    if (ice->turn_src) {
        g_source_destroy(ice->turn_src);
        g_source_unref(ice->turn_src);
    }
    g_signal_handlers_disconnect_by_data(ice->agent, ice);
    nice_agent_attach_recv(ice->agent, ice->stream, 1, ice->ctx, NULL, NULL);
    /* close_async lets libnice release TURN allocations; the agent is
     * unreffed when that finishes. */
    {
        bot_turnfam **fam = ice->n_fam ? calloc(ice->n_fam + 1, sizeof *fam) : NULL;
        for (size_t i = 0; i < ice->n_fam; i++) {
            if (fam)
                fam[i] = ice->fam[i];
            else
                bot_turnfam_free(ice->fam[i]); /* no memory: the release may not go out */
        }
        nice_agent_close_async(ice->agent, closed_cb, fam);
    }
    /* The forwarders go now: libnice's TCP sockets to them see EOF, which
     * is how a closing agent's TURN-over-TCP connections end anyway. */
    for (size_t i = 0; i < ice->n_fwd; i++)
        bot_tlsfwd_free(ice->fwd[i].fwd);
    for (size_t i = 0; i < ice->n_pending; i++)
        free(ice->pending[i]);
    g_main_context_unref(ice->ctx);
    free(ice);
}

const char *bot_ice_ufrag(const bot_ice *ice) { return ice->ufrag; }
const char *bot_ice_pwd(const bot_ice *ice) { return ice->pwd; }
const char *bot_ice_selected(const bot_ice *ice) { return ice->selected[0] ? ice->selected : "-"; }

const char *bot_ice_stun_server(const bot_ice *ice) { return ice->stun_desc; }

const char *bot_ice_relay_transport(const bot_ice *ice)
{
    int kinds = (ice->n_turn_udp > 0) + (ice->n_turn_tcp > 0) + (ice->n_turn_tls > 0);
    if (kinds > 1)
        return "mixed";
    return ice->n_turn_tls ? "tls" : ice->n_turn_tcp ? "tcp" : ice->n_turn_udp ? "udp" : "";
}

unsigned bot_ice_tls_sessions(const bot_ice *ice)
{
    unsigned n = 0;
    for (size_t i = 0; i < ice->n_fwd; i++)
        n += ice->fwd[i].secured;
    return n;
}

const char *bot_ice_tls_desc(const bot_ice *ice) { return ice->tls_desc; }

static int add_now(bot_ice *ice, const char *cand)
{
    char buf[600];
    NiceCandidate *c;
    GSList *l;
    int n;
    snprintf(buf, sizeof buf, "%s%s", strncmp(cand, "a=", 2) ? "a=" : "", cand);
    c = nice_agent_parse_remote_candidate_sdp(ice->agent, ice->stream, buf);
    if (!c)
        return RTC_EMSG;
    l = g_slist_append(NULL, c);
    n = nice_agent_set_remote_candidates(ice->agent, ice->stream, 1, l);
    g_slist_free_full(l, (GDestroyNotify)nice_candidate_free);
    return n == 1 ? 0 : RTC_EMSG;
}

int bot_ice_set_remote_credentials(bot_ice *ice, const char *ufrag, const char *pwd)
{
    int err = 0;
    if (!nice_agent_set_remote_credentials(ice->agent, ice->stream, ufrag, pwd))
        return RTC_EMSG;
    ice->have_remote_creds = true;
    for (size_t i = 0; i < ice->n_pending; i++) {
        if (add_now(ice, ice->pending[i]) && !err)
            err = RTC_EMSG;
        free(ice->pending[i]);
    }
    ice->n_pending = 0;
    if (ice->remote_done)
        nice_agent_peer_candidate_gathering_done(ice->agent, ice->stream);
    return 0;
}

int bot_ice_add_remote_candidate(bot_ice *ice, const char *cand)
{
    if (strlen(cand) > 512)
        return RTC_EMSG;
    if (ice->have_remote_creds)
        return add_now(ice, cand);
    if (ice->n_pending == MAX_PENDING)
        return RTC_ELIMIT;
    ice->pending[ice->n_pending] = strdup(cand);
    if (!ice->pending[ice->n_pending])
        return -12;
    ice->n_pending++;
    return 0;
}

void bot_ice_remote_gathering_done(bot_ice *ice)
{
    ice->remote_done = true;
    if (ice->have_remote_creds)
        nice_agent_peer_candidate_gathering_done(ice->agent, ice->stream);
}

int bot_ice_send(bot_ice *ice, const uint8_t *buf, size_t len)
{
    gint n;
    if (ice->st != BOT_ICE_READY && ice->st != BOT_ICE_CONNECTING)
        return RTC_EMSG;
    n = nice_agent_send(ice->agent, ice->stream, 1, (guint)len, (const gchar *)buf);
    return n == (gint)len ? 0 : -11;
}
