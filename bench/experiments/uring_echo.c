/* uring_echo.c - experiment: a UDP echo on io_uring, to compare with
 * tsunagu-echo (recvmmsg/sendmmsg) at the fixed loads of the relay bench.
 *
 * Kept as the record of a measurement in docs/performance.md ("The floor"),
 * not part of the product and not built by meson: io_uring gave no gain, so
 * the relay does not use it. Build and run (Debian 12: apt-get install
 * liburing-dev; min-wait needs Linux 6.12 or later):
 *
 *   cc -O2 -o uring_echo bench/experiments/uring_echo.c -luring
 *   taskset -c 0 ./uring_echo [MIN_WAIT_US [BATCH]] &     # prints "port N"
 *   taskset -c 1 build/bench/tsunagu-turnload --mode direct --peer 127.0.0.1:N \
 *       --allocations 100 --rate 10000 --server-pid $!
 *
 * One multishot recvmsg on a provided-buffer ring receives; the replies go
 * out with one sendmmsg per loop (synchronous, so a buffer is back in the
 * ring as soon as it returns); each loop is one io_uring_enter that submits
 * and waits. With MIN_WAIT_US > 0 the wait asks the kernel to hold the
 * wake-up until BATCH completions or MIN_WAIT_US have passed (wake on the
 * first completion after that), through IORING_ENTER_EXT_ARG's
 * min_wait_usec, which liburing 2.3 does not wrap: hence the raw syscall. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NBUF 1024
#define BUF_SIZE 2048
#define MAX_OUT 256

/* struct io_uring_getevents_arg of Linux 6.12+ (min_wait_usec was `pad`) */
struct getevents_arg {
    __u64 sigmask;
    __u32 sigmask_sz;
    __u32 min_wait_usec;
    __u64 ts;
};

static volatile sig_atomic_t g_stop;
static void on_term(int sig) { (void)sig; g_stop = 1; }

/* Publish the SQEs queued with io_uring_get_sqe; returns how many to submit. */
static unsigned flush_sq(struct io_uring *r)
{
    struct io_uring_sq *sq = &r->sq;
    unsigned tail = sq->sqe_tail, n = tail - sq->sqe_head;

    sq->sqe_head = tail;
    io_uring_smp_store_release(sq->ktail, tail);
    return n;
}

static void give_back(struct io_uring_buf_ring *br, char *bufs, int bid, int off)
{
    io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(NBUF), off);
}

int main(int argc, char **argv)
{
    unsigned min_wait = argc > 1 ? (unsigned)atoi(argv[1]) : 0;
    unsigned batch = argc > 2 ? (unsigned)atoi(argv[2]) : 64;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    struct io_uring r;
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                                         IORING_SETUP_CQSIZE,
                                .cq_entries = 4096};
    struct io_uring_buf_ring *br = NULL;
    struct msghdr mh = {.msg_namelen = sizeof(struct sockaddr_in6)};
    static struct mmsghdr out[MAX_OUT];
    static struct iovec iov[MAX_OUT];
    static int out_bid[MAX_OUT];
    char *bufs;
    int fd, rc;
    bool armed = false;

    fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        perror("socket");
        return 1;
    }
    signal(SIGTERM, on_term);
    rc = io_uring_queue_init_params(256, &r, &p);
    if (rc < 0) {
        fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-rc));
        return 1;
    }
    if (min_wait && !(p.features & (1u << 15) /* IORING_FEAT_MIN_TIMEOUT */)) {
        fprintf(stderr, "this kernel has no io_uring min-wait (Linux 6.12+)\n");
        return 1;
    }
    bufs = malloc((size_t)NBUF * BUF_SIZE);
    if (!bufs || posix_memalign((void **)&br, 4096, NBUF * sizeof(struct io_uring_buf))) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    io_uring_buf_ring_init(br);
    struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)br, .ring_entries = NBUF, .bgid = 0};
    rc = io_uring_register_buf_ring(&r, &reg, 0);
    if (rc < 0) {
        fprintf(stderr, "io_uring_register_buf_ring: %s\n", strerror(-rc));
        return 1;
    }
    for (int i = 0; i < NBUF; i++)
        give_back(br, bufs, i, i);
    io_uring_buf_ring_advance(br, NBUF);
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);

    while (!g_stop) {
        struct __kernel_timespec ts = {0, 200 * 1000 * 1000};
        struct getevents_arg ea = {.min_wait_usec = min_wait, .ts = (unsigned long)&ts};
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        int n_out = 0, off = 0;

        if (!armed) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&r);
            io_uring_prep_recvmsg_multishot(sqe, fd, &mh, 0);
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = 0;
            armed = true;
        }
        rc = (int)syscall(__NR_io_uring_enter, r.ring_fd, flush_sq(&r), min_wait ? batch : 1,
                          IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &ea, sizeof ea);
        if (rc < 0 && errno != ETIME && errno != EINTR) {
            perror("io_uring_enter");
            return 1;
        }
        io_uring_for_each_cqe(&r, head, cqe)
        {
            int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
            char *buf = bufs + (size_t)bid * BUF_SIZE;
            struct io_uring_recvmsg_out *o;

            seen++;
            if (!(cqe->flags & IORING_CQE_F_MORE))
                armed = false; /* multishot ended (e.g. ENOBUFS): re-arm */
            if (cqe->res < 0 || !(cqe->flags & IORING_CQE_F_BUFFER))
                continue;
            o = io_uring_recvmsg_validate(buf, cqe->res, &mh);
            if (!o || n_out == MAX_OUT) {
                give_back(br, bufs, bid, 0);
                io_uring_buf_ring_advance(br, 1);
                continue;
            }
            iov[n_out].iov_base = io_uring_recvmsg_payload(o, &mh);
            iov[n_out].iov_len = io_uring_recvmsg_payload_length(o, cqe->res, &mh);
            out[n_out].msg_hdr = (struct msghdr){.msg_name = io_uring_recvmsg_name(o),
                                                 .msg_namelen = o->namelen,
                                                 .msg_iov = &iov[n_out],
                                                 .msg_iovlen = 1};
            out_bid[n_out++] = bid;
        }
        io_uring_cq_advance(&r, seen);
        while (off < n_out) {
            int s = sendmmsg(fd, out + off, (unsigned)(n_out - off), 0);
            if (s <= 0)
                break; /* an echo may drop; the generator counts loss */
            off += s;
        }
        for (int i = 0; i < n_out; i++)
            give_back(br, bufs, out_bid[i], i);
        io_uring_buf_ring_advance(br, n_out);
    }
    io_uring_queue_exit(&r);
    free(bufs);
    free(br);
    close(fd);
    return 0;
}
