/* sig_room_seq.c - per-member sequence numbers of room traffic (see
 * sig_room.h). Kept out of sig_room.c (near its size limit); works on the
 * hub's private types.
 *
 * A number is given when a message enters the member's send queue, not when
 * it is parked behind a hand-over's tail (sig_member.holding): parked
 * messages join the queue later, behind newer ones, and the numbers must
 * follow the order the client gets them in. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sig_room_int.h"

/* Room traffic: what a member that missed it cannot rebuild. The texts come
 * from sig_proto.c, "type" first (jansson keeps insertion order). */
static bool numbered(const char *text)
{
    static const char *const kinds[] = {"{\"type\":\"signal\"", "{\"type\":\"broadcast\"",
                                        "{\"type\":\"peer-joined\"", "{\"type\":\"peer-left\""};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strncmp(text, kinds[i], strlen(kinds[i])))
            return true;
    return false;
}

void sig_seq_number(sig_member *m, qent *e)
{
    sig_hub *h = m->hub;
    e->seq = 0;
    if (!m->numbered || e->b->greeting || !numbered(e->b->text))
        return;
    e->seq = ++m->seq;
    if (h->queued)
        h->queued(h->queued_ud, m->id, e->seq, e->b->text);
}

void sig_member_set_numbered(sig_member *m, bool on)
{
    m->numbered = on;
    m->seq = 0;
}

bool sig_member_numbered(const sig_member *m) { return m->numbered; }

void sig_hub_set_queued(sig_hub *h, sig_hub_queued_fn fn, void *ud)
{
    h->queued = fn;
    h->queued_ud = ud;
}

uint64_t sig_member_peek_seq(const sig_member *m) { return m->qhead ? m->qhead->seq : 0; }
uint64_t sig_member_seq(const sig_member *m) { return m->seq; }

void sig_member_set_seq(sig_member *m, uint64_t seq)
{
    if (seq > m->seq)
        m->seq = seq;
}

size_t sig_seq_splice(const char *text, size_t len, uint64_t seq, char *out, size_t cap)
{
    char tail[32];
    int k;
    if (len < 2 || text[0] != '{' || text[len - 1] != '}')
        return 0;
    /* "{}" has no member to follow */
    k = snprintf(tail, sizeof tail, "%s\"seq\":%" PRIu64 "}", len == 2 ? "" : ",", seq);
    if (k < 0 || (size_t)k >= sizeof tail || len - 1 + (size_t)k + 1 > cap)
        return 0;
    memcpy(out, text, len - 1);
    memcpy(out + len - 1, tail, (size_t)k + 1);
    return len - 1 + (size_t)k;
}
