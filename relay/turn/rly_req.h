/* rly_req.h - what request handlers share (internal to relay/turn/).
 *
 * The dispatcher (rly_dispatch.c) parses, authenticates and finds the
 * allocation once, then calls one handler per method from its table. A
 * handler writes success attributes into r->b and returns rly_result; a
 * nonzero code makes the dispatcher build the error response instead
 * (protocol errors are data, STYLE.md s.3). */
#ifndef RLY_REQ_H
#define RLY_REQ_H

#include "rly_turn.h"
#include "stn_msg.h"

typedef struct {
    int code;           /* 0 = success */
    const char *reason; /* static text */
} rly_result;

#define RLY_OK ((rly_result){0, NULL})
#define RLY_ERR(c, why) ((rly_result){(c), (why)})

typedef struct {
    rly_turn *t;
    const rly_input *in;
    const stn_msg *m;
    rly_alloc *a;       /* allocation on this 5-tuple, NULL if none */
    const uint8_t *user; /* authenticated USERNAME (view into the request) */
    size_t ulen;
    uint8_t key[RLY_KEY_MAX]; /* long-term key of the PASSWORD-ALGORITHM used */
    size_t keylen;
    bool authed;
    bool rest;   /* authenticated with TURN REST credentials */
    bool sha256; /* the client chose a PASSWORD-ALGORITHM (RFC 8489 s.9.2.4):
                  * responses carry MESSAGE-INTEGRITY-SHA256, not MI */
    stn_builder b; /* success response, header written */
} rly_req;

rly_result rly_h_binding(rly_req *r);
rly_result rly_h_allocate(rly_req *r);
rly_result rly_h_refresh(rly_req *r);
rly_result rly_h_create_permission(rly_req *r);
rly_result rly_h_channel_bind(rly_req *r);
void rly_h_send(rly_turn *t, const rly_input *in, const stn_msg *m);
void rly_chandata_from_client(rly_turn *t, const rly_input *in);

#endif
