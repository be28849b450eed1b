/* sig_chan.h - reading what other nodes wrote to Redis (cluster mode): the
 * field checks every channel message and room-hash value goes through, so
 * that sig_cluster.c and sig_handover.c check them the same way. Pure
 * functions on jansson values; no I/O, no state. */
#ifndef SIG_CHAN_H
#define SIG_CHAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sig_cluster.h"
#include "sig_proto.h"

#define SIG_CHAN_VALUE_MAX 512 /* a room hash value {"name","node"} */

/* len bytes of s, min..max long, without control characters. */
bool sig_chan_text_ok(const char *s, size_t len, size_t min, size_t max);
/* A string field of a parsed message, length- and character-checked, into
 * out (cap bytes with its NUL). */
bool sig_chan_field(json_t *o, const char *key, size_t min, size_t max, char *out, size_t cap);
/* Compact text of o (consumed; NULL stays NULL). NULL on ENOMEM. */
char *sig_chan_dumps(json_t *o);
/* One entry of a room hash (member id -> {"name","node"}): true, with the
 * id and name copied out, when it is a well-formed member of another node
 * than `self`. */
bool sig_chan_member(const char *self, const char *id, size_t idlen, const char *v, size_t vlen,
                     char out_id[SIG_ID_MAX + 1], char out_name[SIG_NAME_MAX + 1]);
/* A room channel message `o` with event ev (join, left, sig, bc) into e:
 * its kind, the peer or sender (id), name, recipient (to) and data (a
 * reference taken). false when a field is missing or malformed. */
bool sig_chan_room_event(json_t *o, const char *ev, sig_cev *e);

#endif
