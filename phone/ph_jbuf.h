/* ph_jbuf.h - the adaptive jitter buffer of one received Opus stream
 * (tsunagu-phone). Packets go in by RTP sequence number as they arrive; the
 * 20 ms playout clock takes one frame out per tick and is told what to do
 * with it: play a packet, rebuild a lost frame from the in-band FEC of the
 * packet after it (RFC 6716 s.2.1.7: Opus's LBRR copy), or conceal it
 * (PLC). Pure state: no clock (callers pass now_us), no decoding, no I/O;
 * used by one thread.
 *
 * Adaptation: the target depth follows the interarrival jitter (RFC 3550
 * s.6.4.1 estimator): target = 3 x jitter + one frame, 2..10 frames (40..200
 * * ms). Playout starts once the target is buffered; when the buffer runs
 * dry it conceals without advancing (the delay grows by a frame, which the
 * next late packet then fills); when it holds more than target + 2 frames
 * it skips one frame (the delay shrinks), at most one skip per second; more
 * than target + 10 frames (a burst after a stall) and it jumps back to the
 * target at once. */
#ifndef PH_JBUF_H
#define PH_JBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PH_JB_SLOTS 64
#define PH_JB_MAX_PAYLOAD 1500
#define PH_JB_FRAME_MS 20

typedef enum {
    PH_JB_WAIT, /* not playing yet (filling to the target): play silence */
    PH_JB_PLAY, /* decode payload */
    PH_JB_FEC,  /* decode payload (the next packet) with fec = 1 */
    PH_JB_PLC   /* conceal: decode with no payload */
} ph_jb_kind;

typedef struct {
    ph_jb_kind kind;
    const uint8_t *payload; /* borrowed: valid until the next push or pop */
    size_t len;
} ph_jb_out;

typedef struct {
    uint64_t pushed, played, fec, plc, late, dup, skipped, resets;
    double jitter_ms;      /* interarrival jitter estimate */
    unsigned target_frames, depth_frames;
} ph_jb_stats;

typedef struct ph_jbuf ph_jbuf;

ph_jbuf *ph_jbuf_new(void);
void ph_jbuf_free(ph_jbuf *jb);
/* One received payload (copied). Packets older than the playout point are
 * counted late and dropped; len over PH_JB_MAX_PAYLOAD is refused. */
void ph_jbuf_push(ph_jbuf *jb, uint16_t seq, uint32_t ts, const uint8_t *payload, size_t len,
                  uint64_t now_us);
/* The next 20 ms frame. */
void ph_jbuf_pop(ph_jbuf *jb, ph_jb_out *out);
void ph_jbuf_stats_get(const ph_jbuf *jb, ph_jb_stats *out);

#endif
