/* sig_fleet_parse.c - the fleet's settings values (--relay, --canary) and the
 * registry entries relays write (see sig_fleet.h). Pure; shared by the
 * settings check, the registry thread and the fuzz target. */
#include "sig_fleet.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtc_err.h"

/* ---- parsing ---- */

static bool field_ok(const char *s, size_t n, size_t cap)
{
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == '"' || s[i] == '\\' || s[i] == 0x7f)
            return false;
    return true;
}

int sig_fleet_parse_static(const char *v, sig_fleet_report *out,
                           char healthz[SIG_FLEET_HEALTHZ_MAX], char *err, size_t errlen)
{
    const char *eq = strchr(v, '='), *p, *end;
    memset(out, 0, sizeof *out);
    healthz[0] = '\0';
    out->weight = 1;
    out->alive = true;
    snprintf(out->generation, sizeof out->generation, "default");
    if (!eq || !field_ok(v, (size_t)(eq - v), sizeof out->name)) {
        snprintf(err, errlen, "expected NAME=URL[,URL...][,generation=G][,weight=W]"
                              "[,healthz=http://IP:PORT/healthz]");
        return RTC_EMSG;
    }
    memcpy(out->name, v, (size_t)(eq - v));
    for (p = eq + 1; *p; p = *end ? end + 1 : end) {
        size_t n;
        end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        n = (size_t)(end - p);
        if (n > 11 && !strncmp(p, "generation=", 11)) {
            if (!field_ok(p + 11, n - 11, sizeof out->generation))
                goto bad_item;
            memcpy(out->generation, p + 11, n - 11);
            out->generation[n - 11] = '\0';
        } else if (n > 7 && !strncmp(p, "weight=", 7)) {
            char num[32], *e;
            if (n - 7 >= sizeof num)
                goto bad_item;
            memcpy(num, p + 7, n - 7);
            num[n - 7] = '\0';
            out->weight = strtod(num, &e);
            if (*e || !(out->weight > 0 && out->weight <= 1e6))
                goto bad_item;
        } else if (n > 8 && !strncmp(p, "healthz=", 8)) {
            /* (its form is checked by the settings: sig_conf.c) */
            if (!field_ok(p + 8, n - 8, SIG_FLEET_HEALTHZ_MAX))
                goto bad_item;
            memcpy(healthz, p + 8, n - 8);
            healthz[n - 8] = '\0';
        } else if ((!strncmp(p, "turn:", 5) || !strncmp(p, "turns:", 6) ||
                    !strncmp(p, "stun:", 5)) &&
                   field_ok(p, n, SIG_FLEET_URL_MAX) && out->nurls < SIG_FLEET_MAX_URLS) {
            memcpy(out->urls[out->nurls], p, n);
            out->urls[out->nurls++][n] = '\0';
        } else {
            goto bad_item;
        }
    }
    if (!out->nurls) {
        snprintf(err, errlen, "relay '%s': no turn:/turns:/stun: URL", out->name);
        return RTC_EMSG;
    }
    return 0;
bad_item:
    snprintf(err, errlen, "relay '%s': bad item at '%.40s' (a turn:/turns:/stun: URL, up to %d, "
                          "or generation=G, weight=W, healthz=URL)",
             out->name, p, SIG_FLEET_MAX_URLS);
    return RTC_EMSG;
}

int sig_fleet_parse_canary(const char *v, char *gen, size_t genlen, unsigned *percent,
                           char *err, size_t errlen)
{
    const char *eq = strchr(v, '=');
    char *e;
    long pct;
    if (!eq || !field_ok(v, (size_t)(eq - v), genlen) || !eq[1])
        goto bad;
    pct = strtol(eq + 1, &e, 10);
    if (*e || pct < 0 || pct > 100)
        goto bad;
    memcpy(gen, v, (size_t)(eq - v));
    gen[eq - v] = '\0';
    *percent = (unsigned)pct;
    return 0;
bad:
    snprintf(err, errlen, "expected GENERATION=PERCENT (0-100)");
    return RTC_EMSG;
}

/* A figure of the entry: a number in [0, 1e15], else 0 (a cast of a
 * negative or huge double to an integer is undefined). */
static double num(json_t *o, const char *k)
{
    json_t *x = json_object_get(o, k);
    double v = json_is_number(x) ? json_number_value(x) : 0;
    return v >= 0 && v <= 1e15 ? v : 0;
}

int sig_fleet_parse_beat(const char *json, size_t len, sig_fleet_report *out)
{
    json_t *o = json_loadb(json, len, 0, NULL), *urls, *u;
    const char *name, *g;
    size_t i;
    memset(out, 0, sizeof *out);
    if (!o || !json_is_object(o))
        goto bad;
    name = json_string_value(json_object_get(o, "name"));
    g = json_string_value(json_object_get(o, "generation"));
    urls = json_object_get(o, "urls");
    if (!name || !g || !json_is_array(urls) || !field_ok(name, strlen(name), sizeof out->name) ||
        !field_ok(g, strlen(g), sizeof out->generation))
        goto bad;
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->generation, sizeof out->generation, "%s", g);
    json_array_foreach(urls, i, u) {
        const char *s = json_string_value(u);
        if (!s || out->nurls == SIG_FLEET_MAX_URLS || !field_ok(s, strlen(s), SIG_FLEET_URL_MAX) ||
            (strncmp(s, "turn:", 5) && strncmp(s, "turns:", 6) && strncmp(s, "stun:", 5)))
            continue;
        snprintf(out->urls[out->nurls++], SIG_FLEET_URL_MAX, "%s", s);
    }
    out->weight = num(o, "weight") > 0 ? num(o, "weight") : 1;
    out->alive = true;
    out->draining = json_is_true(json_object_get(o, "draining"));
    out->allocations = (uint64_t)num(o, "allocations");
    out->beat = (uint64_t)num(o, "beat");
    out->cpu = num(o, "cpu");
    out->loss_sum = num(o, "loss_sum");
    out->loss_count = (uint64_t)num(o, "loss_count");
    out->jitter_sum = num(o, "jitter_sum");
    out->jitter_count = (uint64_t)num(o, "jitter_count");
    json_decref(o);
    return out->nurls ? 0 : RTC_EMSG;
bad:
    json_decref(o);
    return RTC_EMSG;
}
