/* fuzz_sig_replay.c - minimal corpus replay driver for fuzz_sig_proto, used
 * only while tests/fuzz/standalone.c (the shared driver) is not in the tree.
 * Each argument is a directory; every file in it is passed once to
 * LLVMFuzzerTestOneInput. Fails when nothing was replayed. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    unsigned long n = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        if (!d) {
            perror(argv[i]);
            return 1;
        }
        while ((e = readdir(d))) {
            char path[4096];
            FILE *f;
            uint8_t *buf;
            long len;
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            if (!(f = fopen(path, "rb")))
                continue;
            fseek(f, 0, SEEK_END);
            len = ftell(f);
            fseek(f, 0, SEEK_SET);
            buf = malloc(len > 0 ? (size_t)len : 1);
            if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len) {
                LLVMFuzzerTestOneInput(buf, (size_t)len);
                n++;
            }
            free(buf);
            fclose(f);
        }
        closedir(d);
    }
    printf("replayed %lu inputs\n", n);
    return n ? 0 : 1;
}
