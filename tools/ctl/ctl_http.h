/* ctl_http.h - the one HTTP exchange tsunagu-ctl needs: a request with an
 * optional bearer token, the status and body back. libcurl only in
 * ctl_http.c. Bodies are capped (CTL_HTTP_MAX): an admin answer is small,
 * and a wrong URL must not fill memory. */
#ifndef CTL_HTTP_H
#define CTL_HTTP_H

#include <stddef.h>

#define CTL_HTTP_MAX (16u << 20)

typedef struct {
    long status;   /* 0 when no answer came */
    char *body;    /* NUL-terminated, owned */
    size_t len;
    char err[256]; /* why status is 0 */
} ctl_resp;

typedef struct {
    const char *method; /* "GET", "POST", "DELETE" */
    const char *url;
    const char *token;  /* NULL: no Authorization header */
    long timeout_s;
} ctl_req;

void ctl_http_global_init(void);
void ctl_http_global_cleanup(void);
/* 0 with out filled (any HTTP status), or -1 with out->err set. */
int ctl_http_do(const ctl_req *q, ctl_resp *out);
void ctl_resp_dispose(ctl_resp *r);
/* Percent-encode one path segment (a room name may hold '/'); free() it. */
char *ctl_http_escape(const char *s);

#endif
