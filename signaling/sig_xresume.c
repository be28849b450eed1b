/* sig_xresume.c - resume across nodes on the lws thread (see sig_xresume.h;
 * the ordering argument is "Hand-over" at the top of sig_handover.c). The
 * asking side's decisions are sig_resume's; this file carries them out. */
#include "sig_xresume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_err.h"
#include "rtc_log.h"
#include "sig_proto.h"
#include "sig_cluster_st.h"
#include "sig_resume.h"
#include "sig_session.h"

/* One hand-over this node asked for. */
typedef struct sig_ho {
    struct sig_ho *next;
    sig_client *c; /* the resuming connection; NULL once it closed */
    char *token;   /* what the client sent: the member keeps it */
    sig_resume r;
    /* per kept copy (r.buf), its room-stream id ("" if none): a claim's
     * reply drops those it carries itself (sig_hoclaim.c) */
    char (*kx)[48];
    size_t nkx, kxcap;
} ho;

struct sig_xresume {
    sig_xresume_params p;
    ho *hos; /* in flight (at most SIG_HO_MAX) */
    size_t n;
    uint64_t ok, failed; /* hand-overs asked for: adopted / lost here */
};

sig_xresume *sig_xresume_new(const sig_xresume_params *p)
{
    sig_xresume *x = calloc(1, sizeof *x);
    if (x)
        x->p = *p;
    return x;
}

static void ho_free(sig_xresume *x, ho *h)
{
    ho **pp = &x->hos;
    while (*pp && *pp != h)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = h->next;
        x->n--;
    }
    if (h->c)
        h->c->ho = NULL;
    sig_resume_dispose(&h->r);
    free(h->kx);
    if (h->token)
        memset(h->token, 0, strlen(h->token));
    free(h->token);
    free(h);
}

void sig_xresume_free(sig_xresume *x)
{
    if (!x)
        return;
    while (x->hos) /* hand-overs still waiting: their connections are gone */
        ho_free(x, x->hos);
    free(x);
}

static ho *ho_find(sig_xresume *x, uint64_t serial)
{
    ho *h = x->hos;
    while (h && h->r.serial != serial)
        h = h->next;
    return h;
}

bool sig_xresume_open(const sig_xresume *x) { return x->hos != NULL; }

void sig_xresume_counts(const sig_xresume *x, uint64_t *ok, uint64_t *failed)
{
    *ok = x->ok;
    *failed = x->failed;
}

sig_code sig_xresume_ask(sig_xresume *x, sig_client *c, uint64_t serial, const char *token,
                         uint64_t now_us, const char **why)
{
    ho *h;
    int rc;
    if (x->n >= SIG_HO_MAX) {
        *why = "too many resumes in flight; try again";
        return SIG_E_SERVER_BUSY;
    }
    if (!(h = calloc(1, sizeof *h)) || !(h->token = strdup(token))) {
        free(h);
        *why = "out of memory";
        return SIG_E_SERVER_BUSY;
    }
    /* a last resort if the Redis thread's answer never comes (its own bound
     * is SIG_HO_TIMEOUT_MS) */
    sig_resume_init(&h->r, serial, now_us + (SIG_HO_TIMEOUT_MS + 3000) * 1000ull);
    h->c = c;
    h->next = x->hos;
    x->hos = h;
    x->n++;
    c->ho = h;
    if ((rc = sig_handover_ask(x->p.handover, serial, token, sig_member_numbered(c->m),
                               sig_member_seq(c->m)))) {
        ho_free(x, h);
        *why = rc == RTC_EUNSUP ? "cluster store (Redis) unavailable"
                                : "too many operations in flight";
        return SIG_E_SERVER_BUSY;
    }
    return SIG_OK;
}

void sig_xresume_client_gone(sig_xresume *x, sig_client *c)
{
    (void)x;
    if (c->ho) {
        c->ho->c = NULL;
        c->ho = NULL;
    }
}

/* sig_resume_keep, noting the copy's room-stream id */
static void keep(ho *h, const char *text, const sig_cev *e, size_t max_msgs, size_t max_bytes)
{
    size_t before = h->r.nbuf;
    sig_resume_keep(&h->r, text, max_msgs, max_bytes);
    if (h->r.nbuf == before)
        return;
    if (h->nkx == h->kxcap) {
        size_t cap = h->kxcap ? 2 * h->kxcap : 16;
        char(*nk)[48] = realloc(h->kx, cap * sizeof *nk);
        if (!nk) {
            h->r.overflow = true; /* (cannot tell it from the claim's own: incomplete) */
            return;
        }
        h->kx = nk;
        h->kxcap = cap;
    }
    snprintf(h->kx[h->nkx++], sizeof h->kx[0], "%s", e->x);
}

/* A copy kept since the request that a claim's reply carries already: from
 * the room stream at or before where the reply's part of it ends (xc). */
static bool in_claim(const ho *h, size_t i, const char *xc)
{
    sig_stid a, b;
    return xc[0] && i < h->nkx && h->kx[i][0] &&
           sig_stid_parse(h->kx[i], strlen(h->kx[i]), &a) &&
           sig_stid_parse(xc, strlen(xc), &b) && sig_stid_cmp(a, b) <= 0;
}

/* A signal, broadcast, join or leave seen while hand-overs wait: each
 * hand-over's machine says whether it is the member's (see sig_resume). */
void sig_xresume_capture(sig_xresume *x, const sig_cev *e, uint64_t now_us, size_t max_msgs,
                         size_t max_bytes)
{
    bool bc = e->kind == SIG_CEV_BROADCAST;
    sig_resume_event ev = {
        .room = e->room, .from = e->id, .to = e->to, .node = e->node, .broadcast = bc,
        .membership = e->kind == SIG_CEV_PEER_JOINED || e->kind == SIG_CEV_PEER_LEFT,
        .own = e->own};
    char *text = NULL;
    bool rendered = false;
    for (ho *h = x->hos; h; h = h->next) {
        switch (sig_resume_classify(&h->r, &ev)) {
        case SIG_RESUME_PASS_ON:
            sig_hub_deliver_one(x->p.hub, e->room, h->r.id, e->id, bc, e->data, now_us);
            sig_resume_passed(&h->r);
            break;
        case SIG_RESUME_KEEP:
            if (!rendered) {
                rendered = true;
                text = e->kind == SIG_CEV_PEER_JOINED ? sig_proto_peer_joined(e->id, e->name)
                       : e->kind == SIG_CEV_PEER_LEFT
                           ? sig_proto_peer_left(e->id)
                           : sig_proto_forward(bc ? "broadcast" : "signal", e->id, e->data);
            }
            keep(h, text, e, max_msgs, max_bytes);
            break;
        case SIG_RESUME_IGNORE:
        default:
            break;
        }
    }
    free(text);
}

/* The owner side: another node asks for one of our members. */
void sig_xresume_request(sig_xresume *x, const sig_cev *e, uint64_t t)
{
    char **texts = NULL, *name = NULL, bound[SIG_ROOM_MAX + SIG_ID_MAX + SIG_TH_LEN + 96];
    size_t n = 0;
    uint8_t key[SIG_HO_KEY_LEN] = {0};
    uint64_t seq = 0;
    sig_hand_over_req q = {.room = e->room, .id = e->id, .proof = e->proof, .bound = bound,
                           .reply_key = key, .seq = &seq};
    sig_code rc = SIG_E_UNAUTHORIZED;
    for (ho *h = x->hos; h; h = h->next) {
        if (h->r.state == SIG_RESUME_TAIL && !strcmp(h->r.room, e->room) &&
            !strcmp(h->r.id, e->id)) {
            /* adopted here moments ago, our own publishes to it still on
             * their way back (its tail): they are not in its queue yet, and
             * the asking node would skip them as ours. Not now; the client
             * retries once the fence is back. */
            RTC_LOG(RTC_LOG_INFO, e->id, "hand-over to node %s deferred: just adopted here",
                    e->node);
            sig_handover_reply_busy(x->p.handover, e);
            return;
        }
    }
    /* the proof binds the asking node, the serial, the member and its token's
     * hash; a serial not newer than the last one served for that node is a
     * replay (of a request that Redis's readers saw) */
    if (sig_ho_bound(bound, sizeof bound, e->node, e->serial, e->room, e->id, e->th) &&
        sig_handover_fresh(x->p.handover, e->node, e->serial))
        rc = sig_hub_hand_over(x->p.hub, &q, &texts, &n, &name, t);
    if (rc == SIG_OK)
        sig_handover_served(x->p.handover, e->node, e->serial);
    if (rc == SIG_OK)
        RTC_LOG(RTC_LOG_INFO, e->id, "handed over to node %s with %zu queued messages (resume "
                "there)", e->node, n);
    else
        RTC_LOG(RTC_LOG_INFO, e->id, "hand-over to node %s refused", e->node);
    sig_handover_reply(x->p.handover, e, rc == SIG_OK, key, name, texts, n, seq);
    memset(key, 0, sizeof key); /* (the token's key: memory only, as short as can be) */
    free(name);
}

void sig_xresume_mark(sig_xresume *x, const sig_cev *e)
{
    ho *h = ho_find(x, e->serial);
    if (h)
        sig_resume_mark(&h->r, e->room, e->id, e->node, e->drops);
}

/* Adopt the member: the owner's queue, then what came after the request,
 * in order. SIG_OK or why not. */
static sig_code adopt(sig_xresume *x, ho *h, sig_member *m, const sig_cev *e, uint64_t t)
{
    sig_remote *v = calloc(e->nmembers + 1, sizeof *v);
    const char **texts = calloc(e->ntexts + h->r.nbuf + 1, sizeof *texts);
    sig_adopt_params p;
    sig_code rc = SIG_E_SERVER_BUSY;
    if (m && v && texts) {
        for (size_t i = 0; i < e->nmembers; i++)
            v[i] = (sig_remote){.id = e->members[i].id, .name = e->members[i].name};
        for (size_t i = 0; i < e->ntexts; i++)
            texts[i] = e->texts[i];
        size_t k = e->ntexts;
        for (size_t i = 0; i < h->r.nbuf; i++)
            if (!in_claim(h, i, e->x))
                texts[k++] = h->r.buf[i];
        p = (sig_adopt_params){.room = e->room, .id = e->id, .name = e->name, .resume = h->token,
                               .texts = texts, .ntexts = k, .remotes = v,
                               .nremotes = e->nmembers, .hold = true, .seq = e->ho_seq};
        rc = sig_hub_adopt(x->p.hub, m, &p, t);
    }
    free(v);
    free(texts);
    return rc;
}

void sig_xresume_done(sig_xresume *x, const sig_cev *e, uint64_t t, uint32_t resume_s)
{
    ho *h = ho_find(x, e->serial);
    sig_client *c;
    sig_member *m = NULL;
    sig_code rc = SIG_E_SERVER_BUSY;
    size_t kept;

    if (!h) { /* given up (expired): never keep a member nobody has the messages of */
        if (e->result == SIG_OK)
            sig_cluster_leave(x->p.cluster, e->room, e->id);
        return;
    }
    c = h->c;
    kept = h->r.nbuf;
    switch (sig_resume_done(&h->r, e->result == SIG_OK, e->drops)) {
    case SIG_RESUME_STRAY:
        return; /* answered already: this one changes nothing */
    case SIG_RESUME_FAILED:
        if (c)
            x->p.tell(c,
                      e->result == SIG_E_SERVER_BUSY || e->result == SIG_E_RATE_LIMITED
                          ? e->result : SIG_E_UNAUTHORIZED,
                      e->result == SIG_E_SERVER_BUSY    ? "cannot take the member over now; try again"
                      : e->result == SIG_E_RATE_LIMITED ? "resumed on another node too often "
                                                          "(max-resumes-per-member-per-min); "
                                                          "resume on the node it is on, or later"
                                                        : "unknown or expired resume token");
        ho_free(x, h);
        return;
    case SIG_RESUME_ADOPT:
        m = c ? c->m : sig_hub_connect(x->p.hub, NULL);
        rc = adopt(x, h, m, e, t);
        sig_resume_adopted(&h->r, rc == SIG_OK, t);
        break;
    case SIG_RESUME_INCOMPLETE:
    default:
        if (!c)
            m = sig_hub_connect(x->p.hub, NULL); /* (as before: then disconnected below) */
        break;
    }
    if (rc != SIG_OK) {
        /* registered here by the owner, but not complete (or no memory): it
         * leaves, like a reader that fell too far behind */
        x->failed++;
        sig_cluster_leave(x->p.cluster, e->room, e->id);
        if (c)
            x->p.tell(c, SIG_E_UNAUTHORIZED, "resume failed; join again");
        else if (m)
            sig_hub_disconnect(x->p.hub, m, false, t);
        RTC_LOG(RTC_LOG_WARN, e->id, "resume hand-over from node %s failed%s", e->node,
                h->r.overflow ? ": too many messages meanwhile" : "");
    } else {
        x->ok++;
        RTC_LOG(RTC_LOG_INFO, e->id, "resumed from %s, handed over by node %s (%zu + %zu queued)",
                c ? c->peer : "(gone meanwhile; kept for resume)", e->node, e->ntexts, kept);
        /* gone meanwhile: kept for resume here; attached: its entries must not
         * expire under it (the old node may have set a TTL when it dropped) */
        sig_handover_token_ttl(x->p.handover, h->token, e->id, c ? 0 : resume_s + 5);
    }
    sig_handover_fence(x->p.handover, e->room, h->r.serial);
    if (rc != SIG_OK) {
        ho_free(x, h);
        return;
    }
    /* keep the record until the fence is back (the tail: capture passes
     * our own earlier publishes on) */
    if (h->c)
        h->c->ho = NULL;
    h->c = NULL;
}

void sig_xresume_fence(sig_xresume *x, const sig_cev *e)
{
    ho *h = ho_find(x, e->serial);
    if (!h)
        return;
    if (sig_resume_fence(&h->r)) { /* the tail is through: what waited follows */
        size_t held = sig_hub_release(x->p.hub, h->r.room, h->r.id);
        RTC_LOG(RTC_LOG_INFO, h->r.id,
                "hand-over complete: %zu of this node's earlier messages passed on "
                "through the tail, %zu held until the fence", h->r.ntail, held);
        ho_free(x, h);
    }
}

/* The Redis thread bounds both the answer and the fence, so this only runs
 * when one of its events was lost (no memory). A client never waits
 * forever. */
void sig_xresume_expire(sig_xresume *x, uint64_t t)
{
    for (ho *h = x->hos, *nx; h; h = nx) {
        nx = h->next;
        switch (sig_resume_expire(&h->r, t)) {
        case SIG_RESUME_RELEASE:
            sig_hub_release(x->p.hub, h->r.room, h->r.id);
            ho_free(x, h);
            break;
        case SIG_RESUME_GIVE_UP:
            if (h->c)
                x->p.tell(h->c, SIG_E_UNAUTHORIZED, "unknown or expired resume token");
            ho_free(x, h);
            break;
        case SIG_RESUME_NOT_YET:
        default:
            break;
        }
    }
}
