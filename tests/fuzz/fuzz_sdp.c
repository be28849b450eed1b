/* fuzz_sdp.c - libFuzzer target for the bot's SDP parser and answer
 * builder: any bytes in, no crash, no read past the input, and whatever
 * parses must yield an answer that parses again (the answer echoes offer
 * fields, so this also checks nothing unsafe is echoed).
 *
 * Built with -Dfuzz=true (clang, -fsanitize=fuzzer). Without it, the same
 * file is compiled with BOT_FUZZ_STANDALONE and replays every file named on
 * the command line (the corpus) through the target, as plain CI does. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bot_sdp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bot_sdp s, a;
    static char ans[16384];
    static const bot_sdp_local l = {"ufra", "passwordpasswordpasswd", "AB:CD", BOT_SETUP_ACTIVE, 1,
                                    2, "fuzz"};
    int n;
    if (bot_sdp_parse(&s, (const char *)data, size) != 0)
        return 0;
    (void)bot_sdp_audio_index(&s);
    n = bot_sdp_build_answer(&s, &l, ans, sizeof ans);
    if (n > 0 && bot_sdp_parse(&a, ans, (size_t)n) != 0)
        abort(); /* we produced an answer we cannot read back */
    return 0;
}

#ifdef BOT_FUZZ_STANDALONE
#include <dirent.h>

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long len;
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    /* exact-size heap copy so ASan catches any read past the input */
    buf = malloc(len > 0 ? (size_t)len : 1);
    if (!buf || len < 0 || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)len);
    free(buf);
    return 1;
}

/* Arguments are files or directories of files (one level). */
int main(int argc, char **argv)
{
    int files = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        if (!d) {
            if (replay_file(argv[i]) < 0)
                return 1;
            files++;
            continue;
        }
        while ((e = readdir(d)) != NULL) {
            char path[4096];
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            if (replay_file(path) < 0) {
                closedir(d);
                return 1;
            }
            files++;
        }
        closedir(d);
    }
    printf("replayed %d inputs\n", files);
    return files > 0 ? 0 : 1;
}
#endif
