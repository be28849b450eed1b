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
#include <stdlib.h>
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

/* A text handed over by the old node ends in `,"seq":N}` (sig_seq_text):
 * take the number off (the buffer is this member's alone: sig_hub_adopt
 * makes one per text). No text of sig_proto.c ends like that otherwise:
 * their last field is "data", "peer" or "id" (a value a client chose ends
 * in a quote or a bracket first). 0: no number there. */
static uint64_t strip(sig_buf *b)
{
    static const char key[] = ",\"seq\":";
    size_t i = b->len, end;
    uint64_t v = 0, p = 1;
    if (i < sizeof key + 1 || b->text[i - 1] != '}')
        return 0;
    end = --i;
    while (i > 0 && b->text[i - 1] >= '0' && b->text[i - 1] <= '9' && end - i < 16) {
        v += p * (uint64_t)(b->text[i - 1] - '0');
        p *= 10;
        i--;
    }
    if (i == end || i < sizeof key - 1 || memcmp(b->text + i - (sizeof key - 1), key, sizeof key - 1))
        return 0;
    i -= sizeof key - 1;
    b->text[i] = '}';
    b->text[i + 1] = '\0';
    b->len = i + 1;
    return v;
}

void sig_seq_number(sig_member *m, qent *e)
{
    sig_hub *h = m->hub;
    uint64_t given;
    e->seq = 0;
    if (!m->numbered || e->b->greeting || !numbered(e->b->text))
        return;
    if (m->adopting && (given = strip(e->b))) {
        /* numbered (and written to the member's stream) by the old node */
        e->seq = given;
        if (given > m->seq)
            m->seq = given;
        return;
    }
    e->seq = ++m->seq;
    if (h->queued)
        h->queued(h->queued_ud, m->id, e->seq, e->b->text, h->origin_x ? h->origin_x : "");
}

void sig_member_set_numbered(sig_member *m, bool on)
{
    m->numbered = on;
    m->seq = 0;
}

void sig_member_number_from(sig_member *m, bool on, uint64_t last)
{
    m->numbered = on;
    m->seq = on ? last : 0;
}

bool sig_member_numbered(const sig_member *m) { return m->numbered; }

char *sig_seq_text(const qent *e)
{
    size_t cap = e->b->len + 32;
    char *t = malloc(cap);
    if (t && !(e->seq && sig_seq_splice(e->b->text, e->b->len, e->seq, t, cap)))
        memcpy(t, e->b->text, e->b->len + 1);
    return t;
}

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
