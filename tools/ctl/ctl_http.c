/* ctl_http.c - libcurl adapter of tsunagu-ctl (see ctl_http.h). */
#include "ctl_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ctl_http_global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
void ctl_http_global_cleanup(void) { curl_global_cleanup(); }

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    ctl_resp *r = ud;
    size_t add = size * n;
    char *b;
    if (add > CTL_HTTP_MAX - r->len)
        return 0; /* too big: curl fails the transfer */
    if (!(b = realloc(r->body, r->len + add + 1)))
        return 0;
    memcpy(b + r->len, p, add);
    r->body = b;
    r->len += add;
    b[r->len] = '\0';
    return add;
}

int ctl_http_do(const ctl_req *q, ctl_resp *out)
{
    CURL *c;
    struct curl_slist *hdrs = NULL;
    char *auth = NULL;
    CURLcode rc;
    int ret = -1;

    memset(out, 0, sizeof *out);
    if (!(c = curl_easy_init())) {
        snprintf(out->err, sizeof out->err, "cannot start libcurl");
        return -1;
    }
    if (q->token) {
        size_t n = strlen(q->token) + 32;
        if (!(auth = malloc(n)))
            goto out_curl;
        snprintf(auth, n, "Authorization: Bearer %s", q->token);
        if (!(hdrs = curl_slist_append(NULL, auth)))
            goto out_auth;
    }
    curl_easy_setopt(c, CURLOPT_URL, q->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
    if (!strcmp(q->method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, q->timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        snprintf(out->err, sizeof out->err, "%s: %s", q->url, curl_easy_strerror(rc));
        goto out_hdrs;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    if (!out->body && !(out->body = calloc(1, 1)))
        goto out_hdrs;
    ret = 0;
out_hdrs:
    curl_slist_free_all(hdrs);
out_auth:
    if (auth) {
        memset(auth, 0, strlen(auth)); /* the token */
        free(auth);
    }
out_curl:
    curl_easy_cleanup(c);
    if (ret) {
        free(out->body);
        out->body = NULL;
        out->len = 0;
        if (!out->err[0])
            snprintf(out->err, sizeof out->err, "out of memory");
    }
    return ret;
}

void ctl_resp_dispose(ctl_resp *r)
{
    free(r->body);
    r->body = NULL;
}

char *ctl_http_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0), *copy;
    if (!e)
        return NULL;
    copy = strdup(e);
    curl_free(e);
    return copy;
}
