/* ph_pulse.c - PulseAudio streams on the GLib loop (see ph_pulse.h). */
#include "ph_pulse.h"

#include <glib.h>
#include <pulse/glib-mainloop.h>
#include <pulse/pulseaudio.h>
#include <stdlib.h>
#include <string.h>

#define RING (PH_RATE / 2)        /* 500 ms of capture at most */
/* One Opus frame per capture wake-up: 10 ms fragments woke the phone twice
 * per frame for nothing (docs/phone.md "CPU"). */
#define CAPTURE_FRAG_MS 20
#define PLAY_TARGET_MS 60
#define PLAY_TARGET_MAX_MS 100
#define PLAY_RAISE_MS 20
#define PLAY_RAISE_EVERY_US 1000000 /* one raise a second: an underrun comes in clusters */
#define PLAY_PREBUF_MS 20

struct ph_pulse {
    ph_pulse_cbs cbs;
    pa_glib_mainloop *ml;
    pa_context *ctx;
    pa_stream *rec, *play;
    char *input, *output;
    bool rec_ready, play_ready, told_ready, failed;
    int16_t ring[RING];
    size_t head, n; /* oldest sample, count */
    uint64_t overruns, underruns;
    unsigned play_ms; /* the playback target asked for */
    int64_t raised_us; /* when it was last raised */
};

static const pa_sample_spec spec = {PA_SAMPLE_S16LE, PH_RATE, 1};

static uint32_t ms_bytes(unsigned ms) { return (uint32_t)(PH_RATE / 1000 * ms * 2); }

static void fail(ph_pulse *p, const char *what)
{
    char why[256];
    if (p->failed)
        return;
    p->failed = true;
    snprintf(why, sizeof why, "%s: %s", what, pa_strerror(pa_context_errno(p->ctx)));
    p->cbs.failed(p->cbs.ud, why);
}

static void maybe_ready(ph_pulse *p)
{
    if (p->rec_ready && p->play_ready && !p->told_ready) {
        p->told_ready = true;
        p->cbs.ready(p->cbs.ud);
    }
}

static void on_stream_state(pa_stream *s, void *ud)
{
    ph_pulse *p = ud;
    switch (pa_stream_get_state(s)) {
    case PA_STREAM_READY:
        if (s == p->rec)
            p->rec_ready = true;
        else
            p->play_ready = true;
        maybe_ready(p);
        break;
    case PA_STREAM_FAILED:
        fail(p, s == p->rec ? "record stream" : "playback stream");
        break;
    default:
        break;
    }
}

/* Samples into the ring; when the owner falls behind the oldest go (a
 * microphone that lags is worse than one that skips). */
static void ring_put(ph_pulse *p, const int16_t *pcm, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p->n == RING) {
            p->head = (p->head + 1) % RING;
            p->n--;
            p->overruns++;
        }
        p->ring[(p->head + p->n) % RING] = pcm[i];
        p->n++;
    }
}

static void on_read(pa_stream *s, size_t nbytes, void *ud)
{
    ph_pulse *p = ud;
    const void *data;
    size_t len;
    /* Bounded: each peek hands over one fragment; a loaded machine may
     * have queued several. */
    for (int i = 0; i < 64 && pa_stream_readable_size(s) > 0; i++) {
        if (pa_stream_peek(s, &data, &len) < 0)
            break;
        if (len == 0)
            break;
        if (data) /* NULL data is a hole in the stream: nothing to keep */
            ring_put(p, data, len / 2);
        pa_stream_drop(s);
    }
    (void)nbytes;
    p->cbs.captured(p->cbs.ud);
}

static void on_write(pa_stream *s, size_t nbytes, void *ud)
{
    ph_pulse *p = ud;
    (void)s;
    (void)nbytes;
    p->cbs.need(p->cbs.ud);
}

static pa_buffer_attr play_attr(unsigned ms)
{
    pa_buffer_attr a = {(uint32_t)-1, ms_bytes(ms), ms_bytes(PLAY_PREBUF_MS), ms_bytes(20),
                        (uint32_t)-1};
    return a;
}

/* An underrun: this process (or the server) was not scheduled in time, and
 * silence was played. A deeper buffer rides out the next such stall. */
static void on_underflow(pa_stream *s, void *ud)
{
    ph_pulse *p = ud;
    int64_t now = g_get_monotonic_time();
    pa_buffer_attr a;
    pa_operation *o;
    p->underruns++;
    if (p->play_ms >= PLAY_TARGET_MAX_MS || (p->raised_us && now - p->raised_us < PLAY_RAISE_EVERY_US))
        return;
    p->play_ms += PLAY_RAISE_MS;
    p->raised_us = now;
    a = play_attr(p->play_ms);
    if ((o = pa_stream_set_buffer_attr(s, &a, NULL, NULL)))
        pa_operation_unref(o);
}

static int start_streams(ph_pulse *p)
{
    pa_buffer_attr ra = {(uint32_t)-1, (uint32_t)-1, (uint32_t)-1, (uint32_t)-1, ms_bytes(CAPTURE_FRAG_MS)};
    pa_buffer_attr pa = play_attr(PLAY_TARGET_MS);
    /* No AUTO_TIMING_UPDATE: nothing here reads the streams' latency (the
     * queue depth comes from the writable size), and the update was a round
     * trip to the server per stream ten times a second. */
    pa_stream_flags_t fl = PA_STREAM_ADJUST_LATENCY;

    p->rec = pa_stream_new(p->ctx, "tsunagu-phone microphone", &spec, NULL);
    p->play = pa_stream_new(p->ctx, "tsunagu-phone speaker", &spec, NULL);
    if (!p->rec || !p->play)
        return -1;
    pa_stream_set_state_callback(p->rec, on_stream_state, p);
    pa_stream_set_state_callback(p->play, on_stream_state, p);
    pa_stream_set_read_callback(p->rec, on_read, p);
    pa_stream_set_write_callback(p->play, on_write, p);
    pa_stream_set_underflow_callback(p->play, on_underflow, p);
    if (pa_stream_connect_record(p->rec, p->input, &ra, fl) < 0)
        return -1;
    if (pa_stream_connect_playback(p->play, p->output, &pa, fl, NULL, NULL) < 0)
        return -1;
    return 0;
}

static void on_ctx_state(pa_context *c, void *ud)
{
    ph_pulse *p = ud;
    switch (pa_context_get_state(c)) {
    case PA_CONTEXT_READY:
        if (start_streams(p))
            fail(p, "cannot open the streams");
        break;
    case PA_CONTEXT_FAILED:
    case PA_CONTEXT_TERMINATED:
        fail(p, "PulseAudio server");
        break;
    default:
        break;
    }
}

ph_pulse *ph_pulse_new(const char *input, const char *output, const ph_pulse_cbs *cbs,
                       char *err, size_t errlen)
{
    ph_pulse *p = calloc(1, sizeof *p);
    pa_proplist *pl;
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->cbs = *cbs;
    p->play_ms = PLAY_TARGET_MS;
    p->input = input ? strdup(input) : NULL;
    p->output = output ? strdup(output) : NULL;
    p->ml = pa_glib_mainloop_new(NULL);
    pl = pa_proplist_new();
    pa_proplist_sets(pl, PA_PROP_MEDIA_ROLE, "phone");
    pa_proplist_sets(pl, PA_PROP_APPLICATION_ID, "org.tsunagu.phone");
    p->ctx = pa_context_new_with_proplist(pa_glib_mainloop_get_api(p->ml), "tsunagu-phone", pl);
    pa_proplist_free(pl);
    if (!p->ctx) {
        snprintf(err, errlen, "pa_context_new failed");
        goto out_free;
    }
    pa_context_set_state_callback(p->ctx, on_ctx_state, p);
    if (pa_context_connect(p->ctx, NULL, PA_CONTEXT_NOAUTOSPAWN, NULL) < 0) {
        snprintf(err, errlen, "cannot connect to PulseAudio: %s",
                 pa_strerror(pa_context_errno(p->ctx)));
        goto out_free;
    }
    return p;
out_free:
    ph_pulse_free(p);
    return NULL;
}

void ph_pulse_free(ph_pulse *p)
{
    if (!p)
        return;
    if (p->rec) {
        pa_stream_set_state_callback(p->rec, NULL, NULL);
        pa_stream_set_read_callback(p->rec, NULL, NULL);
        pa_stream_disconnect(p->rec);
        pa_stream_unref(p->rec);
    }
    if (p->play) {
        pa_stream_set_state_callback(p->play, NULL, NULL);
        pa_stream_set_write_callback(p->play, NULL, NULL);
        pa_stream_set_underflow_callback(p->play, NULL, NULL);
        pa_stream_disconnect(p->play);
        pa_stream_unref(p->play);
    }
    if (p->ctx) {
        pa_context_set_state_callback(p->ctx, NULL, NULL);
        pa_context_disconnect(p->ctx);
        pa_context_unref(p->ctx);
    }
    if (p->ml)
        pa_glib_mainloop_free(p->ml);
    free(p->input);
    free(p->output);
    free(p);
}

size_t ph_pulse_captured(const ph_pulse *p) { return p->n; }

bool ph_pulse_read(ph_pulse *p, int16_t *pcm, size_t n)
{
    if (p->n < n)
        return false;
    for (size_t i = 0; i < n; i++)
        pcm[i] = p->ring[(p->head + i) % RING];
    p->head = (p->head + n) % RING;
    p->n -= n;
    return true;
}

size_t ph_pulse_writable(ph_pulse *p)
{
    size_t w;
    if (!p->play_ready)
        return 0;
    w = pa_stream_writable_size(p->play);
    return w == (size_t)-1 ? 0 : w / 2;
}

size_t ph_pulse_queued(ph_pulse *p)
{
    const pa_buffer_attr *a;
    size_t w = ph_pulse_writable(p), t;
    if (!p->play_ready || !(a = pa_stream_get_buffer_attr(p->play)))
        return 0;
    t = a->tlength / 2;
    return w < t ? t - w : 0;
}

unsigned ph_pulse_play_target_ms(const ph_pulse *p) { return p->play_ms; }

int ph_pulse_write(ph_pulse *p, const int16_t *pcm, size_t n)
{
    if (!p->play_ready)
        return -1;
    return pa_stream_write(p->play, pcm, n * 2, NULL, 0, PA_SEEK_RELATIVE) < 0 ? -1 : 0;
}

uint64_t ph_pulse_overruns(const ph_pulse *p) { return p->overruns; }
uint64_t ph_pulse_underruns(const ph_pulse *p) { return p->underruns; }

/* --- --list-devices --- */

typedef struct {
    FILE *out;
    GMainLoop *loop;
    int pending, rc;
    guint timer;
} lister;

static void list_done(lister *l)
{
    if (--l->pending == 0)
        g_main_loop_quit(l->loop);
}

static void on_source(pa_context *c, const pa_source_info *i, int eol, void *ud)
{
    lister *l = ud;
    (void)c;
    if (eol) {
        list_done(l);
        return;
    }
    fprintf(l->out, "input   %-40s %s\n", i->name, i->description ? i->description : "");
}

static void on_sink(pa_context *c, const pa_sink_info *i, int eol, void *ud)
{
    lister *l = ud;
    (void)c;
    if (eol) {
        list_done(l);
        return;
    }
    fprintf(l->out, "output  %-40s %s\n", i->name, i->description ? i->description : "");
}

static void on_list_state(pa_context *c, void *ud)
{
    lister *l = ud;
    pa_operation *o;
    switch (pa_context_get_state(c)) {
    case PA_CONTEXT_READY:
        l->pending = 2;
        if ((o = pa_context_get_source_info_list(c, on_source, l)))
            pa_operation_unref(o);
        if ((o = pa_context_get_sink_info_list(c, on_sink, l)))
            pa_operation_unref(o);
        break;
    case PA_CONTEXT_FAILED:
    case PA_CONTEXT_TERMINATED:
        fprintf(l->out, "cannot reach PulseAudio: %s\n", pa_strerror(pa_context_errno(c)));
        l->rc = 1;
        g_main_loop_quit(l->loop);
        break;
    default:
        break;
    }
}

static gboolean list_timeout(gpointer ud)
{
    lister *l = ud;
    fprintf(l->out, "PulseAudio did not answer within 5 s\n");
    l->rc = 1;
    l->timer = 0;
    g_main_loop_quit(l->loop);
    return G_SOURCE_REMOVE;
}

int ph_pulse_list_devices(FILE *out)
{
    lister l = {out, g_main_loop_new(NULL, FALSE), 0, 0, 0};
    pa_glib_mainloop *ml = pa_glib_mainloop_new(NULL);
    pa_context *c = pa_context_new(pa_glib_mainloop_get_api(ml), "tsunagu-phone");
    l.timer = g_timeout_add(5000, list_timeout, &l);
    pa_context_set_state_callback(c, on_list_state, &l);
    if (pa_context_connect(c, NULL, PA_CONTEXT_NOAUTOSPAWN, NULL) < 0) {
        fprintf(out, "cannot connect to PulseAudio: %s\n", pa_strerror(pa_context_errno(c)));
        l.rc = 1;
    } else {
        g_main_loop_run(l.loop);
    }
    if (l.timer)
        g_source_remove(l.timer);
    pa_context_set_state_callback(c, NULL, NULL);
    pa_context_disconnect(c);
    pa_context_unref(c);
    pa_glib_mainloop_free(ml);
    g_main_loop_unref(l.loop);
    return l.rc;
}
