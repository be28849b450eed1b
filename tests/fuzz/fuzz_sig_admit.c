/* fuzz_sig_admit.c - libFuzzer target for the admission checks
 * (sig_admit.h), fed the attacker-chosen Origin header bytes and, read as
 * operations, a sequence of connection opens and closes.
 * Invariants: a header admitted against the list is also a valid config
 * value; the verdict does not depend on the letter case of the input; the
 * sanitized log text is printable, bounded and NUL-terminated; per-address
 * counts equal a shadow count after any sequence, and every entry is gone
 * once every open was closed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sig_admit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void origin(const uint8_t *data, size_t size)
{
    static sig_admit *a; /* one policy for the whole run */
    static const char *const list[] = {"https://app.example.com", "http://127.0.0.1:8080/",
                                       "https://[::1]:8443", "x-app://local"};
    char out[SIG_ADMIT_LOG_MAX], err[256], *z, *up;
    sig_admit_verdict v;
    rtc_addr peer;

    memset(&peer, 0, sizeof peer);
    if (!a && (!(a = sig_admit_new(1)) || sig_admit_configure(a, list, 4, 0)))
        abort();
    v = sig_admit_check(a, (const char *)data, size, &peer);
    if (v != SIG_ADMIT_OK && v != SIG_ADMIT_ORIGIN)
        abort();
    if (!(z = malloc(size + 1)) || !(up = malloc(size + 1)))
        abort();
    memcpy(z, data, size);
    z[size] = '\0';
    for (size_t i = 0; i <= size; i++)
        up[i] = z[i] >= 'a' && z[i] <= 'z' ? (char)(z[i] - 32) : z[i];
    if (v == SIG_ADMIT_OK && (memchr(data, 0, size) || sig_admit_origin_check(z, err, sizeof err)))
        abort();
    if (sig_admit_check(a, up, size, &peer) != v)
        abort();
    sig_admit_origin_check(z, err, sizeof err);
    sig_admit_sanitize((const char *)data, size, out);
    if (strlen(out) >= SIG_ADMIT_LOG_MAX)
        abort();
    for (const char *p = out; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
            abort();
    free(z);
    free(up);
}

/* Two bytes per operation: bit 0 of the first says open or close, the
 * second picks one of 256 IPv6 clients spread over 16 /64s. */
static void counts(const uint8_t *data, size_t size)
{
    sig_admit *a = sig_admit_new(2);
    uint32_t shadow[16] = {0};
    rtc_addr k;

    if (!a)
        abort();
    memset(&k, 0, sizeof k);
    k.family = AF_INET6;
    k.ip[0] = 0x20;
    for (size_t i = 0; i + 1 < size; i += 2) {
        unsigned net = data[i + 1] >> 4;
        k.ip[7] = (uint8_t)net;            /* the /64 */
        k.ip[15] = (uint8_t)(data[i + 1]); /* the host inside it */
        if (data[i] & 1) {
            if (sig_admit_ip_add(a, &k))
                abort();
            shadow[net]++;
        } else if (shadow[net]) {
            sig_admit_ip_del(a, &k);
            shadow[net]--;
        }
        if (sig_admit_ip_count(a, &k) != shadow[net])
            abort();
    }
    for (unsigned net = 0; net < 16; net++) {
        k.ip[7] = (uint8_t)net;
        while (shadow[net]--)
            sig_admit_ip_del(a, &k);
    }
    if (sig_admit_ip_entries(a))
        abort();
    sig_admit_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    origin(data, size);
    counts(data, size);
    return 0;
}
