/* fuzz_rly_takeover.c - libFuzzer target for the live-takeover state blob
 * parser (relay/io/rly_takeover.c), which a new relay process runs on what
 * the old one sent: untrusted input.
 *
 * The descriptor count the parser is told it received is taken from the
 * blob's own header field (offset 24) when there is one, so inputs reach
 * past that check. A blob that parses must satisfy the parser's promises
 * (counts within bounds, descriptor indexes below the count and distinct)
 * and must survive a write -> parse round trip unchanged in shape. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rly_takeover.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                \
    do {                                                                                        \
        if (!(c)) {                                                                             \
            fprintf(stderr, "fuzz_rly_takeover: invariant failed: %s (line %d)\n", #c,         \
                    __LINE__);                                                                  \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

#define NOW 5000000000u

static void mark(uint8_t *seen, uint32_t n, uint32_t idx, bool may_be_none)
{
    if (may_be_none && idx == RLY_TO_NONE)
        return;
    CHECK(idx < n);
    CHECK(!seen[idx]);
    seen[idx] = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rly_to_state s, s2;
    char err[256];
    uint32_t nfds = 0;
    uint8_t *out = NULL, *seen;
    size_t olen = 0;

    if (size >= 28)
        nfds = (uint32_t)data[24] << 24 | (uint32_t)data[25] << 16 | (uint32_t)data[26] << 8 |
               data[27];
    if (nfds > 100000)
        nfds = 100000; /* keep the descriptor bitmap small; larger is refused anyway */
    if (rly_to_parse(data, size, nfds, NOW, &s, err, sizeof err))
        return 0;
    CHECK(s.n_workers >= 1 && s.n_workers <= RLY_TO_MAX_WORKERS);
    CHECK(s.n_listen <= RLY_TO_MAX_LISTEN && s.n_tls <= RLY_TO_MAX_LISTEN);
    CHECK(s.n_fds == nfds);
    seen = calloc(nfds + 1, 1);
    CHECK(seen);
    mark(seen, nfds, s.metrics_fd, true);
    for (uint32_t w = 0; w < s.n_workers; w++) {
        for (uint32_t l = 0; l < s.n_listen; l++) {
            mark(seen, nfds, s.w[w].udp[l], false);
            mark(seen, nfds, s.w[w].tcp[l], false);
        }
        for (uint32_t l = 0; l < s.n_tls; l++)
            mark(seen, nfds, s.w[w].tls[l], false);
        for (uint32_t k = 0; k < s.w[w].n_allocs; k++) {
            const rly_alloc *a = &s.w[w].allocs[k];
            CHECK(a->tuple.proto == RLY_UDP && a->tuple.listener < s.n_listen);
            CHECK(a->n_perms <= RLY_MAX_PERMS && a->n_chans <= RLY_MAX_CHANS);
            CHECK(strlen(a->user) >= 1 && strlen(a->user) <= RLY_USER_MAX);
            mark(seen, nfds, (uint32_t)a->relay_fd, false);
            mark(seen, nfds, a->relay_fd2 < 0 ? RLY_TO_NONE : (uint32_t)a->relay_fd2, true);
        }
    }
    free(seen);
    CHECK(rly_to_write(&s, NOW, &out, &olen) == 0);
    CHECK(rly_to_parse(out, olen, nfds, NOW, &s2, err, sizeof err) == 0);
    CHECK(s2.n_workers == s.n_workers && s2.n_listen == s.n_listen);
    for (uint32_t w = 0; w < s.n_workers; w++)
        CHECK(s2.w[w].n_allocs == s.w[w].n_allocs);
    rly_to_state_dispose(&s2);
    rly_to_state_dispose(&s);
    free(out);
    return 0;
}
