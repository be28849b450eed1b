/* bot_sig.c - libwebsockets client adapter (see bot_sig.h).
 *
 * libwebsockets 4.1 on GLib (notes/native-client.md): options is a 64-bit
 * field; foreign_loops[0] is the GMainLoop itself, not its context; never
 * call lws_service; WRITEABLE fires once more during close, so writes are
 * guarded by the connection state. */
#include "bot_sig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "rtc_err.h"
#include "rtc_log.h"

#define MAX_QUEUE 1024          /* messages waiting for WRITEABLE */
#define MAX_MSG (1u << 20)      /* largest frame we accept from the server */
#define PING_MS 15000
#define RESUME_WINDOW_US 25000000ull /* below the server's --resume-seconds default (30) */

struct bot_sig_ctx {
    struct lws_context *lws;
    void *loops[1];
};

typedef enum { SIG_CONNECTING, SIG_OPEN, SIG_WAITING, SIG_CLOSED } sig_state;

struct bot_sig {
    bot_sig_ctx *ctx;
    struct lws *wsi;
    bot_sig_cbs cbs;
    sig_state st;
    char *room, *name;
    char *access_token; /* JWT for join (signaling --token-secret); NULL: none */
    char *url_copy; /* lws_parse_uri cuts this one up */
    GQueue txq;     /* char* JSON texts */
    GString *rx;
    guint ping;
    /* where to (re)connect: pointers into url_copy */
    const char *host;
    char path[512];
    int port;
    bool tls;
    /* resume (DESIGN.md): after a dropped connection, reconnect and take our
     * place back with the token from `joined`, so peers see no peer-left and
     * calls (whose media never touch signaling) go on undisturbed */
    char *resume_token;
    bool resuming;
    bool hold; /* resume written, `resumed` not yet: the rest waits (not-joined otherwise) */
    guint retry;
    unsigned retry_ms;
    uint64_t dropped_at_us;
    /* drain (docs/protocol.md "drain":"resume"): the draining node's
     * connection stays open, and is read, while the new one resumes; its
     * close (4001 once the member moved, or 1001) is expected */
    struct lws *old_wsi;
    GString *old_rx;
    unsigned old_close_code;
};

static int connect_now(bot_sig *s);
static gboolean on_retry(gpointer ud);

/* The node we are on drains and another node can take our place: resume
 * there now, on a new connection, while the old one still delivers. */
static void drain_resume(bot_sig *s)
{
    GString *t;
    RTC_LOG(RTC_LOG_INFO, "sig", "server draining: resuming on a new connection");
    s->old_wsi = s->wsi;
    s->wsi = NULL;
    s->old_close_code = 0;
    t = s->old_rx; /* an unfinished message belongs to the old connection */
    s->old_rx = s->rx;
    s->rx = t;
    g_string_truncate(s->rx, 0);
    s->dropped_at_us = 0;
    s->retry_ms = 0;
    if (connect_now(s)) {
        s->retry_ms = 250;
        s->retry = g_timeout_add(s->retry_ms, on_retry, s);
    }
}

static void dispatch(bot_sig *s, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *m = json_loadb(text, len, 0, &jerr);
    const char *type;

    if (!m || !json_is_object(m)) {
        RTC_LOG(RTC_LOG_WARN, "sig", "bad JSON from server: %s", jerr.text);
        json_decref(m);
        return;
    }
    type = json_string_value(json_object_get(m, "type"));
    if (!type) {
        json_decref(m);
        return;
    }
    if (!strcmp(type, "joined")) {
        const char *id = json_string_value(json_object_get(m, "id"));
        const char *tok = json_string_value(json_object_get(m, "resume"));
        if (tok) {
            free(s->resume_token);
            s->resume_token = strdup(tok);
        }
        if (id)
            s->cbs.joined(s->cbs.ud, id, m);
    } else if (!strcmp(type, "resumed")) {
        const char *id = json_string_value(json_object_get(m, "id"));
        s->resuming = false;
        s->hold = false;
        s->retry_ms = 0;
        s->dropped_at_us = 0;
        if (s->wsi && !g_queue_is_empty(&s->txq)) /* what waited for the resume */
            lws_callback_on_writable(s->wsi);
        RTC_LOG(RTC_LOG_INFO, "sig", "resumed our place as %s", id ? id : "?");
        if (s->cbs.resumed)
            s->cbs.resumed(s->cbs.ud, id ? id : "", m);
    } else if (!strcmp(type, "peer-joined")) {
        const char *id = json_string_value(json_object_get(json_object_get(m, "peer"), "id"));
        if (id)
            s->cbs.peer_joined(s->cbs.ud, id);
    } else if (!strcmp(type, "peer-left")) {
        const char *id = json_string_value(json_object_get(m, "id"));
        if (id)
            s->cbs.peer_left(s->cbs.ud, id);
    } else if (!strcmp(type, "signal")) {
        const char *from = json_string_value(json_object_get(m, "from"));
        json_t *data = json_object_get(m, "data");
        if (from && data)
            s->cbs.signal(s->cbs.ud, from, data);
    } else if (!strcmp(type, "error")) {
        const char *code = json_string_value(json_object_get(m, "code"));
        const char *msg = json_string_value(json_object_get(m, "message"));
        const char *drain = json_string_value(json_object_get(m, "drain"));
        if (drain && !strcmp(drain, "resume") && s->resume_token && !s->resuming &&
            s->st == SIG_OPEN && !s->old_wsi) {
            drain_resume(s);
        } else if (drain) {
            /* alone: the node goes away; after its close we resume (and
             * are refused: a restarted node does not know us) */
            RTC_LOG(RTC_LOG_INFO, "sig", "server draining: %s", msg ? msg : "");
        } else if (s->resuming && code && !strcmp(code, "server-busy")) {
            /* Not now (the cluster cannot hand us over at this moment: Redis,
             * or our member has just moved): our place is still there; drop
             * this connection and resume again after the back-off. */
            s->resuming = false;
            s->hold = false;
            RTC_LOG(RTC_LOG_INFO, "sig", "resume deferred: %s", msg ? msg : "");
            if (s->wsi)
                lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        } else if (s->resuming) {
            /* Our place is gone (expired or unknown token): nothing to
             * resume; the connection is over for this member. */
            s->resuming = false;
            s->hold = false;
            free(s->resume_token);
            s->resume_token = NULL;
            RTC_LOG(RTC_LOG_WARN, "sig", "resume refused: %s %s", code ? code : "?",
                    msg ? msg : "");
            if (s->wsi)
                lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        } else {
            s->cbs.error(s->cbs.ud, code ? code : "?", msg ? msg : "");
        }
    }
    json_decref(m);
}

static int queue_text(bot_sig *s, char *text)
{
    if (!text)
        return -12;
    if (g_queue_get_length(&s->txq) >= MAX_QUEUE) {
        free(text);
        return RTC_ELIMIT;
    }
    g_queue_push_tail(&s->txq, text);
    if (s->st == SIG_OPEN && !s->hold)
        lws_callback_on_writable(s->wsi);
    return 0;
}

static int queue_json(bot_sig *s, json_t *m)
{
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    return queue_text(s, text);
}

static gboolean on_ping(gpointer ud)
{
    bot_sig *s = ud;
    if (s->st == SIG_OPEN && g_queue_is_empty(&s->txq))
        queue_json(s, json_pack("{s:s}", "type", "ping"));
    return G_SOURCE_CONTINUE;
}

/* The connection is gone. Detach from the wsi first: the owner may free s
 * from inside the closed callback, and lws may still call back for this wsi. */
static gboolean on_retry(gpointer ud)
{
    bot_sig *s = ud;
    s->retry = 0;
    if (connect_now(s))
        s->retry = g_timeout_add(s->retry_ms, on_retry, s);
    return G_SOURCE_REMOVE;
}

static uint64_t now_us(void) { return (uint64_t)g_get_monotonic_time(); }

static void mark_closed(bot_sig *s, struct lws *wsi, const char *why)
{
    if (s->st == SIG_CLOSED || s->st == SIG_WAITING)
        return;
    if (wsi)
        lws_set_opaque_user_data(wsi, NULL);
    s->wsi = NULL;
    /* Joined once and still within the resume window: try again, backing
     * off from 250 ms to 4 s. */
    if (s->resume_token) {
        if (!s->dropped_at_us || s->st == SIG_OPEN)
            s->dropped_at_us = now_us();
        if (now_us() - s->dropped_at_us < RESUME_WINDOW_US) {
            s->st = SIG_WAITING;
            s->retry_ms = s->retry_ms ? (s->retry_ms >= 2000 ? 4000 : s->retry_ms * 2) : 250;
            RTC_LOG(RTC_LOG_WARN, "sig", "connection lost (%s); resuming in %u ms", why,
                    s->retry_ms);
            s->retry = g_timeout_add(s->retry_ms, on_retry, s);
            return;
        }
    }
    s->st = SIG_CLOSED;
    s->cbs.closed(s->cbs.ud, why);
}

static int write_one(bot_sig *s, struct lws *wsi)
{
    char *text = g_queue_pop_head(&s->txq);
    size_t n;
    unsigned char *buf;
    int rc;
    if (!text)
        return 0;
    n = strlen(text);
    buf = malloc(LWS_PRE + n);
    if (!buf) {
        free(text);
        return -1;
    }
    memcpy(buf + LWS_PRE, text, n);
    free(text);
    rc = lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT);
    free(buf);
    if (rc < (int)n)
        return -1;
    if (s->resuming)
        s->hold = true; /* that was the resume: the rest goes after `resumed` */
    else if (!g_queue_is_empty(&s->txq))
        lws_callback_on_writable(wsi);
    return 0;
}

/* The draining node's connection: read to the end, never written again.
 * Its close is expected (4001: our member moved; 1001: drain over). */
static int old_callback(bot_sig *s, struct lws *wsi, enum lws_callback_reasons reason, void *in,
                        size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (s->old_rx->len + len > MAX_MSG)
            return -1;
        g_string_append_len(s->old_rx, in, (gssize)len);
        if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
            dispatch(s, s->old_rx->str, s->old_rx->len);
            g_string_truncate(s->old_rx, 0);
        }
        break;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2)
            s->old_close_code = (unsigned)((const uint8_t *)in)[0] << 8 | ((const uint8_t *)in)[1];
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    case LWS_CALLBACK_CLIENT_CLOSED:
        RTC_LOG(RTC_LOG_INFO, "sig", "old connection closed (%u)%s", s->old_close_code,
                s->old_close_code == 4001 ? ": our place moved to the new one" : "");
        lws_set_opaque_user_data(wsi, NULL);
        s->old_wsi = NULL;
        g_string_truncate(s->old_rx, 0);
        break;
    default:
        break;
    }
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    bot_sig *s = lws_get_opaque_user_data(wsi);
    (void)user;

    if (!s) /* owner already gone (bot_sig_free) */
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    if (wsi == s->old_wsi)
        return old_callback(s, wsi, reason, in, len);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        s->st = SIG_OPEN;
        s->hold = false; /* a resume cut short on an earlier connection */
        s->resuming = false;
        {
            json_t *j;
            if (s->resume_token) {
                j = json_pack("{s:s,s:s}", "type", "resume", "token", s->resume_token);
                s->resuming = true;
            } else {
                j = json_pack("{s:s,s:s}", "type", "join", "room", s->room);
                if (s->name)
                    json_object_set_new(j, "name", json_string(s->name));
                if (s->access_token)
                    json_object_set_new(j, "token", json_string(s->access_token));
            }
            /* join/resume goes first, ahead of anything queued meanwhile */
            char *text = json_dumps(j, JSON_COMPACT);
            json_decref(j);
            if (text)
                g_queue_push_head(&s->txq, text);
        }
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (s->rx->len + len > MAX_MSG) {
            mark_closed(s, wsi, "message from server too large");
            return -1;
        }
        g_string_append_len(s->rx, in, (gssize)len);
        if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
            dispatch(s, s->rx->str, s->rx->len);
            g_string_truncate(s->rx, 0);
        }
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (s->st != SIG_OPEN || s->hold)
            break;
        return write_one(s, wsi);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        RTC_LOG(RTC_LOG_WARN, "sig", "connect failed: %s", in ? (const char *)in : "?");
        mark_closed(s, wsi, in ? (const char *)in : "connection error");
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        mark_closed(s, wsi, "closed by server");
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"tsunagu-bot", callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

bot_sig_ctx *bot_sig_ctx_new(GMainLoop *loop, bool verbose)
{
    bot_sig_ctx *c = calloc(1, sizeof *c);
    struct lws_context_creation_info info;

    if (!c)
        return NULL;
    lws_set_log_level(verbose ? (LLL_ERR | LLL_WARN) : LLL_ERR, NULL);
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    /* uint64_t: stored in an int the GLIB bit would silently vanish. */
    info.options = (uint64_t)LWS_SERVER_OPTION_GLIB | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    c->loops[0] = loop;
    info.foreign_loops = c->loops;
    c->lws = lws_create_context(&info);
    if (!c->lws) {
        free(c);
        return NULL;
    }
    return c;
}

void bot_sig_ctx_free(bot_sig_ctx *c)
{
    if (!c)
        return;
    lws_context_destroy(c->lws);
    free(c);
}

static int connect_now(bot_sig *s)
{
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = s->ctx->lws;
    i.address = s->host;
    i.port = s->port;
    i.path = s->path;
    i.host = s->host;
    i.origin = s->host;
    i.ssl_connection = s->tls ? LCCSCF_USE_SSL : 0;
    i.local_protocol_name = "tsunagu-bot";
    i.opaque_user_data = s;
    i.pwsi = &s->wsi;
    s->st = SIG_CONNECTING;
    if (!lws_client_connect_via_info(&i)) {
        s->st = SIG_WAITING;
        return RTC_EMSG;
    }
    return 0;
}

bot_sig *bot_sig_new(bot_sig_ctx *c, const char *url, const char *room, const char *name,
                     const bot_sig_cbs *cbs)
{
    bot_sig *s = calloc(1, sizeof *s);
    const char *proto = NULL, *path = NULL;

    if (!s)
        return NULL;
    s->ctx = c;
    s->cbs = *cbs;
    s->room = strdup(room);
    s->name = name ? strdup(name) : NULL;
    s->url_copy = strdup(url);
    s->rx = g_string_new(NULL);
    s->old_rx = g_string_new(NULL);
    g_queue_init(&s->txq);
    if (!s->room || !s->url_copy || lws_parse_uri(s->url_copy, &proto, &s->host, &s->port, &path))
        goto out_free;
    if (strcmp(proto, "ws") && strcmp(proto, "wss"))
        goto out_free;
    s->tls = !strcmp(proto, "wss");
    /* lws_parse_uri drops the leading '/' of the path. */
    snprintf(s->path, sizeof s->path, "/%s", path);
    if (connect_now(s)) {
        RTC_LOG(RTC_LOG_WARN, "sig", "cannot start connection to %s", url);
        goto out_free;
    }
    s->ping = g_timeout_add(PING_MS, on_ping, s);
    return s;
out_free:
    free(s->room);
    free(s->name);
    free(s->url_copy);
    g_string_free(s->rx, TRUE);
    g_string_free(s->old_rx, TRUE);
    free(s);
    return NULL;
}

void bot_sig_free(bot_sig *s)
{
    char *t;
    if (!s)
        return;
    if (s->wsi) {
        /* Detach first so no callback reaches freed memory, then let lws
         * close it from its own loop. */
        lws_set_opaque_user_data(s->wsi, NULL);
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    }
    if (s->old_wsi) {
        lws_set_opaque_user_data(s->old_wsi, NULL);
        lws_set_timeout(s->old_wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
    }
    if (s->ping)
        g_source_remove(s->ping);
    if (s->retry)
        g_source_remove(s->retry);
    free(s->resume_token);
    while ((t = g_queue_pop_head(&s->txq)))
        free(t);
    free(s->room);
    free(s->name);
    free(s->access_token);
    free(s->url_copy);
    g_string_free(s->rx, TRUE);
    g_string_free(s->old_rx, TRUE);
    free(s);
}

void bot_sig_set_token(bot_sig *s, const char *token)
{
    free(s->access_token);
    s->access_token = token ? strdup(token) : NULL;
}

int bot_sig_send(bot_sig *s, const char *to, json_t *data)
{
    json_t *m = json_pack("{s:s,s:s,s:o}", "type", "signal", "to", to, "data", data);
    if (!m)
        return RTC_EMSG;
    if (s->st == SIG_CLOSED) {
        json_decref(m);
        return RTC_EMSG;
    }
    return queue_json(s, m);
}
