/* sig_resume.c - the asking node's side of a resume across nodes, as a
 * state machine (see sig_resume.h; the argument for what is kept and what
 * is passed on is "Hand-over" in sig_handover.c, steps 3 to 5). */
#include "sig_resume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void drop_buf(sig_resume *r)
{
    for (size_t i = 0; i < r->nbuf; i++)
        free(r->buf[i]);
    free(r->buf);
    r->buf = NULL;
    r->nbuf = r->cap = r->bytes = 0;
}

void sig_resume_init(sig_resume *r, uint64_t serial, uint64_t deadline_us)
{
    memset(r, 0, sizeof *r);
    r->state = SIG_RESUME_ASKED;
    r->serial = serial;
    r->deadline_us = deadline_us;
}

void sig_resume_dispose(sig_resume *r)
{
    drop_buf(r);
    r->state = SIG_RESUME_DONE;
}

bool sig_resume_mark(sig_resume *r, const char *room, const char *id, const char *owner,
                     uint64_t drops)
{
    if (r->state != SIG_RESUME_ASKED)
        return false; /* a second mark, or one after the answer: nothing new */
    r->state = SIG_RESUME_MARKED;
    r->mark_drops = drops;
    snprintf(r->room, sizeof r->room, "%s", room);
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->owner, sizeof r->owner, "%s", owner);
    return true;
}

sig_resume_verdict sig_resume_classify(const sig_resume *r, const sig_resume_event *e)
{
    switch (r->state) {
    case SIG_RESUME_TAIL:
        /* adopted: this node's hub tells it of joins and leaves itself; our
         * own signals and broadcasts to it, published while it was still
         * remote here, reach it only this way (and nobody else here may get
         * them twice) */
        if (e->membership || !e->own || strcmp(r->room, e->room) || !strcmp(e->from, r->id))
            return SIG_RESUME_IGNORE;
        return e->broadcast || !strcmp(e->to, r->id) ? SIG_RESUME_PASS_ON : SIG_RESUME_IGNORE;
    case SIG_RESUME_MARKED:
        /* between the request and the answer: what the owner published is
         * in the queue it hands over; the rest is kept for the member */
        if (r->overflow || strcmp(r->room, e->room) || !strcmp(e->node, r->owner) ||
            !strcmp(e->from, r->id) || (!e->broadcast && !e->membership && strcmp(e->to, r->id)))
            return SIG_RESUME_IGNORE;
        return SIG_RESUME_KEEP;
    case SIG_RESUME_ASKED: /* before the request: the owner has them */
    case SIG_RESUME_DONE:
    default:
        return SIG_RESUME_IGNORE;
    }
}

void sig_resume_keep(sig_resume *r, const char *text, size_t max_msgs, size_t max_bytes)
{
    size_t len;
    if (r->state != SIG_RESUME_MARKED || r->overflow)
        return;
    if (!text) {
        r->overflow = true; /* lost one: the member cannot come back complete */
        return;
    }
    len = strlen(text);
    /* bounded like the send queue it ends up in */
    if (r->nbuf + 1 > max_msgs || r->bytes + len > max_bytes) {
        r->overflow = true;
        return;
    }
    if (r->nbuf == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        char **nb = realloc(r->buf, cap * sizeof *nb);
        if (!nb) {
            r->overflow = true;
            return;
        }
        r->buf = nb;
        r->cap = cap;
    }
    if (!(r->buf[r->nbuf] = strdup(text))) {
        r->overflow = true;
        return;
    }
    r->nbuf++;
    r->bytes += len;
}

void sig_resume_passed(sig_resume *r)
{
    if (r->state == SIG_RESUME_TAIL)
        r->ntail++;
}

sig_resume_answer sig_resume_done(sig_resume *r, bool ok, uint64_t drops)
{
    if (r->state != SIG_RESUME_ASKED && r->state != SIG_RESUME_MARKED)
        return SIG_RESUME_STRAY; /* answered already */
    if (!ok) {
        r->state = SIG_RESUME_DONE;
        return SIG_RESUME_FAILED;
    }
    /* no mark: we never saw our request go by, so nothing between it and
     * the answer was kept; an event dropped between the mark and now may
     * have been one of the member's messages: never a silent loss */
    if (r->state != SIG_RESUME_MARKED || drops != r->mark_drops)
        r->overflow = true;
    if (r->overflow) {
        r->state = SIG_RESUME_DONE;
        return SIG_RESUME_INCOMPLETE;
    }
    return SIG_RESUME_ADOPT;
}

void sig_resume_adopted(sig_resume *r, bool ok, uint64_t now_us)
{
    if (r->state != SIG_RESUME_MARKED)
        return;
    drop_buf(r); /* in the member's queue now */
    if (!ok) {
        r->state = SIG_RESUME_DONE;
        return;
    }
    r->state = SIG_RESUME_TAIL;
    r->deadline_us = now_us + SIG_RESUME_TAIL_US;
}

bool sig_resume_fence(sig_resume *r)
{
    if (r->state != SIG_RESUME_TAIL)
        return false;
    r->state = SIG_RESUME_DONE;
    return true;
}

sig_resume_expiry sig_resume_expire(sig_resume *r, uint64_t now_us)
{
    sig_resume_state was = r->state;
    if (was == SIG_RESUME_DONE || now_us < r->deadline_us)
        return SIG_RESUME_NOT_YET;
    r->state = SIG_RESUME_DONE;
    return was == SIG_RESUME_TAIL ? SIG_RESUME_RELEASE : SIG_RESUME_GIVE_UP;
}
