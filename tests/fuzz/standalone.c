/* standalone.c - replay fuzz inputs without libFuzzer (cf. Janus's
 * fuzzers/engines/standalone.c), so a plain gcc build runs the committed
 * corpus, crash reproducers included, as an ordinary meson test.
 *
 * Every argument is a file or a directory (not recursive); each regular file
 * is read whole and passed once to LLVMFuzzerTestOneInput. A target signals
 * a failure by aborting. Exits 1 if an argument cannot be read or if no
 * input was found at all, so a missing corpus never passes silently. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;
    int rc = -1;

    if (!f) {
        perror(path);
        return -1;
    }
    if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET))
        goto out_close;
    /* an exact-size heap copy: ASan then flags any read past the input */
    buf = malloc(n ? (size_t)n : 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
        goto out_free;
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    rc = 0;
out_free:
    free(buf);
out_close:
    fclose(f);
    if (rc)
        fprintf(stderr, "cannot read %s\n", path);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned long files = 0;
    int failed = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;
        DIR *d;
        struct dirent *e;

        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            failed = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            failed |= run_file(argv[i]) != 0;
            files++;
            continue;
        }
        d = opendir(argv[i]);
        if (!d) {
            perror(argv[i]);
            failed = 1;
            continue;
        }
        while ((e = readdir(d))) {
            char path[4096];
            struct stat fst;
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            if (stat(path, &fst) != 0 || !S_ISREG(fst.st_mode))
                continue;
            failed |= run_file(path) != 0;
            files++;
        }
        closedir(d);
    }
    printf("replayed %lu inputs\n", files);
    if (files == 0) {
        fprintf(stderr, "no inputs found: give corpus directories or files\n");
        return 1;
    }
    return failed;
}
