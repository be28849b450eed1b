/* sig_admit.c - Origin allow-list and open WebSockets per client address
 * (see sig_admit.h for the policy). Everything here is plain data: the
 * caller passes the header bytes and the peer address it read. */
#include "sig_admit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_err.h"
#include "rtc_rd.h"
#include "rtc_wr.h"

/* canonical form: the input plus an explicit default port (":443") */
#define NORM_MAX (SIG_ADMIT_ORIGIN_MAX + 8)
#define SCHEME_MAX 16
#define HOST_MAX 253 /* a DNS name (RFC 1035 s.2.3.4); an IPv6 literal is shorter */
#define MIN_BUCKETS 64

typedef struct ipent {
    struct ipent *next;
    rtc_addr key; /* IPv4 address or IPv6 /64, port 0 */
    uint32_t count;
    uint32_t joined; /* of those, connections that joined a room (<= count) */
} ipent;

struct sig_admit {
    char **origins; /* canonical "scheme://host[:port]" */
    size_t n_origins;
    bool enforce;    /* a list is configured */
    bool any_origin; /* it contains "*" */
    uint32_t max_per_ip;
    uint32_t max_unjoined; /* connections per address not (yet) joined; 0: no cap */
    uint64_t seed;
    ipent **buckets; /* power-of-two count */
    size_t nbuckets, entries;
    uint64_t rejected[SIG_ADMIT__COUNT];
};

/* ---- origins ---- */

static bool is_alpha(uint8_t c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static bool is_hex(uint8_t c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
static uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c; }

static bool next_is(const rtc_rd *r, uint8_t c)
{
    const uint8_t *p = rtc_rd_peek(r, 1);
    return p && *p == c;
}

/* The port a scheme implies when the origin names none (RFC 6454 s.4
 * compares origins by scheme, host and port, with the default filled in). */
static unsigned default_port(const char *scheme)
{
    if (!strcmp(scheme, "http") || !strcmp(scheme, "ws"))
        return 80;
    if (!strcmp(scheme, "https") || !strcmp(scheme, "wss"))
        return 443;
    return 0;
}

/* Parse one serialized origin, scheme "://" host [":" port] (RFC 6454
 * s.6.2), and write its canonical form to out: scheme and host in lower
 * case, the port as a number and explicit when the scheme has a default.
 * Hosts are DNS names (letters, digits, '-', '.', '_': browsers send IDNs
 * as punycode), IPv4 addresses or bracketed IPv6 literals. trailing_slash
 * lets one "/" end the value (operators paste origins from a URL bar);
 * browsers never send one, so a header with it does not match. 0 or
 * RTC_EMSG. */
static int normalize(const char *s, size_t len, bool trailing_slash, char out[NORM_MAX])
{
    char scheme[SCHEME_MAX + 1];
    size_t sl = 0, hl = 0, pl = 0;
    unsigned port = 0;
    uint8_t c = 0;
    rtc_rd r;
    rtc_wr w;

    if (len == 0 || len > SIG_ADMIT_ORIGIN_MAX)
        return RTC_EMSG;
    rtc_rd_init(&r, s, len);
    rtc_wr_init(&w, out, NORM_MAX - 1);
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 s.3.1) */
    while (rtc_rd_u8(&r, &c) && c != ':') {
        if (!(is_alpha(c) || (sl && (is_digit(c) || c == '+' || c == '-' || c == '.'))) ||
            sl == SCHEME_MAX)
            return RTC_EMSG;
        scheme[sl++] = (char)lower(c);
    }
    if (c != ':' || !sl)
        return RTC_EMSG;
    scheme[sl] = '\0';
    if (!rtc_rd_u8(&r, &c) || c != '/' || !rtc_rd_u8(&r, &c) || c != '/')
        return RTC_EMSG;
    rtc_wr_bytes(&w, scheme, sl);
    rtc_wr_bytes(&w, "://", 3);
    if (next_is(&r, '[')) {
        /* IPv6 literal: the characters inet_pton would look at */
        rtc_rd_skip(&r, 1);
        rtc_wr_u8(&w, '[');
        while (rtc_rd_u8(&r, &c) && c != ']') {
            if (!(is_hex(c) || c == ':' || c == '.') || ++hl > 45)
                return RTC_EMSG;
            rtc_wr_u8(&w, lower(c));
        }
        if (c != ']' || hl < 2)
            return RTC_EMSG;
        rtc_wr_u8(&w, ']');
    } else {
        while (rtc_rd_left(&r) && !next_is(&r, ':') && !next_is(&r, '/')) {
            rtc_rd_u8(&r, &c);
            if (!(is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_') ||
                ++hl > HOST_MAX)
                return RTC_EMSG;
            rtc_wr_u8(&w, lower(c));
        }
        if (!hl)
            return RTC_EMSG;
    }
    if (next_is(&r, ':')) {
        rtc_rd_skip(&r, 1);
        while (rtc_rd_left(&r) && !next_is(&r, '/')) {
            rtc_rd_u8(&r, &c);
            if (!is_digit(c) || ++pl > 5)
                return RTC_EMSG;
            port = port * 10 + (unsigned)(c - '0');
        }
        if (!pl || port == 0 || port > 65535)
            return RTC_EMSG;
    } else {
        port = default_port(scheme);
    }
    if (trailing_slash && next_is(&r, '/'))
        rtc_rd_skip(&r, 1);
    if (rtc_rd_left(&r))
        return RTC_EMSG; /* a path, a second slash, or junk after the host */
    if (port) {
        char num[12];
        int n = snprintf(num, sizeof num, ":%u", port);
        rtc_wr_bytes(&w, num, (size_t)n);
    }
    if (w.overflow)
        return RTC_EMSG;
    out[rtc_wr_len(&w)] = '\0';
    return 0;
}

int sig_admit_origin_check(const char *value, char *err, size_t errlen)
{
    char norm[NORM_MAX];
    if (!strcmp(value, "*") || !normalize(value, strlen(value), true, norm))
        return 0;
    snprintf(err, errlen,
             "expected * or SCHEME://HOST[:PORT] with nothing after it, e.g. "
             "https://app.example.com or http://127.0.0.1:8080");
    return RTC_EMSG;
}

static bool origin_ok(const sig_admit *a, const char *origin, size_t len)
{
    char norm[NORM_MAX];
    if (!a->enforce || a->any_origin)
        return true;
    if (!origin || normalize(origin, len, false, norm))
        return false;
    for (size_t i = 0; i < a->n_origins; i++)
        if (!strcmp(norm, a->origins[i]))
            return true;
    return false;
}

static void free_origins(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

bool sig_admit_origin_enforced(const sig_admit *a) { return a->enforce; }

/* ---- per-address table ---- */

rtc_addr sig_admit_ip_key(const rtc_addr *peer)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    rtc_addr k;
    memset(&k, 0, sizeof k);
    if (peer->family == AF_INET6 && !memcmp(peer->ip, mapped, sizeof mapped)) {
        k.family = AF_INET; /* a v4 client on a v6 listener */
        memcpy(k.ip, peer->ip + 12, 4);
    } else if (peer->family == AF_INET6) {
        k.family = AF_INET6;
        memcpy(k.ip, peer->ip, 8); /* the /64 */
    } else if (peer->family == AF_INET) {
        k.family = AF_INET;
        memcpy(k.ip, peer->ip, 4);
    }
    /* family 0 (address unknown): all such clients share one key */
    return k;
}

static ipent **find(const sig_admit *a, const rtc_addr *k)
{
    ipent **pp = &a->buckets[rtc_addr_hash(k, a->seed) & (a->nbuckets - 1)];
    while (*pp && !((*pp)->key.family == k->family && !memcmp((*pp)->key.ip, k->ip, 16)))
        pp = &(*pp)->next;
    return pp;
}

/* Rehash into n buckets; on ENOMEM keep the old array (chains just get
 * longer), since nothing here may fail a connection that was admitted. */
static void resize(sig_admit *a, size_t n)
{
    ipent **nb = calloc(n, sizeof *nb);
    if (!nb)
        return;
    for (size_t i = 0; i < a->nbuckets; i++) {
        ipent *e = a->buckets[i], *next;
        for (; e; e = next) {
            size_t h = rtc_addr_hash(&e->key, a->seed) & (n - 1);
            next = e->next;
            e->next = nb[h];
            nb[h] = e;
        }
    }
    free(a->buckets);
    a->buckets = nb;
    a->nbuckets = n;
}

int sig_admit_ip_add(sig_admit *a, const rtc_addr *peer)
{
    rtc_addr k = sig_admit_ip_key(peer);
    ipent **pp = find(a, &k), *e;
    if (*pp) {
        (*pp)->count++;
        return 0;
    }
    if (!(e = calloc(1, sizeof *e)))
        return -ENOMEM;
    e->key = k;
    e->count = 1;
    *pp = e; /* the end of its chain */
    if (++a->entries > a->nbuckets)
        resize(a, a->nbuckets * 2);
    return 0;
}

void sig_admit_ip_del(sig_admit *a, const rtc_addr *peer)
{
    rtc_addr k = sig_admit_ip_key(peer);
    ipent **pp = find(a, &k), *e = *pp;
    if (!e)
        return; /* a del without its add: a caller bug, but never a crash */
    if (e->joined > e->count - 1) /* (a joined one closing uncounts itself first) */
        e->joined = e->count - 1;
    if (--e->count)
        return;
    *pp = e->next;
    free(e);
    /* memory follows the open connections down again after a peak */
    if (--a->entries < a->nbuckets / 8 && a->nbuckets > MIN_BUCKETS)
        resize(a, a->nbuckets / 2);
}

void sig_admit_ip_joined(sig_admit *a, const rtc_addr *peer, bool joined)
{
    rtc_addr k = sig_admit_ip_key(peer);
    ipent *e = *find(a, &k);
    if (!e)
        return;
    if (joined && e->joined < e->count)
        e->joined++;
    else if (!joined && e->joined)
        e->joined--;
}

uint32_t sig_admit_ip_unjoined(const sig_admit *a, const rtc_addr *peer)
{
    rtc_addr k = sig_admit_ip_key(peer);
    ipent *e = *find(a, &k);
    return e ? e->count - e->joined : 0;
}

void sig_admit_set_unjoined_cap(sig_admit *a, uint32_t max_unjoined)
{
    a->max_unjoined = max_unjoined;
}

uint32_t sig_admit_ip_count(const sig_admit *a, const rtc_addr *peer)
{
    rtc_addr k = sig_admit_ip_key(peer);
    ipent *e = *find(a, &k);
    return e ? e->count : 0;
}

size_t sig_admit_ip_entries(const sig_admit *a) { return a->entries; }

/* ---- the object ---- */

sig_admit *sig_admit_new(uint64_t seed)
{
    sig_admit *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->seed = seed;
    a->nbuckets = MIN_BUCKETS;
    if (!(a->buckets = calloc(a->nbuckets, sizeof *a->buckets))) {
        free(a);
        return NULL;
    }
    return a;
}

void sig_admit_free(sig_admit *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nbuckets; i++) {
        ipent *e = a->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(a->buckets);
    free_origins(a->origins, a->n_origins);
    free(a);
}

int sig_admit_configure(sig_admit *a, const char *const *origins, size_t n_origins,
                        uint32_t max_per_ip)
{
    char **v = n_origins ? calloc(n_origins, sizeof *v) : NULL;
    char norm[NORM_MAX];
    bool any = false;
    size_t n = 0;

    if (n_origins && !v)
        return -ENOMEM;
    for (size_t i = 0; i < n_origins; i++) {
        if (!strcmp(origins[i], "*")) {
            any = true;
            continue;
        }
        if (normalize(origins[i], strlen(origins[i]), true, norm)) {
            free_origins(v, n);
            return RTC_EMSG;
        }
        if (!(v[n] = strdup(norm))) {
            free_origins(v, n);
            return -ENOMEM;
        }
        n++;
    }
    free_origins(a->origins, a->n_origins);
    a->origins = v;
    a->n_origins = n;
    a->enforce = n_origins > 0;
    a->any_origin = any;
    a->max_per_ip = max_per_ip;
    return 0;
}

sig_admit_verdict sig_admit_check(sig_admit *a, const char *origin, size_t len,
                                  const rtc_addr *peer)
{
    sig_admit_verdict v = SIG_ADMIT_OK;
    /* Origin first: a page of another site learns nothing about the
     * per-address state from the status it gets. */
    if (!origin_ok(a, origin, len))
        v = SIG_ADMIT_ORIGIN;
    else if (a->max_per_ip && sig_admit_ip_count(a, peer) >= a->max_per_ip)
        v = SIG_ADMIT_PER_IP;
    else if (a->max_unjoined && sig_admit_ip_unjoined(a, peer) >= a->max_unjoined)
        v = SIG_ADMIT_UNJOINED;
    a->rejected[v]++; /* [SIG_ADMIT_OK]: admitted, not rendered */
    return v;
}

void sig_admit_refused(sig_admit *a, sig_admit_verdict v)
{
    if (v > SIG_ADMIT_OK && v < SIG_ADMIT__COUNT)
        a->rejected[v]++;
}

void sig_admit_metrics(const sig_admit *a, rtc_buf *b)
{
    rtc_metrics_header(b, "tsunagu_signal_rejected_total", "counter",
                       "WebSocket upgrades refused at the handshake, by reason");
    rtc_metrics_u64(b, "tsunagu_signal_rejected_total", "reason=\"origin\"",
                    a->rejected[SIG_ADMIT_ORIGIN]);
    rtc_metrics_u64(b, "tsunagu_signal_rejected_total", "reason=\"per-ip\"",
                    a->rejected[SIG_ADMIT_PER_IP]);
    rtc_metrics_u64(b, "tsunagu_signal_rejected_total", "reason=\"path\"",
                    a->rejected[SIG_ADMIT_PATH]);
    rtc_metrics_u64(b, "tsunagu_signal_rejected_total", "reason=\"max-connections\"",
                    a->rejected[SIG_ADMIT_FULL]);
    rtc_metrics_u64(b, "tsunagu_signal_rejected_total", "reason=\"draining\"",
                    a->rejected[SIG_ADMIT_DRAINING]);
    rtc_metrics_u64(b, "tsunagu_signal_rejected_total", "reason=\"unjoined-per-ip\"",
                    a->rejected[SIG_ADMIT_UNJOINED]);
    rtc_metrics_header(b, "tsunagu_signal_client_addresses", "gauge",
                       "client addresses (IPv4, IPv6 /64) holding open WebSockets");
    rtc_metrics_u64(b, "tsunagu_signal_client_addresses", NULL, a->entries);
}

void sig_admit_sanitize(const char *in, size_t len, char out[SIG_ADMIT_LOG_MAX])
{
    size_t keep = SIG_ADMIT_LOG_MAX - 4, n = len < keep ? len : keep;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)in[i];
        out[i] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
    }
    if (len > keep)
        memcpy(out + n, "...", 4);
    else
        out[n] = '\0';
}
