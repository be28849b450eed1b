/* sig_xresume.h - resume across nodes on the lws thread (cluster mode): the
 * asking side (a client resumes here with a token another node holds: ask,
 * keep what comes meanwhile, adopt, pass the tail on) and the owning side
 * (another node asks for one of our members: hand it over). The ordering
 * argument is "Hand-over" in sig_handover.c; each hand-over asked for is a
 * sig_resume state machine, and this module does what it answers, on the
 * hub and through sig_handover. Owned by sig_session.c; one thread. */
#ifndef SIG_XRESUME_H
#define SIG_XRESUME_H

#include <stdbool.h>
#include <stdint.h>

#include "sig_cluster.h"
#include "sig_handover.h"
#include "sig_room.h"

typedef struct sig_client sig_client;
typedef struct sig_xresume sig_xresume;

typedef struct {
    sig_hub *hub;
    sig_cluster *cluster;
    sig_handover *handover;
    /* tell a waiting client the resume failed (an error message) */
    void (*tell)(sig_client *c, sig_code code, const char *message);
} sig_xresume_params;

sig_xresume *sig_xresume_new(const sig_xresume_params *p); /* NULL on ENOMEM */
void sig_xresume_free(sig_xresume *x); /* NULL is a no-op */

/* Client c resumes with a token not held here: ask its node (serial: the
 * session's). 0, or an error code with *why for the client. */
sig_code sig_xresume_ask(sig_xresume *x, sig_client *c, uint64_t serial, const char *token,
                         uint64_t now_us, const char **why);
/* The client of a hand-over closed: the hand-over goes on (the member is
 * kept for resume here). */
void sig_xresume_client_gone(sig_xresume *x, sig_client *c);
/* A room event from the cluster (PEER_*, SIGNAL, BROADCAST), before it is
 * applied: kept or passed on for the hand-overs it belongs to. Bounds: the
 * send-queue limits now. */
void sig_xresume_capture(sig_xresume *x, const sig_cev *e, uint64_t now_us, size_t max_msgs,
                         size_t max_bytes);
/* SIG_CEV_HO_REQUEST / _MARK / _DONE / _FENCE. resume_s: --resume-seconds. */
void sig_xresume_request(sig_xresume *x, const sig_cev *e, uint64_t now_us);
void sig_xresume_mark(sig_xresume *x, const sig_cev *e);
void sig_xresume_done(sig_xresume *x, const sig_cev *e, uint64_t now_us, uint32_t resume_s);
void sig_xresume_fence(sig_xresume *x, const sig_cev *e);
/* Hand-overs whose answer or fence never came (a lost event). */
void sig_xresume_expire(sig_xresume *x, uint64_t now_us);
bool sig_xresume_open(const sig_xresume *x); /* any hand-over in flight */
void sig_xresume_counts(const sig_xresume *x, uint64_t *ok, uint64_t *failed);

#endif
