/* test_stn_vec.h - load the RFC 5769 vectors (tests/vectors/rfc5769, one .hex file each)
 * for the STUN unit tests. The directory comes from argv[1] (meson passes
 * the source path), so the bytes under test are the committed RFC text, not
 * a second copy inside the test. */
#ifndef TEST_STN_VEC_H
#define TEST_STN_VEC_H

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint8_t b[512];
    size_t len;
} vec;

/* Hex pairs separated by blanks; '#' starts a comment. 0 or -1. */
static inline int vec_load(const char *dir, const char *name, vec *v)
{
    char path[1024], line[512];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s.hex", dir, name);
    f = fopen(path, "r");
    v->len = 0;
    if (!f) {
        printf("# cannot open %s\n", path);
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char *h = strchr(line, '#');
        if (h)
            *h = '\0';
        for (char *p = line; *p;) {
            unsigned x;
            if (isspace((unsigned char)*p)) {
                p++;
                continue;
            }
            if (sscanf(p, "%2x", &x) != 1 || v->len >= sizeof v->b) {
                fclose(f);
                printf("# bad hex in %s\n", path);
                return -1;
            }
            v->b[v->len++] = (uint8_t)x;
            p += 2;
        }
    }
    fclose(f);
    return 0;
}

#endif
