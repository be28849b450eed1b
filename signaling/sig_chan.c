/* sig_chan.c - field checks for what other nodes wrote to Redis (see
 * sig_chan.h). Everything read here came from a shared store that any
 * Redis client can write: lengths and characters are checked before a byte
 * is copied. */
#include "sig_chan.h"

#include <stdlib.h>
#include <string.h>

#define NODE_LEN 16

bool sig_chan_text_ok(const char *s, size_t len, size_t min, size_t max)
{
    if (len < min || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

bool sig_chan_field(json_t *o, const char *key, size_t min, size_t max, char *out, size_t cap)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v) || !sig_chan_text_ok(json_string_value(v), json_string_length(v), min, max) ||
        json_string_length(v) >= cap)
        return false;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return true;
}

char *sig_chan_dumps(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

bool sig_chan_member(const char *self, const char *id, size_t idlen, const char *v, size_t vlen,
                     char out_id[SIG_ID_MAX + 1], char out_name[SIG_NAME_MAX + 1])
{
    char node[NODE_LEN + 1];
    json_t *o;
    bool good;
    if (vlen > SIG_CHAN_VALUE_MAX || !sig_chan_text_ok(id, idlen, 1, SIG_ID_MAX))
        return false;
    if (!(o = json_loadb(v, vlen, JSON_REJECT_DUPLICATES, NULL)))
        return false;
    good = sig_chan_field(o, "node", 1, NODE_LEN, node, sizeof node) && strcmp(node, self) &&
           sig_chan_field(o, "name", 0, SIG_NAME_MAX, out_name, SIG_NAME_MAX + 1);
    json_decref(o);
    if (good) {
        memcpy(out_id, id, idlen);
        out_id[idlen] = '\0';
    }
    return good;
}

bool sig_chan_room_event(json_t *o, const char *ev, sig_cev *e)
{
    if (!strcmp(ev, "join") && sig_chan_field(o, "id", 1, SIG_ID_MAX, e->id, sizeof e->id) &&
        (sig_chan_field(o, "name", 0, SIG_NAME_MAX, e->name, sizeof e->name) ||
         !json_object_get(o, "name"))) {
        e->kind = SIG_CEV_PEER_JOINED;
    } else if (!strcmp(ev, "left") && sig_chan_field(o, "id", 1, SIG_ID_MAX, e->id, sizeof e->id)) {
        e->kind = SIG_CEV_PEER_LEFT;
    } else if (!strcmp(ev, "sig") && sig_chan_field(o, "from", 1, SIG_ID_MAX, e->id, sizeof e->id) &&
               sig_chan_field(o, "to", 1, SIG_ID_MAX, e->to, sizeof e->to) &&
               (e->data = json_object_get(o, "data"))) {
        e->kind = SIG_CEV_SIGNAL;
        json_incref(e->data);
    } else if (!strcmp(ev, "bc") && sig_chan_field(o, "from", 1, SIG_ID_MAX, e->id, sizeof e->id) &&
               (e->data = json_object_get(o, "data"))) {
        e->kind = SIG_CEV_BROADCAST;
        json_incref(e->data);
    } else {
        return false;
    }
    if ((e->kind == SIG_CEV_SIGNAL || e->kind == SIG_CEV_BROADCAST) &&
        !sig_chan_field(o, "x", 1, sizeof e->x - 1, e->x, sizeof e->x))
        e->x[0] = '\0'; /* (the member streams keep it: sig_mq.h) */
    return true;
}

/* (here rather than in sig_cluster.c: events are built from channel messages
 * here, and freed by whoever took them) */
void sig_cev_free(sig_cev *e)
{
    if (!e)
        return;
    json_decref(e->data);
    free(e->members);
    for (size_t i = 0; i < e->ntexts; i++)
        free(e->texts[i]);
    free(e->texts);
    free(e);
}
