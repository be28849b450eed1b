/* test_rly_takeover.c - the live-takeover state blob (rly_takeover.h):
 * serialize -> parse round trip (times moved to the receiver's clock), and
 * the parser, which reads untrusted input, refusing truncations at every
 * offset, lying counts, lengths, descriptor indexes and versions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rly_takeover.h"
#include "rtc_err.h"
#include "tap.h"

#define NOW_TX 1000000u  /* sender's monotonic now */
#define NOW_RX 90000000u /* receiver's */

static rtc_addr ip(const char *s, uint16_t port)
{
    rtc_addr a;
    rtc_addr_parse_ip(s, &a);
    a.port = port;
    return a;
}

/* 2 workers, 2 listeners, 1 TLS listener, metrics; worker 0 has a dual
 * allocation with permissions and channels (REST user), worker 1 a plain
 * one. Descriptor indexes: 0-9 listeners, 10 metrics, 11-14 relayed. */
static void make_state(rly_to_state *s)
{
    uint32_t fd = 0;
    rly_alloc *a;

    if (rly_to_state_init(s, 2, 2, 1))
        abort();
    s->listen[0] = ip("127.0.0.1", 3478);
    s->listen[1] = ip("::1", 3478);
    s->tls[0] = ip("127.0.0.1", 5349);
    s->metrics = ip("127.0.0.1", 9641);
    for (int i = 0; i < 32; i++)
        s->nonce_key[i] = (uint8_t)(i * 7 + 1);
    s->takeovers_ok = 3;
    s->takeovers_failed = 1;
    for (int w = 0; w < 2; w++) {
        for (int l = 0; l < 2; l++) {
            s->w[w].udp[l] = fd++;
            s->w[w].tcp[l] = fd++;
        }
        s->w[w].tls[0] = fd++;
    }
    s->metrics_fd = fd++;
    s->w[0].n_allocs = 2;
    s->w[0].allocs = calloc(2, sizeof(rly_alloc));
    a = &s->w[0].allocs[0];
    a->id = 5;
    a->tuple.client = ip("127.0.0.1", 40000);
    a->tuple.listener = 1;
    a->tuple.proto = RLY_UDP;
    a->relay_fd = (int)fd++;
    a->relayed = ip("127.0.0.1", 50000);
    a->advertised = ip("192.0.2.1", 50000);
    a->relay_fd2 = (int)fd++;
    a->relayed2 = ip("::1", 50002);
    a->advertised2 = ip("2001:db8::1", 50002);
    a->expiry_ms = NOW_TX + 600000;
    memcpy(a->alloc_tid, "ABCDEFGHIJKL", 12);
    a->granted_s = 600;
    strcpy(a->user, "1700000000:member42");
    a->rest = true;
    a->bw_tokens = 12345;
    a->bw_last_ms = NOW_TX - 250;
    a->n_perms = 2;
    a->perms[0].peer = ip("198.51.100.7", 0);
    a->perms[0].expiry_ms = NOW_TX + 300000;
    a->perms[1].peer = ip("2001:db8::9", 0);
    a->perms[1].expiry_ms = NOW_TX - 1000; /* expired: stays expired */
    a->n_chans = 1;
    a->chans[0].peer = ip("198.51.100.7", 6000);
    a->chans[0].num = 0x4001;
    a->chans[0].expiry_ms = NOW_TX - 60000; /* expired, in its hold time */
    a = &s->w[0].allocs[1];
    a->id = 6;
    a->tuple.client = ip("127.0.0.1", 40001);
    a->tuple.proto = RLY_UDP;
    a->relay_fd = (int)fd++;
    a->relay_fd2 = -1;
    a->relayed = ip("127.0.0.1", 50004);
    a->expiry_ms = 0; /* never set: "long ago" */
    strcpy(a->user, "alice");
    s->w[1].n_allocs = 1;
    s->w[1].allocs = calloc(1, sizeof(rly_alloc));
    a = &s->w[1].allocs[0];
    a->tuple.client = ip("::1", 40002);
    a->tuple.proto = RLY_UDP;
    a->relay_fd = (int)fd++;
    a->relay_fd2 = -1;
    a->relayed = ip("::1", 50006);
    a->expiry_ms = NOW_TX + 5000;
    strcpy(a->user, "bob");
    s->n_fds = fd;
}

static void test_round_trip(void)
{
    rly_to_state s, p;
    uint8_t *buf;
    size_t len;
    char err[256] = "";
    const rly_alloc *a, *b;

    make_state(&s);
    ok(rly_to_write(&s, NOW_TX, &buf, &len) == 0, "serialize");
    ok(rly_to_parse(buf, len, s.n_fds, NOW_RX, &p, err, sizeof err) == 0, "parse it back");
    if (err[0])
        printf("# %s\n", err);
    is_int(p.n_workers, 2, "workers");
    is_int(p.n_listen, 2, "listeners");
    is_int(p.n_tls, 1, "TLS listeners");
    ok(rtc_addr_equal(&p.listen[1], &s.listen[1]) && rtc_addr_equal(&p.tls[0], &s.tls[0]) &&
           rtc_addr_equal(&p.metrics, &s.metrics),
       "addresses");
    ok(p.metrics_fd == s.metrics_fd && p.w[1].udp[1] == s.w[1].udp[1] &&
           p.w[1].tls[0] == s.w[1].tls[0],
       "descriptor indexes");
    ok(!memcmp(p.nonce_key, s.nonce_key, 32), "nonce key");
    ok(p.takeovers_ok == 3 && p.takeovers_failed == 1, "takeover counters");
    is_int(p.w[0].n_allocs, 2, "worker 0 allocations");
    is_int(p.w[1].n_allocs, 1, "worker 1 allocations");
    a = &s.w[0].allocs[0];
    b = &p.w[0].allocs[0];
    ok(b->id == 5 && rtc_addr_equal(&b->tuple.client, &a->tuple.client) &&
           b->tuple.listener == 1 && b->tuple.proto == RLY_UDP,
       "5-tuple and id");
    ok(b->relay_fd == a->relay_fd && b->relay_fd2 == a->relay_fd2 &&
           rtc_addr_equal(&b->relayed2, &a->relayed2) &&
           rtc_addr_equal(&b->advertised2, &a->advertised2),
       "dual relayed addresses and their descriptors");
    is_int((long long)(b->expiry_ms - NOW_RX), 600000, "lifetime moved to the receiver's clock");
    is_int((long long)(NOW_RX - b->bw_last_ms), 250, "bandwidth bucket age kept");
    ok(b->bw_tokens == 12345, "bandwidth tokens");
    ok(!strcmp(b->user, a->user) && b->rest, "REST user");
    ok(!memcmp(b->alloc_tid, a->alloc_tid, 12) && b->granted_s == 600, "Allocate tid, granted");
    ok(b->n_perms == 2 && b->perms[0].expiry_ms == NOW_RX + 300000 &&
           b->perms[1].expiry_ms == NOW_RX - 1000,
       "permissions and their expiry (past ones stay past)");
    ok(b->n_chans == 1 && b->chans[0].num == 0x4001 && b->chans[0].expiry_ms == NOW_RX - 60000 &&
           rtc_addr_equal(&b->chans[0].peer, &a->chans[0].peer),
       "channel binding in its hold time");
    ok(p.w[0].allocs[1].expiry_ms < NOW_RX && p.w[0].allocs[1].relay_fd2 == -1,
       "an unset timer stays in the past");
    ok(p.w[1].allocs[0].relayed.family == AF_INET6 && !strcmp(p.w[1].allocs[0].user, "bob"),
       "worker 1's allocation");
    rly_to_state_dispose(&p);
    rly_to_state_dispose(&s);
    free(buf);
}

/* The sender's form (pointers to live allocations + index arrays) writes
 * the same bytes as the copied form. */
static void test_src_form(void)
{
    rly_to_state s;
    uint8_t *b1, *b2;
    size_t l1, l2;

    make_state(&s);
    if (rly_to_write(&s, NOW_TX, &b1, &l1))
        abort();
    for (uint32_t w = 0; w < s.n_workers; w++) {
        rly_to_worker *tw = &s.w[w];
        tw->src = calloc(tw->n_allocs, sizeof *tw->src);
        tw->src_fd = calloc(2 * (size_t)tw->n_allocs, sizeof *tw->src_fd);
        for (uint32_t k = 0; k < tw->n_allocs; k++) {
            tw->src[k] = &tw->allocs[k];
            tw->src_fd[2 * k] = tw->allocs[k].relay_fd;
            tw->src_fd[2 * k + 1] = tw->allocs[k].relay_fd2;
            /* the live allocation holds real descriptors, not indexes */
            tw->allocs[k].relay_fd = 1000 + (int)k;
            tw->allocs[k].relay_fd2 = tw->allocs[k].relay_fd2 < 0 ? -1 : 2000 + (int)k;
        }
    }
    ok(rly_to_write(&s, NOW_TX, &b2, &l2) == 0 && l1 == l2 && !memcmp(b1, b2, l1),
       "writing from live allocations (pointers + index arrays) gives the same bytes");
    free(b1);
    free(b2);
    rly_to_state_dispose(&s);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int parse_len(const uint8_t *buf, size_t len, uint32_t nfds)
{
    rly_to_state p;
    char err[256];
    int rc = rly_to_parse(buf, len, nfds, NOW_RX, &p, err, sizeof err);
    if (rc == 0)
        rly_to_state_dispose(&p);
    return rc;
}

/* A copy with one byte / u32 changed, parsed. */
static int parse_with(const uint8_t *buf, size_t len, uint32_t nfds, size_t off, int width,
                      uint32_t v)
{
    uint8_t *c = malloc(len);
    int rc;
    memcpy(c, buf, len);
    if (width == 1)
        c[off] = (uint8_t)v;
    else
        put32(c + off, v);
    rc = parse_len(c, len, nfds);
    free(c);
    return rc;
}

static void test_hostile(void)
{
    rly_to_state s;
    uint8_t *buf, *c;
    size_t len, bad_trunc = 0, bad_fixed = 0;
    uint32_t nf;
    /* offsets in make_state's blob: header 12, counts 16, 3 addresses,
     * metrics address + index, key, counters -> worker 0 at 156; its 5
     * indexes, then the allocation count, then the first allocation */
    const size_t w0_count = 156 + 20, a0 = w0_count + 4;
    const size_t a0_proto = a0 + 4 + 19 + 2, a0_fd = a0_proto + 1;
    const size_t a0_userlen = a0_fd + 4 + 19 + 19 + 4 + 19 + 19 + 3 + 8 + 12 + 4;

    make_state(&s);
    nf = s.n_fds;
    if (rly_to_write(&s, NOW_TX, &buf, &len))
        abort();
    ok(parse_len(buf, len, nf) == 0, "the blob parses");
    ok(buf[a0_userlen] == strlen("1700000000:member42"), "offset arithmetic of this test");
    /* truncated at every offset, as sent (length field now lies) and with
     * the length field fixed up so the inner parser runs out of bytes */
    c = malloc(len);
    for (size_t k = 0; k < len; k++) {
        if (parse_len(buf, k, nf) != RTC_EMSG)
            bad_trunc++;
        memcpy(c, buf, k);
        if (k >= 12) {
            put32(c + 8, (uint32_t)(k - 12));
            if (parse_len(c, k, nf) != RTC_EMSG)
                bad_fixed++;
        }
    }
    is_int(bad_trunc, 0, "every truncation refused");
    is_int(bad_fixed, 0, "every truncation refused, length field fixed up");
    memcpy(c, buf, len);
    free(c);
    c = malloc(len + 1);
    memcpy(c, buf, len);
    c[len] = 0;
    put32(c + 8, (uint32_t)(len + 1 - 12));
    ok(parse_len(c, len + 1, nf) == RTC_EMSG, "trailing byte refused");
    free(c);
    ok(parse_with(buf, len, nf, 4, 1, 1) == RTC_EMSG &&
           parse_with(buf, len, nf, 5, 1, 2) == RTC_EMSG,
       "other versions refused");
    ok(parse_with(buf, len, nf, 0, 1, 'X') == RTC_EMSG, "bad magic refused");
    ok(parse_len(buf, len, nf - 1) == RTC_EMSG && parse_len(buf, len, nf + 1) == RTC_EMSG,
       "descriptor count must match what arrived");
    ok(parse_with(buf, len, nf, 12, 4, 0) == RTC_EMSG &&
           parse_with(buf, len, nf, 12, 4, 100000) == RTC_EMSG,
       "worker count 0 / huge refused");
    ok(parse_with(buf, len, nf, 16, 4, 1000) == RTC_EMSG, "listener count lying refused");
    ok(parse_with(buf, len, nf, 24, 4, 0xFFFFFFFF) == RTC_EMSG, "descriptor count huge refused");
    ok(parse_with(buf, len, nf, w0_count, 4, 0xFFFFFFFF) == RTC_EMSG &&
           parse_with(buf, len, nf, w0_count, 4, 3) == RTC_EMSG &&
           parse_with(buf, len, nf, w0_count, 4, 1) == RTC_EMSG,
       "allocation count lying (huge, one more, one less) refused");
    ok(parse_with(buf, len, nf, a0_proto, 1, RLY_TCP) == RTC_EMSG, "a TCP allocation refused");
    ok(parse_with(buf, len, nf, a0 + 4 + 19, 1, 0) == 0 &&
           parse_with(buf, len, nf, a0 + 4 + 19 + 1, 1, 2) == RTC_EMSG,
       "allocation on an unknown listener refused");
    ok(parse_with(buf, len, nf, a0_fd, 4, nf) == RTC_EMSG, "descriptor index out of range");
    ok(parse_with(buf, len, nf, a0_fd, 4, 0) == RTC_EMSG, "descriptor used twice refused");
    ok(parse_with(buf, len, nf, a0_fd, 4, RLY_TO_NONE) == RTC_EMSG,
       "allocation without a relayed socket refused");
    ok(parse_with(buf, len, nf, a0 + 4, 1, 99) == RTC_EMSG, "bad address family refused");
    ok(parse_with(buf, len, nf, a0 + 4 + 1 + 5, 1, 1) == RTC_EMSG,
       "IPv4 address with stray bytes refused");
    ok(parse_with(buf, len, nf, a0_userlen, 1, 0) == RTC_EMSG &&
           parse_with(buf, len, nf, a0_userlen, 1, 200) == RTC_EMSG &&
           parse_with(buf, len, nf, a0_userlen, 1, 25) == RTC_EMSG,
       "username length lying refused");
    ok(parse_with(buf, len, nf, a0_userlen + 3, 1, 0) == RTC_EMSG, "NUL in username refused");
    ok(parse_with(buf, len, nf, a0_userlen + 20, 1, 2) == RTC_EMSG, "REST flag 2 refused");
    ok(parse_with(buf, len, nf, a0_userlen + 20 + 1 + 16, 1, 33) == RTC_EMSG,
       "33 permissions refused");
    ok(parse_with(buf, len, nf, a0_fd + 4 + 19 + 19 + 4 + 19 + 19 + 3, 4, 0x7fffffff) ==
           RTC_EMSG,
       "timer out of range refused");
    {
        /* random corruption: never a crash (ASan/UBSan), never a leak */
        uint32_t x = 12345;
        size_t passed = 0;
        c = malloc(len);
        for (int i = 0; i < 20000; i++) {
            memcpy(c, buf, len);
            for (int k = 0; k < 1 + i % 4; k++) {
                x = x * 1103515245u + 12345u;
                c[(x >> 8) % len] ^= (uint8_t)(1u << (x >> 28 & 7));
            }
            passed += parse_len(c, len, nf) == 0;
        }
        free(c);
        ok(1, "20000 random corruptions parsed without a crash");
        printf("# %zu of them still parsed (harmless fields)\n", passed);
    }
    rly_to_state_dispose(&s);
    free(buf);
}

/* test_rly_takeover DIR: also write seed blobs for the fuzz corpus
 * (tests/fuzz/corpus/rly_takeover). */
static void write_seeds(const char *dir)
{
    rly_to_state s;
    uint8_t *buf;
    size_t len;
    char path[512];
    FILE *f;

    for (int k = 0; k < 2; k++) {
        if (k == 0) {
            make_state(&s);
        } else {
            if (rly_to_state_init(&s, 1, 1, 0))
                abort();
            s.listen[0] = ip("127.0.0.1", 3478);
            s.n_fds = 2;
            s.w[0].udp[0] = 0;
            s.w[0].tcp[0] = 1;
        }
        if (rly_to_write(&s, NOW_TX, &buf, &len))
            abort();
        snprintf(path, sizeof path, "%s/seed-%s", dir, k == 0 ? "full" : "minimal");
        f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, len, f) != len || fclose(f))
            abort();
        free(buf);
        rly_to_state_dispose(&s);
    }
}

/* A blob whose allocation binds one channel number (or one peer) twice is
 * refused: the channel lookups would shadow one of the bindings. */
static void test_dup_channels(void)
{
    char err[200];
    for (int k = 0; k < 2; k++) {
        rly_to_state s, p;
        uint8_t *buf;
        size_t len;
        rly_alloc *a;
        make_state(&s);
        a = &s.w[0].allocs[0];
        a->n_chans = 2;
        a->chans[1] = a->chans[0];
        if (k == 0)
            a->chans[1].peer = ip("198.51.100.8", 6000); /* same number */
        else
            a->chans[1].num = 0x4002; /* same peer */
        ok(rly_to_write(&s, NOW_TX, &buf, &len) == 0, "serialize a duplicate channel");
        ok(rly_to_parse(buf, len, s.n_fds, NOW_RX, &p, err, sizeof err) == RTC_EMSG &&
               strstr(err, "bound twice"),
           k == 0 ? "one channel number bound to two peers refused"
                  : "one peer bound to two channel numbers refused");
        a->chans[1].num = 0x4002;
        a->chans[1].peer = ip("198.51.100.8", 6000);
        free(buf);
        ok(rly_to_write(&s, NOW_TX, &buf, &len) == 0 &&
               rly_to_parse(buf, len, s.n_fds, NOW_RX, &p, err, sizeof err) == 0,
           "two distinct channels parse");
        rly_to_state_dispose(&p);
        free(buf);
        /* an entry past its hold may repeat a live one's number and peer:
         * rly_alloc_bind makes such states, and they must move */
        a->chans[0].expiry_ms = NOW_TX - RLY_CHAN_HOLD_MS - 1000;
        a->chans[1] = a->chans[0];
        a->chans[1].expiry_ms = NOW_TX + 60000;
        ok(rly_to_write(&s, NOW_TX, &buf, &len) == 0 &&
               rly_to_parse(buf, len, s.n_fds, NOW_RX, &p, err, sizeof err) == 0,
           "a stale binding past its hold next to a live one with its number and peer parses");
        rly_to_state_dispose(&p);
        rly_to_state_dispose(&s);
        free(buf);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1)
        write_seeds(argv[1]);
    test_round_trip();
    test_src_form();
    test_hostile();
    test_dup_channels();
    return done_testing();
}
