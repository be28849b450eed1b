/* ctl_main.c - tsunagu-ctl: the command line of the admin APIs
 * (docs/ctl.md). Signaling: rooms, members, kick, close (tsunagu-signal's
 * HTTP port, /admin/rooms...). Relay: allocations, release, drain (the
 * relay's metrics listener, /admin/allocations, /admin/drain). A table by
 * default, the server's JSON with -o json. Exit status: 0 done, 1 the
 * server refused or failed (or could not be reached), 2 usage. */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ctl_http.h"

#define SIGNAL_URL "http://127.0.0.1:8080"
#define RELAY_URL "http://127.0.0.1:9641"
#define TOKEN_MAX 4096

typedef struct {
    const char *url, *token_file;
    char *token;
    bool json;
    long timeout_s;
} opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tsunagu-ctl [--url URL] [--token T | --token-file F] [-o table|json]\n"
            "                   [--timeout S] COMMAND [ARGS]\n"
            "signaling (tsunagu-signal's HTTP port, default " SIGNAL_URL "):\n"
            "  rooms                 list rooms: name, members, created\n"
            "  members ROOM          list a room's members\n"
            "  kick ROOM ID          remove a member (it gets a 'kicked' error, then the close)\n"
            "  close ROOM            remove every member of a room on that node\n"
            "  relays                the relay fleet: name, generation, state, rooms\n"
            "  canary G PERCENT      send PERCENT of new rooms to relay generation G\n"
            "                        (0 stops it; 100 promotes it)\n"
            "relay (tsunagu-relay's metrics listener, default " RELAY_URL "):\n"
            "  allocations           list allocations\n"
            "  release ID            delete one allocation\n"
            "  drain                 start a drain\n"
            "The token: --token, --token-file (mode 0600), or $TSUNAGU_ADMIN_TOKEN.\n");
}

/* The token file's first line; refused when others may read it (the token
 * opens the admin API). */
static char *read_token_file(const char *path)
{
    char buf[TOKEN_MAX + 2];
    struct stat st;
    size_t n;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "tsunagu-ctl: --token-file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) || (st.st_mode & 077)) {
        fclose(f);
        fprintf(stderr, "tsunagu-ctl: --token-file %s: readable by group or others (chmod 600)\n",
                path);
        return NULL;
    }
    n = fgets(buf, sizeof buf, f) ? strlen(buf) : 0;
    fclose(f);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (!n || n > TOKEN_MAX) {
        fprintf(stderr, "tsunagu-ctl: --token-file %s: no token on its first line\n", path);
        return NULL;
    }
    return strdup(buf);
}

/* ---- output ---- */

static void fmt_time(double unix_s, char *out, size_t cap)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (unix_s <= 0 || !gmtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, cap, "-");
}

static void fmt_cell(json_t *v, const char *key, char *out, size_t cap)
{
    if (!v || json_is_null(v))
        snprintf(out, cap, "-");
    else if (json_is_string(v))
        snprintf(out, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v) && (strstr(key, "since") || !strcmp(key, "created")))
        fmt_time(json_real_value(v), out, cap);
    else if (json_is_real(v))
        snprintf(out, cap, "%.1f", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(out, cap, "%s", json_is_true(v) ? "yes" : "no");
    else {
        char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(out, cap, "%s", d ? d : "?");
        free(d);
    }
}

#define MAX_COLS 24
#define CELL 96

/* A table of the objects in arr: the columns `want` names first (those
 * present in some row), then, when `rest`, every other scalar key of the
 * first row. Widths fitted to the content. */
static void print_table(json_t *arr, const char *const *want, bool rest)
{
    const char *cols[MAX_COLS];
    size_t ncol = 0, w[MAX_COLS], rows = json_array_size(arr), i, k;
    json_t *row, *first = json_array_get(arr, 0);
    char cell[CELL];
    const char *key;
    json_t *v;

    if (!rows) {
        printf("(none)\n");
        return;
    }
    for (k = 0; want && want[k] && ncol < MAX_COLS; k++)
        json_array_foreach(arr, i, row) if (json_object_get(row, want[k])) {
            cols[ncol++] = want[k];
            break;
        }
    if (rest && json_is_object(first))
        json_object_foreach(first, key, v) {
            bool seen = false;
            for (k = 0; k < ncol; k++)
                seen |= !strcmp(cols[k], key);
            if (!seen && ncol < MAX_COLS && !json_is_object(v) && !json_is_array(v))
                cols[ncol++] = key;
        }
    for (k = 0; k < ncol; k++) {
        w[k] = strlen(cols[k]);
        json_array_foreach(arr, i, row) {
            fmt_cell(json_object_get(row, cols[k]), cols[k], cell, sizeof cell);
            if (strlen(cell) > w[k])
                w[k] = strlen(cell);
        }
    }
    for (k = 0; k < ncol; k++) {
        for (const char *c = cols[k]; *c; c++)
            putchar(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
        printf("%*s", k + 1 < ncol ? (int)(w[k] - strlen(cols[k]) + 2) : 0, "");
    }
    putchar('\n');
    json_array_foreach(arr, i, row) {
        for (k = 0; k < ncol; k++) {
            fmt_cell(json_object_get(row, cols[k]), cols[k], cell, sizeof cell);
            printf("%-*s", k + 1 < ncol ? (int)w[k] + 2 : 0, cell);
        }
        putchar('\n');
    }
}

/* ---- one command ---- */

typedef enum { SIDE_SIGNAL, SIDE_RELAY } side;

typedef struct {
    const char *name;
    int nargs;
    side where;
    const char *method;
    const char *path; /* printf format: %s for each (escaped) argument */
    const char *list; /* the array in the answer to tabulate; NULL: a result line */
    const char *const *cols;
} command;

static const char *const room_cols[] = {"name", "members", "remote", "created", NULL};
static const char *const member_cols[] = {"id", "name", "state", "node", "address",
                                          "connected_since", "messages", NULL};
static const char *const relay_cols[] = {"name", "generation", "state", "rooms",
                                         "allocations", "assignments", NULL};
static const char *const alloc_cols[] = {
    "id",         "user",       "client",     "transport", "relayed",    "age_s",
    "expires_in_s", "pkts_c2p", "pkts_p2c",   "bytes_c2p", "bytes_p2c",  "loss_c2p",
    "jitter_ms_c2p", "loss_p2c", "jitter_ms_p2c", NULL};

/* One allocation as a table row: the relay's nested answer (relayed
 * addresses as an array, quality per direction) made flat. Fields the relay
 * does not send stay out; the JSON output (-o json) is the relay's own. */
static json_t *alloc_row(json_t *a)
{
    static const char *const dir[2] = {"client_to_peer", "peer_to_client"};
    static const char *const sfx[2] = {"c2p", "p2c"};
    json_t *row = json_deep_copy(a), *rel = json_object_get(a, "relayed"), *q;
    char key[64], text[256] = "";
    size_t i;
    json_t *v;
    if (!row)
        return NULL;
    if (json_is_array(rel)) {
        json_array_foreach(rel, i, v) {
            size_t n = strlen(text);
            const char *addr = json_string_value(v);
            snprintf(text + n, sizeof text - n, "%s%s", i ? " " : "", addr ? addr : "?");
        }
        json_object_set_new(row, "relayed", json_string(text));
    }
    for (int d = 0; d < 2; d++) {
        snprintf(key, sizeof key, "packets_%s", dir[d]);
        if ((v = json_object_get(a, key))) {
            snprintf(key, sizeof key, "pkts_%s", sfx[d]);
            json_object_set(row, key, v);
        }
        snprintf(key, sizeof key, "bytes_%s", dir[d]);
        if ((v = json_object_get(a, key))) {
            snprintf(key, sizeof key, "bytes_%s", sfx[d]);
            json_object_set(row, key, v);
        }
        q = json_object_get(json_object_get(a, "quality"), dir[d]);
        if (q && json_is_number(json_object_get(q, "loss")) &&
            json_integer_value(json_object_get(q, "streams")) > 0) {
            snprintf(text, sizeof text, "%.1f%%",
                     100 * json_number_value(json_object_get(q, "loss")));
            snprintf(key, sizeof key, "loss_%s", sfx[d]);
            json_object_set_new(row, key, json_string(text));
        }
        if (q && json_is_number(json_object_get(q, "jitter_ms"))) {
            snprintf(key, sizeof key, "jitter_ms_%s", sfx[d]);
            json_object_set(row, key, json_object_get(q, "jitter_ms"));
        }
    }
    return row;
}

static const command commands[] = {
    {"rooms", 0, SIDE_SIGNAL, "GET", "/admin/rooms", "rooms", room_cols},
    {"members", 1, SIDE_SIGNAL, "GET", "/admin/rooms/%s/members", "members", member_cols},
    {"kick", 2, SIDE_SIGNAL, "DELETE", "/admin/rooms/%s/members/%s", NULL, NULL},
    {"close", 1, SIDE_SIGNAL, "DELETE", "/admin/rooms/%s", NULL, NULL},
    {"allocations", 0, SIDE_RELAY, "GET", "/admin/allocations", "allocations", alloc_cols},
    {"release", 1, SIDE_RELAY, "DELETE", "/admin/allocations/%s", NULL, NULL},
    {"drain", 0, SIDE_RELAY, "POST", "/admin/drain", NULL, NULL},
    /* the relay fleet (docs/fleet.md): the relays signaling places rooms on, and
     * the canary share of a generation (every node, through the registry) */
    {"relays", 0, SIDE_SIGNAL, "GET", "/admin/canary", "relays", relay_cols},
    {"canary", 2, SIDE_SIGNAL, "POST", "/admin/canary/%s/%s", "relays", relay_cols},
};

/* A relay without the admin API (an older version: its plain-text 404, or
 * 405 for DELETE and POST), or with the API off (no --admin-token: a JSON
 * 404 "not found" on every /admin/ path). A 404 about one allocation
 * ("no such allocation") is the API answering. */
static bool no_relay_api(const ctl_resp *r)
{
    json_t *j;
    const char *err;
    bool off;
    if (r->status != 404 && r->status != 405)
        return false;
    if (!(j = json_loadb(r->body ? r->body : "", r->len, 0, NULL)))
        return true;
    err = json_string_value(json_object_get(j, "error"));
    off = !json_is_object(j) || !err || !strcmp(err, "not found");
    json_decref(j);
    return off;
}

/* What a refusal means, for a person. */
static void explain(const command *c, const opts *o, const char *url, const ctl_resp *r)
{
    const char *body = r->body ? r->body : "";
    size_t n = strlen(body);
    while (n && body[n - 1] == '\n')
        n--;
    if (r->status == 401)
        fprintf(stderr, "tsunagu-ctl: %s refused the token (401)%s\n", url,
                o->token ? "" : ": none given (--token, --token-file or $TSUNAGU_ADMIN_TOKEN)");
    else if (c->where == SIDE_RELAY && no_relay_api(r))
        fprintf(stderr,
                "tsunagu-ctl: %s: %ld: this relay has no admin API (a version without it, or "
                "no --admin-token set; the API lives on the relay's metrics listener)\n",
                url, r->status);
    else if (r->status == 404 && !strcmp(body, "not found\n"))
        fprintf(stderr, "tsunagu-ctl: %s: 404: the admin API is off (start tsunagu-signal with "
                        "--admin-token or --admin-token-file) or this is not tsunagu-signal\n",
                url);
    else
        fprintf(stderr, "tsunagu-ctl: %s: %ld: %.*s\n", url, r->status, (int)n, body);
}

static int run(const command *c, const opts *o, char **args)
{
    char *esc[2] = {NULL, NULL}, *url = NULL, path[1024];
    const char *base = o->url ? o->url : c->where == SIDE_RELAY ? RELAY_URL : SIGNAL_URL;
    size_t blen = strlen(base), ulen;
    ctl_resp r;
    json_t *j = NULL, *list;
    json_error_t jerr;
    int rc = 1;

    for (int i = 0; i < c->nargs; i++)
        if (!(esc[i] = ctl_http_escape(args[i])))
            goto out;
    while (blen && base[blen - 1] == '/')
        blen--;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(path, sizeof path, c->path, esc[0] ? esc[0] : "", esc[1] ? esc[1] : "");
#pragma GCC diagnostic pop
    ulen = blen + strlen(path) + 1;
    if (!(url = malloc(ulen)))
        goto out;
    snprintf(url, ulen, "%.*s%s", (int)blen, base, path);
    if (ctl_http_do(&(ctl_req){c->method, url, o->token, o->timeout_s}, &r)) {
        fprintf(stderr, "tsunagu-ctl: %s\n", r.err);
        goto out;
    }
    if (r.status < 200 || r.status > 299) {
        explain(c, o, url, &r);
        goto out_resp;
    }
    if (o->json) {
        fwrite(r.body, 1, r.len, stdout);
        if (r.len && r.body[r.len - 1] != '\n')
            putchar('\n');
        rc = 0;
        goto out_resp;
    }
    if (!(j = json_loadb(r.body, r.len, 0, &jerr))) {
        fprintf(stderr, "tsunagu-ctl: %s: the answer is not JSON (%s)\n", url, jerr.text);
        goto out_resp;
    }
    list = json_is_array(j) ? j : c->list ? json_object_get(j, c->list) : NULL;
    if (list && json_is_array(list) && c->cols == alloc_cols) {
        json_t *rows = json_array(), *a;
        size_t k;
        json_array_foreach(list, k, a) json_array_append_new(rows, alloc_row(a));
        print_table(rows, c->cols, false);
        json_decref(rows);
    } else if (list && json_is_array(list)) {
        print_table(list, c->cols, false);
    } else if (!strcmp(c->name, "kick")) {
        printf("kicked %s from room %s\n", args[1], args[0]);
    } else if (!strcmp(c->name, "release")) {
        printf("released allocation %s\n", args[0]);
    } else if (!strcmp(c->name, "drain")) {
        printf("the relay is draining (new allocations refused; it exits when the last one "
               "ends or at its drain-seconds)\n");
    } else if (!strcmp(c->name, "close")) {
        printf("closed room %s: %lld members removed\n", args[0],
               (long long)json_integer_value(json_object_get(j, "count")));
    } else {
        char *d = json_dumps(j, JSON_COMPACT);
        printf("%s: done %s\n", c->name, d ? d : "");
        free(d);
    }
    rc = 0;
    json_decref(j);
out_resp:
    ctl_resp_dispose(&r);
out:
    free(url);
    free(esc[0]);
    free(esc[1]);
    return rc;
}

int main(int argc, char **argv)
{
    opts o = {.timeout_s = 10};
    const command *c = NULL;
    const char *env;
    int i, rc;

    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v)
            goto bad;
        if (!strcmp(a, "--url"))
            o.url = v;
        else if (!strcmp(a, "--token"))
            o.token = strdup(v);
        else if (!strcmp(a, "--token-file"))
            o.token_file = v;
        else if (!strcmp(a, "--timeout"))
            o.timeout_s = atol(v) > 0 ? atol(v) : 10;
        else if (!strcmp(a, "-o") && (!strcmp(v, "json") || !strcmp(v, "table")))
            o.json = !strcmp(v, "json");
        else
            goto bad;
        i++;
    }
    if (i >= argc)
        goto bad;
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (!strcmp(argv[i], commands[k].name))
            c = &commands[k];
    if (!c || argc - i - 1 != c->nargs)
        goto bad;
    if (o.token && o.token_file) {
        fprintf(stderr, "tsunagu-ctl: --token and --token-file: give one\n");
        free(o.token);
        return 2;
    }
    if (o.token_file && !(o.token = read_token_file(o.token_file)))
        return 2;
    if (!o.token && (env = getenv("TSUNAGU_ADMIN_TOKEN")) && *env)
        o.token = strdup(env);
    ctl_http_global_init();
    rc = run(c, &o, argv + i + 1);
    ctl_http_global_cleanup();
    if (o.token)
        memset(o.token, 0, strlen(o.token));
    free(o.token);
    return rc;
bad:
    usage(stderr);
    free(o.token);
    return 2;
}
