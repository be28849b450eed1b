/* test_rly_conf.c - conf/relay.conf.sample parses with the relay's own
 * settings table, lists every key, and shows each default as the table has
 * it (keys without a default appear commented out). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rly_main.h"
#include "rtc_conf.h"
#include "tap.h"

/* The value of "key = value" in the sample, active or commented. */
static bool find_key(const char *text, const char *key, bool *commented, char *val, size_t cap)
{
    const char *line = text;
    size_t kl = strlen(key);
    while (line && *line) {
        const char *p = line, *nl = strchr(line, '\n');
        bool c = false;
        if (*p == '#') {
            c = true;
            p++;
            while (*p == ' ')
                p++;
        }
        if (!strncmp(p, key, kl) && !strncmp(p + kl, " = ", 3)) {
            size_t n = (size_t)((nl ? nl : p + strlen(p)) - (p + kl + 3));
            if (n >= cap)
                n = cap - 1;
            memcpy(val, p + kl + 3, n);
            val[n] = '\0';
            *commented = c;
            return true;
        }
        line = nl ? nl + 1 : NULL;
    }
    return false;
}

int main(int argc, char **argv)
{
    rly_settings s;
    char err[512], *text;
    FILE *f;
    long len;

    if (argc < 2) {
        printf("Bail out! usage: test_rly_conf conf/relay.conf.sample\n");
        return 1;
    }
    memset(&s, 0, sizeof s);
    is_int(rtc_conf_load_file(rly_conf_specs, &s, argv[1], err, sizeof err), 0,
           "sample parses with the relay's table");
    if (err[0])
        printf("# %s\n", err);
    is_int(s.max_allocations, 100000, "max-allocations from the sample");
    ok(s.listen.n == 1 && !strcmp(s.listen.v[0], "0.0.0.0:3478"), "listen from the sample");
    rtc_conf_dispose(rly_conf_specs, &s);

    f = fopen(argv[1], "r");
    ok(f != NULL, "sample readable");
    if (!f)
        return done_testing();
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = calloc(1, (size_t)len + 1);
    if (fread(text, 1, (size_t)len, f) != (size_t)len)
        text[0] = '\0';
    fclose(f);
    for (const rtc_conf_spec *sp = rly_conf_specs; sp->key; sp++) {
        char val[256], name[128];
        bool commented = false, found = find_key(text, sp->key, &commented, val, sizeof val);
        snprintf(name, sizeof name, "sample lists '%s'", sp->key);
        ok(found, name);
        if (!found)
            continue;
        if (sp->def) {
            snprintf(name, sizeof name, "'%s' shows its default '%s'", sp->key, sp->def);
            ok(!commented && !strcmp(val, sp->def), name);
        } else {
            snprintf(name, sizeof name, "'%s' (no default) is commented out", sp->key);
            ok(commented, name);
        }
    }
    free(text);

    /* a bad value names the key */
    {
        char *av[] = {"relay", "--nonce-ttl", "0"};
        memset(&s, 0, sizeof s);
        ok(rtc_conf_load(rly_conf_specs, &s, 3, av, err, sizeof err) != 0 &&
               strstr(err, "nonce-ttl"),
           "out-of-range value names the key");
    }
    return done_testing();
}
