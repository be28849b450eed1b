/* fuzz_sdp.c - libFuzzer target for the bot's SDP parser and answer
 * builder: any bytes in, no crash, no read past the input, and whatever
 * parses must yield an answer that parses again (the answer echoes offer
 * fields, so this also checks nothing unsafe is echoed).
 *
 * Built with -Dfuzz=true (clang, -fsanitize=fuzzer). Linked with
 * standalone.c it replays the committed corpus as an ordinary test. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

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
