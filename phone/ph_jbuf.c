/* ph_jbuf.c - adaptive jitter buffer (see ph_jbuf.h). */
#include "ph_jbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Concealed frames in a row with nothing buffered before playout stops and
 * refills to the target (the peer stopped sending, or a path is down). */
#define MAX_DRY 25
#define MIN_TARGET 2 /* 40 ms: the sound card pulls in bursts of up to two frames */
#define MAX_TARGET 10
#define SKIP_EVERY 50 /* frames between two drops in speech: one a second at most */
#define SQUEEZE_EVERY 2 /* frames between two quiet drops: half a pause at most */
/* A stall upstream (the sender, the relay or the network: packets stopped
 * while our playout went on) raises the target to the frames played while
 * waiting, HOLD_MAX at most, and it is held: another stall of that size
 * then drains and refills the buffer without a cut and without moving the
 * delay (a delay that moves smears speech more than a constant one). A
 * stall of this process is not counted (no pops while it lasts): the
 * playback buffer rides those out (ph_pulse.h). One frame less every
 * HOLD_DECAY pops with no stall that large. */
#define HOLD_MAX 6
#define HOLD_MIN_GAP 3 /* pops between two arrivals that make a stall */
#define HOLD_DECAY 250 /* 5 s */

typedef struct {
    bool full;
    uint16_t seq;
    uint16_t len;
    uint8_t data[PH_JB_MAX_PAYLOAD];
} slot;

struct ph_jbuf {
    slot s[PH_JB_SLOTS];
    bool playing, have_newest, have_transit;
    uint16_t next;   /* the sequence number the next pop plays */
    uint16_t newest; /* highest sequence number buffered or played */
    double transit_ms, jitter_ms;
    unsigned hold, since_hold, pops_since_arrival;
    unsigned dry, since_skip, since_squeeze, count;
    ph_jb_stats st;
    uint8_t out[PH_JB_MAX_PAYLOAD]; /* what the last pop handed out */
};

/* RFC 3550 sequence arithmetic: a before b, modulo 2^16. */
static bool seq_lt(uint16_t a, uint16_t b) { return (int16_t)(a - b) < 0; }

ph_jbuf *ph_jbuf_new(void)
{
    ph_jbuf *jb = calloc(1, sizeof *jb);
    if (jb)
        jb->st.target_frames = 2;
    return jb;
}

void ph_jbuf_free(ph_jbuf *jb) { free(jb); }

static unsigned target(const ph_jbuf *jb)
{
    double t = ceil(3.0 * jb->jitter_ms / PH_JB_FRAME_MS) + 1;
    if (t < jb->hold)
        t = jb->hold;
    return t < MIN_TARGET ? MIN_TARGET : t > MAX_TARGET ? MAX_TARGET : (unsigned)t;
}

static void reset(ph_jbuf *jb)
{
    for (size_t i = 0; i < PH_JB_SLOTS; i++)
        jb->s[i].full = false;
    jb->count = 0;
    jb->playing = false;
    jb->have_newest = false;
    jb->dry = 0;
    jb->st.resets++;
}

void ph_jbuf_push(ph_jbuf *jb, uint16_t seq, uint32_t ts, const uint8_t *payload, size_t len,
                  uint64_t now_us)
{
    slot *sl;
    double arrival_ms = (double)now_us / 1000.0, transit;

    if (len == 0 || len > PH_JB_MAX_PAYLOAD)
        return;
    /* interarrival jitter, s.6.4.1: transit differences in ms (48 kHz clock) */
    transit = arrival_ms - (double)ts / 48.0;
    if (jb->have_transit) {
        double d = fabs(transit - jb->transit_ms);
        if (d < 5000) /* a timestamp jump (new source) is not jitter */
            jb->jitter_ms += (d - jb->jitter_ms) / 16.0;
    }
    jb->transit_ms = transit;
    jb->have_transit = true;
    /* one pop per arrival is the steady cadence; the rest were waiting */
    if (jb->pops_since_arrival > HOLD_MIN_GAP) {
        unsigned g = jb->pops_since_arrival - 1 > HOLD_MAX ? HOLD_MAX : jb->pops_since_arrival - 1;
        if (g >= jb->hold) {
            jb->hold = g;
            jb->since_hold = 0;
            jb->st.target_frames = target(jb);
        }
    }
    jb->pops_since_arrival = 0;
    jb->st.target_frames = target(jb);

    if (jb->playing && seq_lt(seq, jb->next)) {
        jb->st.late++;
        return;
    }
    /* Far ahead of the playout point (a new stream, or a long outage):
     * start over from this packet. */
    if (jb->playing && (uint16_t)(seq - jb->next) >= PH_JB_SLOTS)
        reset(jb);
    if (!jb->playing && jb->have_newest && (uint16_t)(seq - jb->next) >= PH_JB_SLOTS)
        reset(jb);
    sl = &jb->s[seq % PH_JB_SLOTS];
    if (sl->full && sl->seq == seq) {
        jb->st.dup++;
        return;
    }
    if (!sl->full)
        jb->count++;
    sl->full = true;
    sl->seq = seq;
    sl->len = (uint16_t)len;
    memcpy(sl->data, payload, len);
    jb->st.pushed++;
    if (!jb->have_newest) {
        jb->newest = seq;
        jb->have_newest = true;
        if (!jb->playing)
            jb->next = seq;
    } else if (seq_lt(jb->newest, seq)) {
        jb->newest = seq;
    }
    if (!jb->playing && seq_lt(seq, jb->next))
        jb->next = seq; /* reordered while filling: start from the oldest */
}

static slot *at(ph_jbuf *jb, uint16_t seq)
{
    slot *sl = &jb->s[seq % PH_JB_SLOTS];
    return sl->full && sl->seq == seq ? sl : NULL;
}

static void take(ph_jbuf *jb, slot *sl, ph_jb_out *out, ph_jb_kind kind, bool consume)
{
    memcpy(jb->out, sl->data, sl->len);
    out->kind = kind;
    out->payload = jb->out;
    out->len = sl->len;
    if (consume) {
        sl->full = false;
        jb->count--;
    }
}

static unsigned depth(const ph_jbuf *jb)
{
    return jb->have_newest && !seq_lt(jb->newest, jb->next) ? (unsigned)(uint16_t)(jb->newest - jb->next) + 1 : 0;
}

/* Drop the frame at the playout point (present or lost), counted skipped. */
static void drop_next(ph_jbuf *jb)
{
    slot *sl = at(jb, jb->next);
    if (sl) {
        sl->full = false;
        jb->count--;
    }
    jb->next++;
    jb->st.skipped++;
}

void ph_jbuf_pop(ph_jbuf *jb, ph_jb_out *out)
{
    slot *sl;
    unsigned t = jb->st.target_frames;

    out->kind = PH_JB_WAIT;
    out->payload = NULL;
    out->len = 0;
    if (!jb->playing) {
        if (!jb->have_newest || depth(jb) < t)
            return;
        /* A backlog before anything was played (the sound card started
         * late: a null sink's first pull comes 1.5-2 s after READY): start
         * at the target from the newest; nobody has heard any of it yet. */
        while (depth(jb) > t)
            drop_next(jb);
        jb->playing = true;
        jb->since_skip = 0;
    }
    jb->since_skip++;
    jb->since_squeeze++;
    jb->pops_since_arrival++;
    if (jb->hold && ++jb->since_hold >= HOLD_DECAY) {
        jb->hold--;
        jb->since_hold = 0;
        jb->st.target_frames = t = target(jb);
    }
    /* Over the hard cap (a stall longer than anyone waits for): drop the
     * oldest down to the cap; the delay stays bounded. */
    while (depth(jb) > PH_JB_HARD_CAP) {
        drop_next(jb);
        jb->st.capped++;
    }
    /* Deep in speech that never pauses: drop one, once a second at most. */
    if (depth(jb) > t + PH_JB_SPEECH_SLACK && jb->since_skip > SKIP_EVERY) {
        drop_next(jb);
        jb->since_skip = 0;
    }
    if ((sl = at(jb, jb->next))) {
        take(jb, sl, out, PH_JB_PLAY, true);
        jb->next++;
        jb->dry = 0;
        jb->st.played++;
    } else if (jb->count && (sl = at(jb, (uint16_t)(jb->next + 1)))) {
        /* lost, and the next is here: its FEC copy rebuilds this frame */
        take(jb, sl, out, PH_JB_FEC, false);
        jb->next++;
        jb->dry = 0;
        jb->st.fec++;
    } else if (jb->count) {
        /* lost, later ones are here: conceal and move on */
        out->kind = PH_JB_PLC;
        jb->next++;
        jb->dry = 0;
        jb->st.plc++;
    } else {
        /* dry: conceal in place; the packet may still come */
        out->kind = PH_JB_PLC;
        jb->st.plc++;
        if (++jb->dry >= MAX_DRY)
            reset(jb);
    }
    jb->st.depth_frames = depth(jb);
}

bool ph_jbuf_squeeze(ph_jbuf *jb)
{
    /* after a pop the depth is target - 1 in a steady stream: two frames
     * over it is a backlog, not the phase of arrivals against playout */
    if (!jb->playing || depth(jb) < jb->st.target_frames + 1 || jb->since_squeeze < SQUEEZE_EVERY)
        return false;
    jb->since_squeeze = 0;
    jb->st.squeezed++;
    return true;
}

bool ph_jbuf_stretch(ph_jbuf *jb)
{
    /* after a pop a steady stream sits at target - 1 */
    if (!jb->playing || depth(jb) + 2 > jb->st.target_frames || jb->since_squeeze < SQUEEZE_EVERY)
        return false;
    jb->since_squeeze = 0;
    jb->st.stretched++;
    return true;
}

bool ph_jbuf_dry(const ph_jbuf *jb) { return jb->playing && jb->count == 0; }

void ph_jbuf_stats_get(const ph_jbuf *jb, ph_jb_stats *out)
{
    *out = jb->st;
    out->jitter_ms = jb->jitter_ms;
}
