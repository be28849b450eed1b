/* ph_pulse.h - the phone's sound card through PulseAudio's asynchronous
 * API (libpulse; PipeWire serves the same API), on the GLib main loop
 * (libpulse-mainloop-glib). libpulse is included only in ph_pulse.c.
 *
 * Two streams of 48 kHz mono 16-bit PCM: a record stream from `input` (a
 * source; NULL = the default) into a capture ring, and a playback stream
 * to `output` (a sink; NULL = the default). The sound card's clocks drive
 * the phone: `captured` fires when new samples are in the ring, `need`
 * when the playback buffer has room (the owner writes whole 20 ms frames
 * while ph_pulse_writable allows), so the jitter buffer is drained at the
 * sink's own rate. Buffers are small on purpose (mouth-to-ear target 150
 * ms): 10 ms capture fragments, a 60 ms playback target. A machine that
 * cannot keep that up (underruns: this process was not scheduled in time)
 * gets a deeper one, 20 ms more per underrun (one a second at most) up to
 * 100 ms: a stalled phone then keeps playing from the server's buffer
 * instead of playing silence and adding the stall to the delay. After an
 * underrun playback restarts once one frame is there (prebuf 20 ms).
 * Main thread only. */
#ifndef PH_PULSE_H
#define PH_PULSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PH_RATE 48000
#define PH_FRAME 960 /* 20 ms */

typedef struct ph_pulse ph_pulse;

typedef struct {
    void (*ready)(void *ud);                  /* both streams are running */
    void (*failed)(void *ud, const char *why); /* the server or a stream went away */
    void (*captured)(void *ud);
    void (*need)(void *ud);
    void *ud;
} ph_pulse_cbs;

/* Connects to the PulseAudio server (PULSE_SERVER / the user's runtime
 * dir) asynchronously; the callbacks say how it went. NULL on a failure
 * known at once (reason in err). */
ph_pulse *ph_pulse_new(const char *input, const char *output, const ph_pulse_cbs *cbs,
                       char *err, size_t errlen);
void ph_pulse_free(ph_pulse *p);

/* Captured samples waiting in the ring. */
size_t ph_pulse_captured(const ph_pulse *p);
/* Take n samples from the ring; false (nothing taken) if fewer are there. */
bool ph_pulse_read(ph_pulse *p, int16_t *pcm, size_t n);
/* Room in the playback buffer, in samples. */
size_t ph_pulse_writable(ph_pulse *p);
/* Samples in the playback buffer not yet played (about). */
size_t ph_pulse_queued(ph_pulse *p);
/* The playback buffer's target now, in ms (60, more after underruns). */
unsigned ph_pulse_play_target_ms(const ph_pulse *p);
/* Queue n samples for playback (copied). */
int ph_pulse_write(ph_pulse *p, const int16_t *pcm, size_t n);
/* Samples the ring had to drop because the owner fell behind, and
 * playback underruns the server reported. */
uint64_t ph_pulse_overruns(const ph_pulse *p);
uint64_t ph_pulse_underruns(const ph_pulse *p);

/* --list-devices: sources (inputs) and sinks (outputs) with descriptions,
 * on a loop of its own. 0, or 1 with a reason on `out`. */
int ph_pulse_list_devices(FILE *out);

#endif
