/* bot_sdp.c - bounds-checked SDP parser and offer/answer builder (see
 * bot_sdp.h). Every byte is read through rtc_rd: a line is carved out as a
 * sub-reader, and each field of it is carved again, so no index ever walks
 * past the text the caller handed in. */
#include "bot_sdp.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rtc_err.h"
#include "rtc_rd.h"

/* Carve the next line (without its CR/LF) out of r. False at the end. */
static bool next_line(rtc_rd *r, rtc_rd *line)
{
    const uint8_t *nl;
    size_t n;

    if (rtc_rd_left(r) == 0)
        return false;
    nl = memchr(r->p, '\n', rtc_rd_left(r));
    n = nl ? (size_t)(nl - r->p) : rtc_rd_left(r);
    rtc_rd_sub(r, n, line);
    if (nl)
        rtc_rd_skip(r, 1);
    if (rtc_rd_left(line) && line->end[-1] == '\r')
        line->end--;
    return true;
}

/* Does the line start with `prefix`? If so, consume it. */
static bool eat(rtc_rd *r, const char *prefix)
{
    size_t n = strlen(prefix);
    const uint8_t *p = rtc_rd_peek(r, n);
    if (!p || memcmp(p, prefix, n) != 0)
        return false;
    rtc_rd_skip(r, n);
    return true;
}

/* Next space-separated token as a sub-reader; leading spaces are skipped. */
static bool token(rtc_rd *r, rtc_rd *tok)
{
    const uint8_t *sp;
    while (rtc_rd_left(r) && r->p[0] == ' ')
        rtc_rd_skip(r, 1);
    if (!rtc_rd_left(r))
        return false;
    sp = memchr(r->p, ' ', rtc_rd_left(r));
    return rtc_rd_sub(r, sp ? (size_t)(sp - r->p) : rtc_rd_left(r), tok);
}

/* Copy a reader's bytes into a fixed buffer as a C string. Embedded NULs
 * and over-long values are errors: the view never holds a cut-off value. */
static bool to_str(const rtc_rd *v, char *out, size_t cap)
{
    size_t n = rtc_rd_left(v);
    if (n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v->p[i] < 0x20 || v->p[i] == 0x7f)
            return false; /* values are echoed into answers: no CR, LF, NUL */
    memcpy(out, v->p, n);
    out[n] = '\0';
    return true;
}

static bool to_uint(const rtc_rd *v, uint32_t max, uint32_t *out)
{
    uint64_t x = 0;
    size_t n = rtc_rd_left(v);
    if (n == 0 || n > 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (v->p[i] < '0' || v->p[i] > '9')
            return false;
        x = x * 10 + (uint64_t)(v->p[i] - '0');
    }
    if (x > max)
        return false;
    *out = (uint32_t)x;
    return true;
}

static bot_setup parse_setup(const rtc_rd *v)
{
    static const struct { const char *s; bot_setup v; } tab[] = {
        {"actpass", BOT_SETUP_ACTPASS}, {"active", BOT_SETUP_ACTIVE},
        {"passive", BOT_SETUP_PASSIVE}, {"holdconn", BOT_SETUP_HOLDCONN}};
    size_t n = rtc_rd_left(v);
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strlen(tab[i].s) == n && memcmp(tab[i].s, v->p, n) == 0)
            return tab[i].v;
    return BOT_SETUP_NONE;
}

/* "m=<media> <port>[/<n>] <proto> <fmt> ..." (RFC 8866 s.5.14) */
static int parse_mline(rtc_rd *r, bot_sdp_mline *m)
{
    rtc_rd tmedia, tport, tproto;
    uint32_t port;
    const uint8_t *slash;

    if (!token(r, &tmedia) || !token(r, &tport) || !token(r, &tproto))
        return RTC_EMSG;
    slash = memchr(tport.p, '/', rtc_rd_left(&tport));
    if (slash)
        tport.end = slash;
    if (!to_str(&tmedia, m->media, sizeof m->media) || !to_uint(&tport, 65535, &port) ||
        !to_str(&tproto, m->proto, sizeof m->proto))
        return RTC_EMSG;
    m->port = (uint16_t)port;
    while (rtc_rd_left(r) && r->p[0] == ' ')
        rtc_rd_skip(r, 1);
    if (!rtc_rd_left(r) || !to_str(r, m->fmts, sizeof m->fmts))
        return RTC_EMSG; /* at least one format is mandatory */
    m->opus_pt = -1;
    return 0;
}

/* "a=rtpmap:<pt> <name>/<rate>[/<channels>]": remember Opus at 48 kHz. */
static int parse_rtpmap(rtc_rd *r, bot_sdp_mline *m)
{
    rtc_rd tpt, tenc;
    uint32_t pt;
    if (!token(r, &tpt) || !token(r, &tenc) || !to_uint(&tpt, 127, &pt))
        return RTC_EMSG;
    if (m->opus_pt < 0 && rtc_rd_left(&tenc) >= 10 && strncasecmp((const char *)tenc.p, "opus/48000", 10) == 0)
        m->opus_pt = (int)pt;
    return 0;
}

typedef struct {
    char ufrag[BOT_SDP_TOKEN], pwd[BOT_SDP_TOKEN];
    char fp_alg[16], fp[BOT_SDP_FP_HEX];
    bot_setup setup;
} session_attrs;

/* One a= line, at session level (m == NULL) or inside an m-line. */
static int parse_attr(bot_sdp *s, rtc_rd *r, bot_sdp_mline *m, session_attrs *sess)
{
    char *ufrag = m ? m->ufrag : sess->ufrag, *pwd = m ? m->pwd : sess->pwd;
    char *fp_alg = m ? m->fp_alg : sess->fp_alg, *fp = m ? m->fp : sess->fp;
    bot_setup *setup = m ? &m->setup : &sess->setup;
    rtc_rd t1, t2;

    if (eat(r, "ice-ufrag:"))
        return to_str(r, ufrag, BOT_SDP_TOKEN) ? 0 : RTC_EMSG;
    if (eat(r, "ice-pwd:"))
        return to_str(r, pwd, BOT_SDP_TOKEN) ? 0 : RTC_EMSG;
    if (eat(r, "fingerprint:")) {
        if (!token(r, &t1) || !token(r, &t2) || !to_str(&t1, fp_alg, 16) ||
            !to_str(&t2, fp, BOT_SDP_FP_HEX))
            return RTC_EMSG;
        return 0;
    }
    if (eat(r, "setup:")) {
        *setup = parse_setup(r);
        return *setup == BOT_SETUP_NONE ? RTC_EMSG : 0;
    }
    if (eat(r, "group:BUNDLE")) {
        while (rtc_rd_left(r) && r->p[0] == ' ')
            rtc_rd_skip(r, 1);
        return to_str(r, s->bundle, sizeof s->bundle) ? 0 : RTC_EMSG;
    }
    if (eat(r, "end-of-candidates")) {
        s->end_of_candidates = true;
        return 0;
    }
    if (!m)
        return 0; /* other session attributes do not concern the bot */
    if (eat(r, "mid:"))
        return to_str(r, m->mid, sizeof m->mid) ? 0 : RTC_EMSG;
    if (eat(r, "rtcp-mux")) {
        m->rtcp_mux = true;
        return 0;
    }
    if (eat(r, "rtpmap:"))
        return parse_rtpmap(r, m);
    if (eat(r, "ssrc:")) {
        uint32_t ssrc;
        if (!token(r, &t1) || !to_uint(&t1, UINT32_MAX, &ssrc))
            return RTC_EMSG;
        if (!m->ssrc)
            m->ssrc = ssrc;
        return 0;
    }
    if (rtc_rd_peek(r, 10) && memcmp(r->p, "candidate:", 10) == 0) {
        bot_sdp_cand *c;
        if (s->n_cands == BOT_SDP_MAX_CANDS)
            return 0; /* enough to connect; the rest are dropped */
        c = &s->cands[s->n_cands];
        if (!to_str(r, c->cand, sizeof c->cand))
            return RTC_EMSG;
        c->mline = (int)(m - s->m);
        s->n_cands++;
    }
    return 0;
}

int bot_sdp_parse(bot_sdp *s, const char *text, size_t len)
{
    rtc_rd r, line;
    session_attrs sess;
    bot_sdp_mline *m = NULL;
    bool saw_v = false;

    memset(s, 0, sizeof *s);
    memset(&sess, 0, sizeof sess);
    if (!text || len > BOT_SDP_MAX_LEN)
        return RTC_EMSG;
    rtc_rd_init(&r, text, len);
    while (next_line(&r, &line)) {
        uint8_t kind, eq;
        int err = 0;
        if (rtc_rd_left(&line) == 0)
            continue; /* tolerate a trailing empty line */
        if (!rtc_rd_u8(&line, &kind) || !rtc_rd_u8(&line, &eq) || eq != '=')
            return RTC_EMSG;
        if (!saw_v) {
            if (kind != 'v')
                return RTC_EMSG; /* RFC 8866 s.5: v= comes first */
            saw_v = true;
            continue;
        }
        switch (kind) {
        case 'm':
            if (s->n_m == BOT_SDP_MAX_MLINES)
                return RTC_EMSG;
            m = &s->m[s->n_m++];
            err = parse_mline(&line, m);
            break;
        case 'a':
            err = parse_attr(s, &line, m, &sess);
            break;
        default:
            break; /* o= s= c= t= b= ... carry nothing the bot needs */
        }
        if (err)
            return err;
    }
    if (!saw_v || s->n_m == 0)
        return RTC_EMSG;
    /* Session-level values apply wherever the m-line has none. */
    for (size_t i = 0; i < s->n_m; i++) {
        bot_sdp_mline *x = &s->m[i];
        if (!x->ufrag[0])
            memcpy(x->ufrag, sess.ufrag, sizeof x->ufrag);
        if (!x->pwd[0])
            memcpy(x->pwd, sess.pwd, sizeof x->pwd);
        if (!x->fp[0]) {
            memcpy(x->fp_alg, sess.fp_alg, sizeof x->fp_alg);
            memcpy(x->fp, sess.fp, sizeof x->fp);
        }
        if (x->setup == BOT_SETUP_NONE)
            x->setup = sess.setup;
    }
    return 0;
}

int bot_sdp_audio_index(const bot_sdp *s)
{
    for (size_t i = 0; i < s->n_m; i++)
        if (!strcmp(s->m[i].media, "audio") && s->m[i].port != 0 && s->m[i].opus_pt >= 0)
            return (int)i;
    return -1;
}

const char *bot_setup_name(bot_setup s)
{
    switch (s) {
    case BOT_SETUP_ACTPASS: return "actpass";
    case BOT_SETUP_ACTIVE: return "active";
    case BOT_SETUP_PASSIVE: return "passive";
    case BOT_SETUP_HOLDCONN: return "holdconn";
    default: return "none";
    }
}

/* A bounded text appender: output past `cap` marks overflow, never writes. */
typedef struct {
    char *p;
    size_t len, cap;
    bool overflow;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (b->overflow)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->overflow = true;
        b->p[b->len] = '\0';
        return;
    }
    b->len += (size_t)n;
}

static void put_session(sbuf *b, const bot_sdp_local *l, const char *bundle)
{
    put(b, "v=0\r\no=- %llu %llu IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
        (unsigned long long)(l->session_id & 0x7fffffffffffffffull),
        2ull + l->session_version);
    if (bundle && bundle[0])
        put(b, "a=group:BUNDLE %s\r\n", bundle);
    put(b, "a=msid-semantic: WMS tsunagu\r\n");
}

/* The accepted audio m-line, shared by offer and answer. */
static void put_audio(sbuf *b, const bot_sdp_local *l, const char *mid, int pt)
{
    put(b, "m=audio 9 UDP/TLS/RTP/SAVPF %d\r\n"
           "c=IN IP4 0.0.0.0\r\n"
           "a=rtcp:9 IN IP4 0.0.0.0\r\n"
           "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=ice-options:trickle\r\n"
           "a=fingerprint:sha-256 %s\r\n"
           "a=setup:%s\r\na=mid:%s\r\na=sendrecv\r\na=msid:tsunagu audio0\r\na=rtcp-mux\r\n"
           "a=rtpmap:%d opus/48000/2\r\na=fmtp:%d minptime=10;useinbandfec=1\r\n"
           "a=ssrc:%u cname:%s\r\na=ssrc:%u msid:tsunagu audio0\r\n",
        pt, l->ufrag, l->pwd, l->fp_sha256, bot_setup_name(l->setup), mid, pt, pt, l->ssrc,
        l->cname, l->ssrc);
}

int bot_sdp_build_offer(const bot_sdp_local *l, char *out, size_t cap)
{
    sbuf b = {out, 0, cap, cap == 0};
    if (cap)
        out[0] = '\0';
    put_session(&b, l, "0");
    put_audio(&b, l, "0", 111);
    return b.overflow ? RTC_ESPACE : (int)b.len;
}

/* First token of a format list ("96 97 98" -> "96"). */
static void first_fmt(const char *fmts, char *out, size_t cap)
{
    size_t n = strcspn(fmts, " ");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, fmts, n);
    out[n] = '\0';
}

int bot_sdp_build_answer(const bot_sdp *offer, const bot_sdp_local *l, char *out, size_t cap)
{
    sbuf b = {out, 0, cap, cap == 0};
    int ai = bot_sdp_audio_index(offer);
    const bot_sdp_mline *am;
    char fmt[32];

    if (cap)
        out[0] = '\0';
    if (ai < 0)
        return RTC_EUNSUP;
    am = &offer->m[ai];
    /* Only the accepted m-line stays in the BUNDLE group. */
    put_session(&b, l, am->mid[0] ? am->mid : NULL);
    for (size_t i = 0; i < offer->n_m; i++) {
        const bot_sdp_mline *m = &offer->m[i];
        if ((int)i == ai) {
            put_audio(&b, l, m->mid[0] ? m->mid : "0", m->opus_pt);
            continue;
        }
        /* Decline: port 0, the offered proto and a format from the offer
         * (the format list must not be empty), mid kept so JSEP can match. */
        first_fmt(m->fmts, fmt, sizeof fmt);
        put(&b, "m=%s 0 %s %s\r\nc=IN IP4 0.0.0.0\r\n", m->media, m->proto, fmt);
        if (m->mid[0])
            put(&b, "a=mid:%s\r\n", m->mid);
        put(&b, "a=inactive\r\n");
    }
    return b.overflow ? RTC_ESPACE : (int)b.len;
}
