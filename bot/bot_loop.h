/* bot_loop.h - timers on the calling thread's GLib context.
 *
 * A call and everything it owns (libnice agent, DTLS timers) lives on one
 * worker thread's GMainContext, pushed as that thread's default
 * (g_main_context_push_thread_default). g_timeout_add and g_source_remove
 * always use the global default context, so call code uses these instead:
 * the source is attached to the thread-default context and the caller keeps
 * a reference to cancel it. */
#ifndef BOT_LOOP_H
#define BOT_LOOP_H

#include <glib.h>

/* One-shot or repeating timer on the thread-default context; the returned
 * reference is the caller's (drop it with bot_timer_cancel, or with
 * bot_timer_fired from inside a callback that returns G_SOURCE_REMOVE). */
static inline GSource *bot_timer_new(guint ms, GSourceFunc fn, gpointer ud)
{
    GSource *s = g_timeout_source_new(ms);
    g_source_set_callback(s, fn, ud, NULL);
    g_source_attach(s, g_main_context_get_thread_default());
    return s;
}

static inline void bot_timer_cancel(GSource **s)
{
    if (*s) {
        g_source_destroy(*s);
        g_source_unref(*s);
        *s = NULL;
    }
}

/* In a callback about to return G_SOURCE_REMOVE: GLib destroys the source,
 * we drop our reference. */
static inline void bot_timer_fired(GSource **s)
{
    if (*s) {
        g_source_unref(*s);
        *s = NULL;
    }
}

#endif
