/* bot_turnfam.c - REQUESTED-ADDRESS-FAMILY for libnice's Allocates through a
 * local UDP shim (see bot_turnfam.h).
 *
 * Two non-blocking UDP sockets: `front` on 127.0.0.1:0 where libnice sends
 * (its source address is remembered; datagrams from any other source are
 * dropped, so another local process cannot inject into the allocation), and
 * `back` connected to the real server. Each readable event moves at most
 * BURST datagrams, so one busy side cannot hold the worker's loop. Nothing
 * is queued: UDP may drop, and ICE and RTP recover as they would on the wire. */
#include "bot_turnfam.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib.h>

#include "rtc_err.h"
#include "rtc_log.h"
#include "stn_auth.h"
#include "stn_msg.h"

#define BURST 64
/* TURN over UDP carries ICE checks, DTLS and RTP, all under the path MTU;
 * a larger datagram is dropped (MSG_TRUNC tells), never forwarded cut.
 * Two such buffers per shim keep a 1000-call load run at ~16 MB. */
#define DGRAM_MAX 8192

int bot_turnfam_rewrite(const uint8_t *in, size_t n, uint8_t family, const char *pass,
                        uint8_t *out, size_t cap, size_t *outlen)
{
    stn_msg m;
    stn_builder b;
    const stn_attr_ref *user, *realm;
    const uint8_t raf[4] = {family, 0, 0, 0};

    if (!stn_is_stun(in, n) || stn_msg_parse(&m, in, n) != 0)
        return 0;
    if (m.method != STN_ALLOCATE || m.cls != STN_REQUEST)
        return 0;
    if (stn_msg_find(&m, STN_A_REQUESTED_ADDRESS_FAMILY) ||
        stn_msg_find(&m, STN_A_ADDITIONAL_ADDRESS_FAMILY))
        return 0;
    if (m.mi256 >= 0)
        return RTC_EUNSUP;
    user = stn_msg_find(&m, STN_A_USERNAME);
    realm = stn_msg_find(&m, STN_A_REALM);
    if (m.mi >= 0 && (!user || !realm))
        return RTC_EUNSUP;
    stn_build_init(&b, out, cap, STN_ALLOCATE, STN_REQUEST, m.tid);
    /* Everything before MESSAGE-INTEGRITY in its order (the parser keeps
     * nothing after MI but FINGERPRINT), then the family, then the
     * signatures again: MI covers every attribute before it. */
    for (size_t i = 0; i < m.n_attrs; i++) {
        const stn_attr_ref *a = &m.attrs[i];
        if ((int)i == m.mi || (int)i == m.fp)
            continue;
        stn_build_attr(&b, a->type, in + a->off, a->len);
    }
    stn_build_attr(&b, STN_A_REQUESTED_ADDRESS_FAMILY, raf, sizeof raf);
    if (m.mi >= 0) {
        uint8_t key[16];
        stn_auth_longterm_key((const char *)in + user->off, user->len,
                              (const char *)in + realm->off, realm->len, pass, strlen(pass), key);
        stn_build_integrity(&b, key, sizeof key);
    }
    if (m.fp >= 0)
        stn_build_fingerprint(&b);
    return stn_build_finish(&b, outlen) == 0 ? 1 : RTC_ESPACE;
}

struct bot_turnfam {
    int front, back;
    GSource *src_front, *src_back;
    struct sockaddr_in nice_addr; /* libnice's socket, once it has sent */
    bool have_nice;
    uint8_t family;
    uint16_t port;
    unsigned rewritten;
    char pass[256];
    uint8_t in[DGRAM_MAX], out[DGRAM_MAX];
};

static gboolean on_front(gint fd, GIOCondition cond, gpointer ud)
{
    bot_turnfam *f = ud;
    (void)cond;
    for (int i = 0; i < BURST; i++) {
        struct sockaddr_in src;
        socklen_t sl = sizeof src;
        size_t outlen = 0;
        ssize_t n = recvfrom(fd, f->in, sizeof f->in, MSG_TRUNC, (struct sockaddr *)&src, &sl);
        int rw;
        if (n < 0)
            break;
        if ((size_t)n > sizeof f->in)
            continue;
        if (sl != sizeof src || src.sin_family != AF_INET)
            continue;
        if (!f->have_nice) {
            f->nice_addr = src;
            f->have_nice = true;
        } else if (src.sin_port != f->nice_addr.sin_port ||
                   src.sin_addr.s_addr != f->nice_addr.sin_addr.s_addr) {
            continue;
        }
        rw = bot_turnfam_rewrite(f->in, (size_t)n, f->family, f->pass, f->out, sizeof f->out,
                                 &outlen);
        if (rw == 1) {
            f->rewritten++;
            (void)send(f->back, f->out, outlen, 0);
        } else {
            if (rw < 0)
                RTC_LOG(RTC_LOG_WARN, "turnfam", "Allocate sent without the family (%s)",
                        rw == RTC_EUNSUP ? "signed in a way the shim cannot redo" : "too big");
            (void)send(f->back, f->in, (size_t)n, 0);
        }
    }
    return G_SOURCE_CONTINUE;
}

static gboolean on_back(gint fd, GIOCondition cond, gpointer ud)
{
    bot_turnfam *f = ud;
    (void)cond;
    for (int i = 0; i < BURST; i++) {
        ssize_t n = recv(fd, f->in, sizeof f->in, MSG_TRUNC);
        if (n < 0) {
            if (errno == ECONNREFUSED)
                continue; /* an ICMP error from an earlier send; read on */
            break;
        }
        if ((size_t)n > sizeof f->in)
            continue;
        if (f->have_nice)
            (void)sendto(f->front, f->in, (size_t)n, 0, (struct sockaddr *)&f->nice_addr,
                         sizeof f->nice_addr);
    }
    return G_SOURCE_CONTINUE;
}

static GSource *watch(int fd, GUnixFDSourceFunc fn, bot_turnfam *f)
{
    GSource *s = g_unix_fd_source_new(fd, G_IO_IN);
    GMainContext *ctx = g_main_context_ref_thread_default();
    g_source_set_callback(s, (GSourceFunc)(void (*)(void))fn, f, NULL);
    g_source_attach(s, ctx);
    g_main_context_unref(ctx);
    return s;
}

bot_turnfam *bot_turnfam_new(const char *server_ip, uint16_t port, uint8_t family,
                             const char *pass, char *err, size_t errlen)
{
    bot_turnfam *f = calloc(1, sizeof *f);
    struct sockaddr_storage ss;
    socklen_t sl;
    struct sockaddr_in lo = {.sin_family = AF_INET};

    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->front = f->back = -1;
    f->family = family;
    if (strlen(pass) >= sizeof f->pass) {
        snprintf(err, errlen, "TURN credential too long");
        goto fail;
    }
    snprintf(f->pass, sizeof f->pass, "%s", pass);
    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET6, server_ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
        sl = sizeof(struct sockaddr_in6);
    } else if (inet_pton(AF_INET, server_ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
        sl = sizeof(struct sockaddr_in);
    } else {
        snprintf(err, errlen, "not a numeric address: %s", server_ip);
        goto fail;
    }
    f->back = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->back < 0 || connect(f->back, (struct sockaddr *)&ss, sl) < 0) {
        snprintf(err, errlen, "socket to %s:%u: %s", server_ip, port, strerror(errno));
        goto fail;
    }
    f->front = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sl = sizeof lo;
    if (f->front < 0 || bind(f->front, (struct sockaddr *)&lo, sizeof lo) < 0 ||
        getsockname(f->front, (struct sockaddr *)&lo, &sl) < 0) {
        snprintf(err, errlen, "local socket: %s", strerror(errno));
        goto fail;
    }
    f->port = ntohs(lo.sin_port);
    f->src_front = watch(f->front, on_front, f);
    f->src_back = watch(f->back, on_back, f);
    return f;
fail:
    bot_turnfam_free(f);
    return NULL;
}

uint16_t bot_turnfam_port(const bot_turnfam *f) { return f->port; }

unsigned bot_turnfam_rewritten(const bot_turnfam *f) { return f->rewritten; }

void bot_turnfam_free(bot_turnfam *f)
{
    if (!f)
        return;
    if (f->src_front) {
        g_source_destroy(f->src_front);
        g_source_unref(f->src_front);
    }
    if (f->src_back) {
        g_source_destroy(f->src_back);
        g_source_unref(f->src_back);
    }
    if (f->front >= 0)
        close(f->front);
    if (f->back >= 0)
        close(f->back);
    free(f);
}
