/* fuzz_sig_fleet.c - libFuzzer target for the relay fleet's inputs
 * (signaling/sig_fleet_parse.c): registry entries as Redis hands them over
 * (written by relays, but bytes all the same), and --relay / --canary
 * values; the reports parsed are then fed to a fleet (sig_fleet.c) that
 * places rooms and judges. Invariants: an accepted entry has a name, a
 * generation and 1..SIG_FLEET_MAX_URLS turn:/turns:/stun: URLs, all
 * NUL-terminated within their arrays; a placed room's relay is one of the
 * fleet's, up; the same room placed twice gets the same relay. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sig_fleet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_report(const sig_fleet_report *r)
{
    if (!memchr(r->name, 0, sizeof r->name) || !r->name[0] ||
        !memchr(r->generation, 0, sizeof r->generation) || !r->generation[0] || !r->nurls ||
        r->nurls > SIG_FLEET_MAX_URLS)
        abort();
    for (size_t i = 0; i < r->nurls; i++)
        if (!memchr(r->urls[i], 0, SIG_FLEET_URL_MAX) ||
            (strncmp(r->urls[i], "turn:", 5) && strncmp(r->urls[i], "turns:", 6) &&
             strncmp(r->urls[i], "stun:", 5)))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const sig_fleet_params fp = {.max_load = 50, .max_loss_delta = 0.03,
                                        .max_jitter_delta = 0.02, .min_sample = 1,
                                        .window_s = 5, .hold_s = 0};
    sig_fleet_report v[4];
    char *z, hz[SIG_FLEET_HEALTHZ_MAX], err[256], gen[SIG_FLEET_NAME_MAX], why[400];
    size_t n = 0;
    unsigned pct;
    sig_fleet *f;

    if (size > 65536)
        return 0;
    /* the whole input, and each '\n'-separated piece, as a registry entry */
    if (!sig_fleet_parse_beat((const char *)data, size, &v[0]))
        check_report(&v[n++]);
    if (!(z = malloc(size + 1)))
        return 0;
    memcpy(z, data, size);
    z[size] = '\0';
    for (char *line = z, *next; line && n < 4; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (!sig_fleet_parse_beat(line, strlen(line), &v[n]))
            check_report(&v[n++]);
        else if (n < 4 && !sig_fleet_parse_static(line, &v[n], hz, err, sizeof err)) {
            check_report(&v[n]);
            if (!memchr(hz, 0, sizeof hz))
                abort();
            n++;
        } else if (!sig_fleet_parse_canary(line, gen, sizeof gen, &pct, err, sizeof err) &&
                   (pct > 100 || !gen[0]))
            abort();
    }
    if ((f = sig_fleet_new(&fp))) {
        const sig_fleet_relay *a, *b;
        sig_fleet_set_canary(f, v[0].generation[0] && n ? v[0].generation : "g", 30);
        for (uint64_t t = 0; t < 4; t++) {
            sig_fleet_update(f, v, n, t * 1000000u);
            a = sig_fleet_place(f, z);
            b = sig_fleet_place(f, z);
            if (a != b || (a && a->state != SIG_FLEET_UP && a->state != SIG_FLEET_DRAINING &&
                           a->state != SIG_FLEET_FULL && a->state != SIG_FLEET_STALE))
                abort();
            while (sig_fleet_next_orphan(f))
                ;
            sig_fleet_judge(f, t * 1000000u, gen, sizeof gen, why, sizeof why);
        }
        sig_fleet_free(f);
    }
    free(z);
    return 0;
}
