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
 * ms). Playout starts once the target is buffered. A burst of packets after
 * a stall (of the sender, the network or this machine) is played, not
 * thrown away: the stall already cost its delay, and dropping the backlog
 * drops speech. The excess over the target is then given back slowly:
 * - in quiet frames: the caller decodes a frame, finds it quiet and asks
 *   ph_jbuf_squeeze whether to drop it (one frame in two at most: pauses
 *   between words shrink, speech does not);
 * - in speech (noise that never gets quiet): one frame a second when more
 *   than PH_JB_SPEECH_SLACK frames over the target;
 * - over the hard cap (PH_JB_HARD_CAP frames, 400 ms) it drops the oldest
 *   at once: the delay stays bounded after a long stall.
 * A target raised by a stall is reached by playing silent frames in pauses
 * (ph_jbuf_stretch), one in two at most.
 * When it runs dry while playing it conceals in place (the packet may still
 * come; the delay grows by a frame, given back in the next pause). Callers
 * avoid that when the sound card still holds enough: ph_jbuf_dry. */
#ifndef PH_JBUF_H
#define PH_JBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PH_JB_SLOTS 64
#define PH_JB_MAX_PAYLOAD 1500
#define PH_JB_FRAME_MS 20
#define PH_JB_HARD_CAP 20     /* frames buffered at most: 400 ms */
#define PH_JB_SPEECH_SLACK 4 /* frames over the target before speech is dropped */

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
    uint64_t squeezed;     /* quiet frames dropped to shrink the delay (not in skipped) */
    uint64_t capped;       /* of skipped: dropped over the hard cap */
    uint64_t stretched;    /* silent frames played in pauses to grow the delay */
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
/* The caller decoded a PH_JB_PLAY frame and found it quiet: true when the
 * buffer is deeper than its target and the frame may be dropped (counted
 * squeezed; the caller pops the next one in its place). */
bool ph_jbuf_squeeze(ph_jbuf *jb);
/* The caller played a quiet frame: true when the buffer is shallower than
 * its target (raised by a stall) and one frame of silence may be played
 * now instead of popping (counted stretched): the delay grows in a pause,
 * before the next stall, not by concealment in a word. One in two at most. */
bool ph_jbuf_stretch(ph_jbuf *jb);
/* Playing with nothing buffered: a pop now would conceal in place. */
bool ph_jbuf_dry(const ph_jbuf *jb);
void ph_jbuf_stats_get(const ph_jbuf *jb, ph_jb_stats *out);

#endif
