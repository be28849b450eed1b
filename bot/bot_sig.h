/* bot_sig.h - one signaling connection (DESIGN.md protocol) from the bot:
 * a libwebsockets client on the GLib main loop. libwebsockets is included
 * only in bot_sig.c; JSON is jansson.
 *
 * bot_sig_ctx is one lws context per process (LWS_SERVER_OPTION_GLIB with
 * foreign_loops[0] = the GMainLoop*); each bot_sig is a connection that
 * joins one room on connect and hands typed events to its owner. Writes go
 * through a bounded queue, one lws_write per WRITEABLE callback. A dropped
 * connection is retried and the member's place resumed with the token from
 * `joined`; messages queued meanwhile go out after the resume.
 * Main thread only. */
#ifndef BOT_SIG_H
#define BOT_SIG_H

#include <stdbool.h>

#include <glib.h>
#include <jansson.h>

typedef struct bot_sig_ctx bot_sig_ctx;
typedef struct bot_sig bot_sig;

typedef struct {
    /* `msg` is the whole joined message, borrowed for the call. */
    void (*joined)(void *ud, const char *my_id, json_t *msg);
    void (*peer_joined)(void *ud, const char *peer_id);
    void (*peer_left)(void *ud, const char *peer_id);
    /* After a dropped connection, our place was taken back with the resume
     * token (DESIGN.md `resume`); `msg` is the resumed message. May be NULL. */
    void (*resumed)(void *ud, const char *my_id, json_t *msg);
    /* `data` borrowed for the call. */
    void (*signal)(void *ud, const char *from, json_t *data);
    void (*error)(void *ud, const char *code, const char *message);
    /* Connection gone for good (failed, closed and not resumable within
     * ~25 s, or resume refused); no callback follows. */
    void (*closed)(void *ud, const char *why);
    void *ud;
} bot_sig_cbs;

bot_sig_ctx *bot_sig_ctx_new(GMainLoop *loop, bool verbose);
void bot_sig_ctx_free(bot_sig_ctx *c);

/* Connect to ws:// or wss:// `url` and join `room`. NULL on a bad URL. */
bot_sig *bot_sig_new(bot_sig_ctx *c, const char *url, const char *room, const char *name,
                     const bot_sig_cbs *cbs);
/* The access token (an HS256 JWT, docs/signaling.md "Access tokens") sent
 * with join; call it right after bot_sig_new: the join goes out once the
 * connection is up, never before the loop runs. */
void bot_sig_set_token(bot_sig *s, const char *token);

/* Closes (a leave is not needed: the server ends the membership with the
 * connection). No callback fires after this. NULL is a no-op. */
void bot_sig_free(bot_sig *s);

/* {"type":"signal","to":to,"data":data}; takes ownership of data.
 * 0, or RTC_ELIMIT when the queue is full. */
int bot_sig_send(bot_sig *s, const char *to, json_t *data);

#endif
