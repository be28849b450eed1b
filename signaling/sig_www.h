/* sig_www.h - the demo page files (signaling/www/), embedded into the binary
 * at build time by embed.py so the server needs no install path. */
#ifndef SIG_WWW_H
#define SIG_WWW_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *path; /* "/index.html" */
    const char *type; /* Content-Type */
    const uint8_t *data;
    size_t len;
} sig_www_file;

/* NULL when path is not one of the files. */
const sig_www_file *sig_www_find(const char *path);

#endif
