/* failcalloc.c - LD_PRELOAD fault injector for integration tests: makes the
 * first FAILCALLOC_COUNT calloc() calls made from one function of the main
 * executable return NULL. The function is given as its offset and size in
 * the executable (hex, from `nm -S`), so the test needs no hook in the
 * program itself. Used to reach out-of-memory paths (e.g. tsunagu-signal's
 * sig_hub_connect failing at WebSocket upgrade) that nothing else can. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *(*real_calloc)(size_t, size_t);
static uintptr_t lo, hi;
static long left = -1;
/* dlsym may itself call calloc before real_calloc is known: serve it here */
static _Alignas(16) unsigned char boot[4096];
static size_t boot_used;

static int first_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    *(uintptr_t *)data = info->dlpi_addr; /* the first object is the executable */
    return 1;
}

static void setup(void)
{
    const char *off = getenv("FAILCALLOC_FN_OFF"), *sz = getenv("FAILCALLOC_FN_SIZE"),
               *n = getenv("FAILCALLOC_COUNT");
    uintptr_t base = 0;
    left = 0;
    if (!off || !sz || !n)
        return;
    dl_iterate_phdr(first_object, &base);
    lo = base + (uintptr_t)strtoull(off, NULL, 16);
    hi = lo + (uintptr_t)strtoull(sz, NULL, 16);
    left = strtol(n, NULL, 10);
}

void *calloc(size_t n, size_t size)
{
    static int busy;
    if (!real_calloc) {
        if (busy) {
            size_t want = (n * size + 15) & ~(size_t)15;
            void *p = boot + boot_used;
            if (boot_used + want > sizeof boot)
                return NULL;
            boot_used += want;
            return p; /* static, hence zeroed */
        }
        void *sym;
        busy = 1;
        sym = dlsym(RTLD_NEXT, "calloc");
        memcpy(&real_calloc, &sym, sizeof sym); /* ISO C has no object->function cast */
        busy = 0;
    }
    if (left < 0)
        setup();
    if (left > 0) {
        uintptr_t ra = (uintptr_t)__builtin_return_address(0);
        if (ra >= lo && ra < hi) {
            left--;
            return NULL;
        }
    }
    return real_calloc(n, size);
}
