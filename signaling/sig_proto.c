/* sig_proto.c - parse/validate client messages and build server messages
 * (see sig_proto.h and docs/protocol.md). */
#include "sig_proto.h"

#include <stdbool.h>
#include <string.h>

static const char *const code_names[SIG_E__COUNT] = {
    [SIG_OK] = "ok",
    [SIG_E_BAD_REQUEST] = "bad-request",
    [SIG_E_UNAUTHORIZED] = "unauthorized",
    [SIG_E_ROOM_FULL] = "room-full",
    [SIG_E_UNKNOWN_PEER] = "unknown-peer",
    [SIG_E_NOT_JOINED] = "not-joined",
    [SIG_E_TOO_LARGE] = "too-large",
    [SIG_E_RATE_LIMITED] = "rate-limited",
    [SIG_E_SERVER_BUSY] = "server-busy",
    [SIG_E_KICKED] = "kicked",
};

static const char *const type_names[SIG_MSG__COUNT] = {
    [SIG_MSG_JOIN] = "join",         [SIG_MSG_SIGNAL] = "signal", [SIG_MSG_BROADCAST] = "broadcast",
    [SIG_MSG_LEAVE] = "leave",       [SIG_MSG_PING] = "ping",     [SIG_MSG_RESUME] = "resume",
};

const char *sig_code_name(sig_code c)
{
    return (unsigned)c < SIG_E__COUNT ? code_names[c] : "internal";
}

const char *sig_msg_type_name(sig_msg_type t)
{
    return (unsigned)t < SIG_MSG__COUNT ? type_names[t] : "unknown";
}

/* Text fields a human or a program chose: a byte length range and no control
 * characters (they end up in logs and in other members' UIs). jansson has
 * already checked UTF-8 and rejected \u0000. */
static bool text_ok(const char *s, size_t len, size_t min, size_t max)
{
    if (len < min || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* Fetch optional (required=false) or required string field `key`. Returns
 * false when present with a wrong type or shape. */
static bool get_text(json_t *root, const char *key, bool required, size_t min, size_t max,
                     const char **out)
{
    json_t *v = json_object_get(root, key);
    *out = NULL;
    if (!v)
        return !required;
    if (!json_is_string(v) || !text_ok(json_string_value(v), json_string_length(v), min, max))
        return false;
    *out = json_string_value(v);
    return true;
}

/* A string field over max bytes: said so, rather than blamed on its shape. */
static bool too_long(json_t *root, const char *key, size_t max)
{
    json_t *v = json_object_get(root, key);
    return json_is_string(v) && json_string_length(v) > max;
}

#define TOKEN_TOO_LONG "\"token\" is too long (at most 4096 bytes)"
_Static_assert(SIG_TOKEN_MAX == 4096, "TOKEN_TOO_LONG names the limit");

/* Optional boolean field (absent: false). */
static bool get_flag(json_t *root, const char *key, bool *out)
{
    json_t *v = json_object_get(root, key);
    if (v && !json_is_boolean(v))
        return false;
    *out = v && json_is_true(v);
    return true;
}

/* resume's optional "last": a sequence number, exact in a JavaScript number */
static bool get_last(json_t *root, bool *has, uint64_t *out)
{
    json_t *v = json_object_get(root, "last");
    *has = v != NULL;
    *out = 0;
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > (json_int_t)1 << 53)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

sig_code sig_proto_parse(const char *buf, size_t len, sig_msg *out, const char **why)
{
    json_error_t jerr;
    json_t *root, *type;
    const char *t;
    int i;

    memset(out, 0, sizeof *out);
    /* Duplicate keys are rejected: which one wins would be a parser detail
     * that two implementations could disagree on. */
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        *why = "malformed JSON";
        return SIG_E_BAD_REQUEST;
    }
    if (!json_is_object(root)) {
        *why = "a message is a JSON object";
        goto bad;
    }
    type = json_object_get(root, "type");
    if (!json_is_string(type)) {
        *why = "missing or non-string \"type\"";
        goto bad;
    }
    t = json_string_value(type);
    for (i = 0; i < SIG_MSG__COUNT; i++)
        if (!strcmp(t, type_names[i]))
            break;
    if (i == SIG_MSG__COUNT) {
        *why = "unknown \"type\"";
        goto bad;
    }
    out->type = (sig_msg_type)i;
    out->root = root;

    switch (out->type) {
    case SIG_MSG_JOIN:
        if (!get_text(root, "room", true, 1, SIG_ROOM_MAX, &out->room)) {
            *why = "join needs \"room\": a string of 1-128 bytes without control characters";
            goto bad;
        }
        if (!get_text(root, "name", false, 0, SIG_NAME_MAX, &out->name)) {
            *why = "\"name\" must be a string of at most 64 bytes without control characters";
            goto bad;
        }
        if (!get_text(root, "token", false, 1, SIG_TOKEN_MAX, &out->token)) {
            *why = too_long(root, "token", SIG_TOKEN_MAX) ? TOKEN_TOO_LONG
                                                          : "\"token\" must be a non-empty string";
            goto bad;
        }
        if (!get_flag(root, "seq", &out->seq)) {
            *why = "\"seq\" must be true or false";
            goto bad;
        }
        break;
    case SIG_MSG_SIGNAL:
        if (!get_text(root, "to", true, 1, SIG_ID_MAX, &out->to)) {
            *why = "signal needs \"to\": a peer id string";
            goto bad;
        }
        /* signal also carries data */
        __attribute__((fallthrough));
    case SIG_MSG_BROADCAST:
        out->data = json_object_get(root, "data");
        if (!out->data) {
            *why = "missing \"data\"";
            goto bad;
        }
        break;
    case SIG_MSG_RESUME:
        if (!get_text(root, "token", true, 1, SIG_TOKEN_MAX, &out->token)) {
            *why = too_long(root, "token", SIG_TOKEN_MAX)
                       ? TOKEN_TOO_LONG
                       : "resume needs \"token\": the resume token from joined";
            goto bad;
        }
        if (!get_last(root, &out->has_last, &out->last)) {
            *why = "\"last\" must be an integer from 0 to 2^53";
            goto bad;
        }
        break;
    case SIG_MSG_LEAVE:
    case SIG_MSG_PING:
        break;
    default:
        *why = "unknown \"type\"";
        goto bad;
    }
    return SIG_OK;
bad:
    json_decref(root);
    memset(out, 0, sizeof *out);
    return SIG_E_BAD_REQUEST;
}

void sig_msg_dispose(sig_msg *m)
{
    json_decref(m->root);
    memset(m, 0, sizeof *m);
}

/* Serialize and release an object we built. */
static char *dump(json_t *o)
{
    char *s;
    if (!o)
        return NULL;
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

char *sig_proto_error(sig_code c, const char *message)
{
    return dump(json_pack("{s:s,s:s,s:s}", "type", "error", "code", sig_code_name(c), "message",
                          message ? message : ""));
}

char *sig_proto_drain(const char *message, const char *advice)
{
    return dump(json_pack("{s:s,s:s,s:s,s:s}", "type", "error", "code",
                          sig_code_name(SIG_E_SERVER_BUSY), "message", message, "drain", advice));
}

char *sig_proto_pong(void) { return dump(json_pack("{s:s}", "type", "pong")); }

char *sig_proto_joined(const char *room, const char *id, json_t *peers, json_t *ice_servers,
                       const char *resume)
{
    return dump(json_pack("{s:s,s:s,s:s,s:O,s:O,s:s}", "type", "joined", "room", room, "id", id,
                          "peers", peers, "iceServers", ice_servers, "resume", resume));
}

char *sig_proto_resumed(const char *id, json_t *peers)
{
    return dump(json_pack("{s:s,s:s,s:O}", "type", "resumed", "id", id, "peers", peers));
}

char *sig_proto_peer_joined(const char *id, const char *name)
{
    return dump(json_pack("{s:s,s:{s:s,s:s}}", "type", "peer-joined", "peer", "id", id, "name",
                          name ? name : ""));
}

char *sig_proto_peer_left(const char *id)
{
    return dump(json_pack("{s:s,s:s}", "type", "peer-left", "id", id));
}

char *sig_proto_forward(const char *type, const char *from, json_t *data)
{
    return dump(json_pack("{s:s,s:s,s:O}", "type", type, "from", from, "data", data));
}
