/* test_sig_conf.c - conf/signaling.conf.sample names every key of the
 * settings table and loads to exactly the built-in defaults; DESIGN.md's
 * flags are all in the table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sig_conf.h"
#include "tap.h"

int main(int argc, char **argv)
{
    sig_conf from_file, defaults;
    char err[512], *text;
    FILE *f;
    long n;
    static const char *const design[] = {"listen", "cert", "key", "token-secret", "turn-url",
                                         "turn-secret", "turn-ttl", "max-room-size", "max-rooms",
                                         "max-message-bytes", "rate-limit", "resume-seconds",
                                         "redis"};
    char *noargs[] = {"tsunagu-signal", NULL};

    if (argc < 2 || !(f = fopen(argv[1], "r"))) {
        printf("Bail out! usage: test_sig_conf conf/signaling.conf.sample\n");
        return 1;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = calloc(1, (size_t)n + 1);
    if (fread(text, 1, (size_t)n, f) != (size_t)n)
        return 1;
    fclose(f);

    for (const rtc_conf_spec *s = sig_conf_specs; s->key; s++) {
        char pat[128];
        snprintf(pat, sizeof pat, "\n%s = ", s->key);
        if (!strstr(text, pat))
            snprintf(pat, sizeof pat, "\n# %s = ", s->key);
        ok(strstr(text, pat) != NULL, s->key);
    }
    for (size_t i = 0; i < sizeof design / sizeof *design; i++) {
        const rtc_conf_spec *s = sig_conf_specs;
        while (s->key && strcmp(s->key, design[i]))
            s++;
        ok(s->key != NULL, "DESIGN.md flag in the table");
    }
    memset(&from_file, 0, sizeof from_file);
    is_int(rtc_conf_load_file(sig_conf_specs, &from_file, argv[1], err, sizeof err), 0, "sample loads");
    is_int(sig_conf_load(&defaults, 1, noargs, err, sizeof err), 0, "defaults load");
    for (const rtc_conf_spec *s = sig_conf_specs; s->key; s++) {
        const char *a = (const char *)&from_file + s->offset, *b = (const char *)&defaults + s->offset;
        if (s->type == RTC_CONF_INT)
            ok(*(const int64_t *)a == *(const int64_t *)b, "sample value is the default");
        else if (s->type == RTC_CONF_STR)
            ok((!*(char *const *)a && !*(char *const *)b) ||
                   (*(char *const *)a && *(char *const *)b &&
                    !strcmp(*(char *const *)a, *(char *const *)b)),
               "sample value is the default");
    }
    sig_conf_dispose(&from_file);
    sig_conf_dispose(&defaults);
    free(text);
    return done_testing();
}
