/* sig_proto.h - the signaling wire protocol (DESIGN.md "Protocol"): one JSON
 * object per WebSocket text frame, parsed and validated once into a typed
 * sig_msg, and the builders for what the server sends back.
 *
 * Validation rules (docs/protocol.md): the frame must be one JSON object whose
 * "type" is a known client type; each field of that type must have the right
 * JSON type and length. Unknown fields are IGNORED (forward compatibility: a
 * newer client may add fields an older server does not know), but they still
 * count against the frame size limit, which the caller enforces before any
 * parsing. Pure: no I/O, no clock, no globals; safe to fuzz. */
#ifndef SIG_PROTO_H
#define SIG_PROTO_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include <stddef.h>

#define SIG_ROOM_MAX 128   /* bytes of a room name */
#define SIG_NAME_MAX 64    /* bytes of a display name */
#define SIG_TOKEN_MAX 4096 /* bytes of an access or resume token */
#define SIG_ID_MAX 64      /* bytes of a peer id in "to" */
#define SIG_ID_LEN 16      /* peer ids we hand out: 16 lowercase hex characters */

typedef enum {
    SIG_MSG_JOIN = 0,
    SIG_MSG_SIGNAL,
    SIG_MSG_BROADCAST,
    SIG_MSG_LEAVE,
    SIG_MSG_PING,
    SIG_MSG_RESUME,
    SIG_MSG__COUNT
} sig_msg_type;

/* Protocol error codes (data, not C errors): the "code" of an error message. */
typedef enum {
    SIG_OK = 0,
    SIG_E_BAD_REQUEST,
    SIG_E_UNAUTHORIZED,
    SIG_E_ROOM_FULL,
    SIG_E_UNKNOWN_PEER,
    SIG_E_NOT_JOINED,
    SIG_E_TOO_LARGE,
    SIG_E_RATE_LIMITED,
    SIG_E_SERVER_BUSY,
    SIG_E_KICKED, /* removed by an operator (admin API): the connection closes next */
    SIG_E__COUNT
} sig_code;

/* One validated client message. Strings and data are borrowed from `root`,
 * which the message owns: valid until sig_msg_dispose. Absent optional
 * strings are NULL. */
typedef struct {
    sig_msg_type type;
    const char *room, *name, *token, *to;
    json_t *data; /* signal/broadcast payload: any JSON value (borrowed) */
    bool seq;      /* join: "seq": true, number room traffic (protocol.md) */
    bool has_last; /* resume: "last" given ... */
    uint64_t last; /* ... the highest "seq" the client processed */
    json_t *root; /* owned */
} sig_msg;

/* Parse one text frame. Returns SIG_OK and fills *out, or SIG_E_BAD_REQUEST
 * with a short reason in why (static string) and *out left empty. */
sig_code sig_proto_parse(const char *buf, size_t len, sig_msg *out, const char **why);
void sig_msg_dispose(sig_msg *m);

const char *sig_code_name(sig_code c);      /* "bad-request", ... */
const char *sig_msg_type_name(sig_msg_type t); /* "join", ... */

/* Builders: each returns a malloc'd compact JSON text (caller frees), or
 * NULL on ENOMEM. `peers` is a JSON array of {"id","name"} (borrowed). */
char *sig_proto_error(sig_code c, const char *message);
/* The drain notice: a server-busy error with "drain": `advice` ("resume": open
 * a new connection and resume now, another node takes the member over;
 * "reconnect": this node goes away, reconnect after the close). */
char *sig_proto_drain(const char *message, const char *advice);
char *sig_proto_pong(void);
char *sig_proto_joined(const char *room, const char *id, json_t *peers, json_t *ice_servers,
                       const char *resume);
char *sig_proto_resumed(const char *id, json_t *peers);
char *sig_proto_peer_joined(const char *id, const char *name);
char *sig_proto_peer_left(const char *id);
/* type is "signal" or "broadcast"; data borrowed. */
char *sig_proto_forward(const char *type, const char *from, json_t *data);

#endif
