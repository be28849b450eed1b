/* test_bot_turnfam.c - the REQUESTED-ADDRESS-FAMILY shim (bot_turnfam.h):
 * which datagrams it rewrites, that a rewritten Allocate keeps every
 * attribute and the transaction ID and verifies with the long-term key of
 * the credential (and no other), and, through real sockets on 127.0.0.1 and
 * a GLib loop, that it forwards both ways and drops other local senders. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "bot_turnfam.h"
#include "rtc_err.h"
#include "stn_auth.h"
#include "stn_msg.h"
#include "tap.h"

static const uint8_t TID[STN_TID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const char USER[] = "1800000000:netlab", REALM[] = "tsunagu", PASS[] = "cred+/=";

/* An Allocate as libnice 0.1.21 sends it: REQUESTED-TRANSPORT UDP, then on
 * the second try USERNAME, REALM, NONCE, MESSAGE-INTEGRITY, FINGERPRINT. */
static size_t allocate(uint8_t *buf, size_t cap, bool signed_, bool fp, uint16_t extra_type)
{
    stn_builder b;
    size_t len = 0;
    const uint8_t udp[4] = {17, 0, 0, 0}, fam[4] = {2, 0, 0, 0};
    stn_build_init(&b, buf, cap, STN_ALLOCATE, STN_REQUEST, TID);
    stn_build_attr(&b, STN_A_REQUESTED_TRANSPORT, udp, 4);
    if (extra_type)
        stn_build_attr(&b, extra_type, fam, 4);
    if (signed_) {
        uint8_t key[16];
        stn_build_attr(&b, STN_A_USERNAME, USER, strlen(USER));
        stn_build_attr(&b, STN_A_REALM, REALM, strlen(REALM));
        stn_build_attr(&b, STN_A_NONCE, "nonce-1234", 10);
        stn_auth_longterm_key(USER, strlen(USER), REALM, strlen(REALM), PASS, strlen(PASS), key);
        stn_build_integrity(&b, key, sizeof key);
    }
    if (fp)
        stn_build_fingerprint(&b);
    stn_build_finish(&b, &len);
    return len;
}

static uint8_t family_of(const stn_msg *m)
{
    const stn_attr_ref *a = stn_msg_find(m, STN_A_REQUESTED_ADDRESS_FAMILY);
    return a && a->len == 4 ? m->buf[a->off] : 0;
}

static void test_rewrite(void)
{
    uint8_t in[512], out[512], key[16], other[16];
    size_t n, outlen = 0;
    stn_msg m;

    stn_auth_longterm_key(USER, strlen(USER), REALM, strlen(REALM), PASS, strlen(PASS), key);
    stn_auth_longterm_key(USER, strlen(USER), REALM, strlen(REALM), "x", 1, other);

    n = allocate(in, sizeof in, false, false, 0);
    is_int(bot_turnfam_rewrite(in, n, BOT_TURNFAM_IPV6, PASS, out, sizeof out, &outlen), 1,
           "first (unsigned) Allocate rewritten");
    ok(stn_msg_parse(&m, out, outlen) == 0 && m.method == STN_ALLOCATE && m.cls == STN_REQUEST,
       "still an Allocate request");
    ok(!memcmp(m.tid, TID, sizeof TID), "transaction ID kept");
    is_int(family_of(&m), BOT_TURNFAM_IPV6, "REQUESTED-ADDRESS-FAMILY IPv6 added");
    ok(stn_msg_find(&m, STN_A_REQUESTED_TRANSPORT) != NULL, "REQUESTED-TRANSPORT kept");
    ok(m.mi < 0 && m.fp < 0, "no signature invented");
    is_int(outlen, n + 8, "8 bytes longer");

    n = allocate(in, sizeof in, true, true, 0);
    is_int(bot_turnfam_rewrite(in, n, BOT_TURNFAM_IPV6, PASS, out, sizeof out, &outlen), 1,
           "signed Allocate rewritten");
    ok(stn_msg_parse(&m, out, outlen) == 0, "parses");
    is_int(family_of(&m), BOT_TURNFAM_IPV6, "family added");
    ok(stn_msg_find(&m, STN_A_USERNAME) && stn_msg_find(&m, STN_A_REALM) &&
       stn_msg_find(&m, STN_A_NONCE), "USERNAME, REALM, NONCE kept");
    ok(m.mi >= 0 && stn_auth_check_integrity(&m, key, sizeof key),
       "MESSAGE-INTEGRITY verifies with MD5(user:realm:credential)");
    ok(!stn_auth_check_integrity(&m, other, sizeof other), "and not with another credential");
    ok(m.fp == m.n_attrs - 1 && stn_auth_check_fingerprint(&m), "FINGERPRINT last and right");
    ok(m.mi == m.fp - 1 && stn_msg_find(&m, STN_A_REQUESTED_ADDRESS_FAMILY)->off <
       m.attrs[m.mi].off, "family before MESSAGE-INTEGRITY (covered by it)");

    n = allocate(in, sizeof in, true, false, 0);
    is_int(bot_turnfam_rewrite(in, n, BOT_TURNFAM_IPV4, PASS, out, sizeof out, &outlen), 1,
           "signed Allocate without FINGERPRINT");
    ok(stn_msg_parse(&m, out, outlen) == 0 && m.fp < 0 && family_of(&m) == BOT_TURNFAM_IPV4 &&
       stn_auth_check_integrity(&m, key, sizeof key), "no FINGERPRINT added; IPv4 asked");

    n = allocate(in, sizeof in, true, true, STN_A_REQUESTED_ADDRESS_FAMILY);
    is_int(bot_turnfam_rewrite(in, n, BOT_TURNFAM_IPV6, PASS, out, sizeof out, &outlen), 0,
           "a family already asked: forwarded as is");
    n = allocate(in, sizeof in, true, true, STN_A_ADDITIONAL_ADDRESS_FAMILY);
    is_int(bot_turnfam_rewrite(in, n, BOT_TURNFAM_IPV6, PASS, out, sizeof out, &outlen), 0,
           "a dual allocation: forwarded as is");
    n = allocate(in, sizeof in, true, true, 0);
    is_int(bot_turnfam_rewrite(in, n, BOT_TURNFAM_IPV6, PASS, out, n + 4, &outlen), RTC_ESPACE,
           "no room: error, caller forwards the original");

    {
        stn_builder b;
        size_t len = 0;
        uint8_t k[16];
        const uint8_t udp[4] = {17, 0, 0, 0};
        stn_build_init(&b, in, sizeof in, STN_ALLOCATE, STN_REQUEST, TID);
        stn_build_attr(&b, STN_A_REQUESTED_TRANSPORT, udp, 4);
        stn_build_attr(&b, STN_A_USERNAME, USER, strlen(USER));
        stn_auth_longterm_key(USER, strlen(USER), "", 0, PASS, strlen(PASS), k);
        stn_build_integrity(&b, k, sizeof k);
        stn_build_finish(&b, &len);
        is_int(bot_turnfam_rewrite(in, len, BOT_TURNFAM_IPV6, PASS, out, sizeof out, &outlen),
               RTC_EUNSUP, "signed without REALM: cannot be signed again");
        stn_build_init(&b, in, sizeof in, STN_ALLOCATE, STN_REQUEST, TID);
        stn_build_attr(&b, STN_A_REQUESTED_TRANSPORT, udp, 4);
        stn_build_attr(&b, STN_A_USERNAME, USER, strlen(USER));
        stn_build_attr(&b, STN_A_REALM, REALM, strlen(REALM));
        stn_build_integrity_sha256(&b, k, sizeof k);
        stn_build_finish(&b, &len);
        is_int(bot_turnfam_rewrite(in, len, BOT_TURNFAM_IPV6, PASS, out, sizeof out, &outlen),
               RTC_EUNSUP, "MESSAGE-INTEGRITY-SHA256: not redone");
        stn_build_init(&b, in, sizeof in, STN_REFRESH, STN_REQUEST, TID);
        stn_build_u32(&b, STN_A_LIFETIME, 0);
        stn_build_finish(&b, &len);
        is_int(bot_turnfam_rewrite(in, len, BOT_TURNFAM_IPV6, PASS, out, sizeof out, &outlen), 0,
               "Refresh: as is");
        stn_build_init(&b, in, sizeof in, STN_ALLOCATE, STN_SUCCESS, TID);
        stn_build_finish(&b, &len);
        is_int(bot_turnfam_rewrite(in, len, BOT_TURNFAM_IPV6, PASS, out, sizeof out, &outlen), 0,
               "an Allocate answer: as is");
    }
    {
        const uint8_t chan[8] = {0x40, 0x01, 0x00, 0x04, 1, 2, 3, 4};
        uint8_t junk[20] = {0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42};
        is_int(bot_turnfam_rewrite(chan, sizeof chan, BOT_TURNFAM_IPV6, PASS, out, sizeof out,
                                   &outlen), 0, "ChannelData: as is");
        is_int(bot_turnfam_rewrite(junk, sizeof junk, BOT_TURNFAM_IPV6, PASS, out, sizeof out,
                                   &outlen), 0, "an Allocate header with a lying length: as is");
        is_int(bot_turnfam_rewrite(junk, 3, BOT_TURNFAM_IPV6, PASS, out, sizeof out, &outlen), 0,
               "3 bytes: as is");
    }
}

static int udp_socket(uint16_t *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t sl = sizeof a;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &sl) < 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static void to(int fd, uint16_t port, const void *buf, size_t len)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)sendto(fd, buf, len, 0, (struct sockaddr *)&a, sizeof a);
}

/* Run the loop until fd has a datagram (or 2 s pass); its length or -1,
 * and the sender's port. */
static ssize_t wait_recv(int fd, uint8_t *buf, size_t cap, uint16_t *from)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct sockaddr_in a;
        socklen_t sl = sizeof a;
        ssize_t n = recvfrom(fd, buf, cap, 0, (struct sockaddr *)&a, &sl);
        if (n >= 0) {
            if (from)
                *from = ntohs(a.sin_port);
            return n;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > 2000)
            return -1;
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
}

static void test_shim(void)
{
    uint16_t sport, nport, xport, from = 0;
    int server = udp_socket(&sport), nice = udp_socket(&nport), stranger = udp_socket(&xport);
    char err[128] = "";
    bot_turnfam *f;
    uint8_t msg[512], got[512];
    size_t n;
    ssize_t r;
    stn_msg m;
    const uint8_t media[6] = {0x40, 0x00, 0x00, 0x02, 0xab, 0xcd};

    ok(server >= 0 && nice >= 0 && stranger >= 0, "sockets");
    f = bot_turnfam_new("127.0.0.1", sport, BOT_TURNFAM_IPV6, PASS, err, sizeof err);
    ok(f != NULL, "shim made");
    if (!f) {
        printf("# %s\n", err);
        return;
    }
    ok(bot_turnfam_port(f) != 0, "listens on a port");
    n = allocate(msg, sizeof msg, true, true, 0);
    to(nice, bot_turnfam_port(f), msg, n);
    r = wait_recv(server, got, sizeof got, NULL);
    ok(r > 0 && stn_msg_parse(&m, got, (size_t)r) == 0 && family_of(&m) == BOT_TURNFAM_IPV6,
       "the server got the Allocate with REQUESTED-ADDRESS-FAMILY IPv6");
    is_int(bot_turnfam_rewritten(f), 1, "counted");
    to(nice, bot_turnfam_port(f), media, sizeof media);
    r = wait_recv(server, got, sizeof got, &from);
    ok(r == (ssize_t)sizeof media && !memcmp(got, media, sizeof media),
       "ChannelData to the server unchanged");
    to(server, from, media, sizeof media);
    r = wait_recv(nice, got, sizeof got, NULL);
    ok(r == (ssize_t)sizeof media && !memcmp(got, media, sizeof media),
       "the server's datagram reaches libnice's socket unchanged");
    {
        static uint8_t big[9000];
        memcpy(big, media, sizeof media);
        to(nice, bot_turnfam_port(f), big, sizeof big);
        r = wait_recv(server, got, sizeof got, NULL);
        is_int(r, -1, "a datagram over 8 KiB is dropped, not cut");
    }
    to(stranger, bot_turnfam_port(f), media, sizeof media);
    r = wait_recv(server, got, sizeof got, NULL);
    is_int(r, -1, "a datagram from another local socket is dropped");
    bot_turnfam_free(f);
    close(server);
    close(nice);
    close(stranger);
    f = bot_turnfam_new("relay.example.com", 3478, BOT_TURNFAM_IPV6, PASS, err, sizeof err);
    ok(!f && strstr(err, "numeric"), "a name is refused (the caller resolves)");
}

int main(void)
{
    test_rewrite();
    test_shim();
    bot_turnfam_free(NULL);
    return done_testing();
}
