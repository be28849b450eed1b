/* ph_ui.c - the phone's screen, keys and status lines (see ph_ui.h). */
#include "ph_ui.h"

#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "rtc_clock.h"

/* The terminal's state, owned by the phone (ph->ui) from start to stop. */
struct ph_ui {
    bool on;
    struct termios saved;
    guint key_src, draw_src;
    ph_ui_key_fn on_key;
    phone *ph;
};

static const char *short_state(const bot_call_info *ci)
{
    return ci->state ? ci->state : "?";
}

/* "-23 dB ####......" : a level meter from -60 to 0 dBFS. */
static void meter(char *out, size_t cap, double db)
{
    int bars = db <= -60 ? 0 : db >= 0 ? 10 : (int)((db + 60) / 6);
    char b[11];
    for (int i = 0; i < 10; i++)
        b[i] = i < bars ? '#' : '.';
    b[10] = '\0';
    snprintf(out, cap, "%4.0f dB %s", db < -99 ? -99 : db, b);
}

static void call_line(FILE *f, ph_peer *p, bool plain, double t)
{
    bot_call_info ci;
    ph_jb_stats js;
    char lv[32];
    const char *who = p->name[0] ? p->name : p->id;
    ph_jbuf_stats_get(p->jb, &js);
    meter(lv, sizeof lv, p->level_db);
    if (!p->call) {
        if (plain)
            fprintf(f, "phone: t=%.0f peer=%s state=waiting\n", t, p->id);
        else
            fprintf(f, "  %-16.16s waiting for its call\r\n", who);
        return;
    }
    bot_call_info_get(p->call, &ci);
    if (plain)
        fprintf(f, "phone: t=%.0f peer=%s state=%s%s path=%s loss=%.2f%% jitter=%.1fms rtt=%.1fms "
                   "mos=%.2f jb=%ums fec=%llu plc=%llu late=%llu level=%.0fdB restarts=%u\n",
                t, p->id, short_state(&ci), p->left ? "(left)" : "", ci.selected[0] ? ci.selected : "-",
                ci.loss_pct, ci.jitter_ms, ci.rtt_ms, ci.mos, js.target_frames * PH_JB_FRAME_MS,
                (unsigned long long)js.fec, (unsigned long long)js.plc,
                (unsigned long long)js.late, p->level_db, ci.ice_restarts);
    else
        fprintf(f, "  %-16.16s %-10s %-22.22s %s  loss %5.2f%%  jitter %5.1f ms  rtt %6.1f ms  "
                   "MOS %.2f  buffer %3u ms  fec %llu plc %llu\r\n",
                who, p->left ? "left" : short_state(&ci), ci.selected[0] ? ci.selected : "-", lv,
                ci.loss_pct, ci.jitter_ms, ci.rtt_ms, ci.mos, js.target_frames * PH_JB_FRAME_MS,
                (unsigned long long)js.fec, (unsigned long long)js.plc);
}

void ph_ui_draw(phone *ph)
{
    char lv[32];
    FILE *f = stdout;
    if (!ph->ui || !ph->ui->on)
        return;
    meter(lv, sizeof lv, ph->mic_db);
    fprintf(f, "\033[H\033[2J");
    fprintf(f, "tsunagu-phone  room %s  as %s  (%s)\r\n", ph->conf.room, ph->conf.name,
            ph->joined ? ph->my_id : "joining");
    fprintf(f, "microphone %s %s   cpu %.1f%%\r\n\r\n", ph->muted ? "MUTED" : "on   ", lv, ph->cpu_pct);
    if (!ph->peers->len)
        fprintf(f, "  nobody else in the room yet\r\n");
    for (guint i = 0; i < ph->peers->len; i++)
        call_line(f, ph->peers->pdata[i], false, 0);
    fprintf(f, "\r\n%s\r\n\r\n[m] mute  [q] leave\r\n", ph->status);
    fflush(f);
}

static gboolean on_draw(gpointer ud)
{
    ph_ui_draw(ud);
    return G_SOURCE_CONTINUE;
}

static gboolean on_stdin(gint fd, GIOCondition cond, gpointer ud)
{
    struct ph_ui *u = ud;
    char buf[16];
    ssize_t n = read(fd, buf, sizeof buf);
    (void)cond;
    if (n <= 0) {
        u->key_src = 0;
        return G_SOURCE_REMOVE; /* terminal gone: keys no more */
    }
    for (ssize_t i = 0; i < n; i++)
        u->on_key(u->ph, (unsigned char)buf[i]);
    return G_SOURCE_CONTINUE;
}

void ph_ui_start(phone *ph, ph_ui_key_fn on_key)
{
    struct termios raw;
    struct ph_ui *u;
    if (ph->conf.no_ui || !isatty(0) || !isatty(1))
        return;
    u = calloc(1, sizeof *u);
    if (!u)
        return;
    u->ph = ph;
    u->on_key = on_key;
    if (tcgetattr(0, &u->saved))
        goto out_free;
    raw = u->saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(0, TCSANOW, &raw))
        goto out_free;
    u->on = true;
    u->key_src = g_unix_fd_add(0, G_IO_IN, on_stdin, u);
    u->draw_src = g_timeout_add(200, on_draw, ph);
    ph->ui = u;
    fprintf(stdout, "\033[?25l"); /* no cursor while drawing */
    return;
out_free:
    free(u);
}

void ph_ui_stop(phone *ph)
{
    struct ph_ui *u = ph->ui;
    if (!u)
        return;
    if (u->key_src)
        g_source_remove(u->key_src);
    if (u->draw_src)
        g_source_remove(u->draw_src);
    tcsetattr(0, TCSANOW, &u->saved);
    fprintf(stdout, "\033[?25h\n");
    free(u);
    ph->ui = NULL;
}

void ph_ui_second(phone *ph)
{
    double t = (double)(rtc_clock_mono_us() - ph->t_start_us) / 1e6;
    if (ph->ui)
        return;
    for (guint i = 0; i < ph->peers->len; i++)
        call_line(stderr, ph->peers->pdata[i], true, t);
    fprintf(stderr, "phone: t=%.0f mic=%.0fdB muted=%d cpu=%.1f%% members=%u\n", t, ph->mic_db,
            ph->muted, ph->cpu_pct, ph->peers->len);
}

void ph_ui_summary(phone *ph)
{
    for (guint i = 0; i < ph->peers->len; i++) {
        ph_peer *p = ph->peers->pdata[i];
        bot_call_info ci;
        ph_jb_stats js;
        if (!p->call)
            continue;
        bot_call_info_get(p->call, &ci);
        ph_jbuf_stats_get(p->jb, &js);
        printf("call %s%s%s: %s, path %s, loss %.2f%%, jitter %.1f ms, rtt %.1f ms, MOS %.2f, "
               "played %llu, fec %llu, plc %llu\n",
               p->id, p->name[0] ? " " : "", p->name, ci.media ? "had audio" : "NO AUDIO",
               ci.selected[0] ? ci.selected : "-", ci.loss_pct, ci.jitter_ms, ci.rtt_ms, ci.mos,
               (unsigned long long)js.played, (unsigned long long)js.fec,
               (unsigned long long)js.plc);
    }
    fflush(stdout);
}
