/* test_bot_sdp.c - SDP parser and offer/answer builder: a Chromium offer
 * with audio, video and a data channel; Firefox-style session-level
 * attributes; the answer declines video cleanly; malformed and truncated
 * input is refused without reading past the end. argv[1] = the SDP corpus
 * directory (tests/fuzz/corpus/sdp). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bot_sdp.h"
#include "rtc_err.h"
#include "tap.h"

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    FILE *f;
    char *buf;
    long n;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static const bot_sdp_local local = {"lcl1", "localpasswordlocalpassw",
                                    "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99",
                                    BOT_SETUP_ACTIVE, 12345, 42, "bot"};

static void chromium_offer(const char *dir)
{
    size_t len = 0;
    char *text = slurp(dir, "chromium_av_dc.sdp", &len);
    bot_sdp *s = malloc(sizeof *s), *a = malloc(sizeof *a);
    char ans[8192];
    int n;

    ok(text != NULL, "chromium sample found");
    if (!text)
        goto out;
    is_int(bot_sdp_parse(s, text, len), 0, "chromium offer parses");
    is_int(s->n_m, 3, "three m-lines");
    ok(!strcmp(s->m[0].media, "audio") && !strcmp(s->m[1].media, "video") &&
           !strcmp(s->m[2].media, "application"), "media kinds");
    is_int(bot_sdp_audio_index(s), 0, "audio m-line found");
    is_int(s->m[0].opus_pt, 111, "opus is PT 111");
    ok(!strcmp(s->m[0].ufrag, "Yh3t") && !strcmp(s->m[0].pwd, "kP0b2dW3Xq9w5Ze7Rt1Yu8Io"), "ice creds");
    ok(!strcmp(s->m[0].fp_alg, "sha-256") && !strncmp(s->m[0].fp, "5B:0A:7C", 8), "fingerprint");
    is_int(s->m[0].setup, BOT_SETUP_ACTPASS, "setup actpass");
    ok(s->m[0].rtcp_mux, "rtcp-mux");
    is_int(s->m[0].ssrc, 3735928559u, "ssrc");
    ok(!strcmp(s->bundle, "0 1 2"), "bundle group");
    ok(!strcmp(s->m[1].fmts, "96 97 102 103"), "video formats kept");

    n = bot_sdp_build_answer(s, &local, ans, sizeof ans);
    ok(n > 0, "answer built");
    is_int(bot_sdp_parse(a, ans, (size_t)n), 0, "our answer parses");
    is_int(a->n_m, 3, "answer has one m-line per offered one (JSEP)");
    is_int(a->m[0].port, 9, "audio accepted");
    is_int(a->m[1].port, 0, "video declined with port 0");
    is_int(a->m[2].port, 0, "data channel declined with port 0");
    ok(!strcmp(a->m[1].mid, "1") && !strcmp(a->m[2].mid, "2"), "declined mids kept");
    ok(!strcmp(a->bundle, "0"), "only audio in BUNDLE");
    is_int(a->m[0].setup, BOT_SETUP_ACTIVE, "answer setup active");
    is_int(a->m[0].opus_pt, 111, "answer opus 111");
    ok(a->m[0].rtcp_mux && !strcmp(a->m[0].ufrag, "lcl1"), "answer rtcp-mux + ufrag");
    ok(strstr(ans, "m=video 0 UDP/TLS/RTP/SAVPF 96\r\n") != NULL, "video line text");
    ok(strstr(ans, "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\n") != NULL, "dc line text");
    is_int(bot_sdp_build_answer(s, &local, ans, 100), RTC_ESPACE, "small buffer -> ESPACE");

    /* every truncation: parses or fails, never reads past the end (ASan) */
    {
        int okc = 0;
        for (size_t cut = 0; cut < len; cut++) {
            char *part = malloc(cut ? cut : 1);
            memcpy(part, text, cut);
            if (bot_sdp_parse(s, part, cut) == 0)
                okc++;
            free(part);
        }
        ok(okc > 0 && okc < (int)len, "truncations handled");
    }
out:
    free(text);
    free(s);
    free(a);
}

static void offer_roundtrip(void)
{
    char buf[4096];
    bot_sdp *s = malloc(sizeof *s);
    bot_sdp_local l = local;
    int n;
    l.setup = BOT_SETUP_ACTPASS;
    n = bot_sdp_build_offer(&l, buf, sizeof buf);
    ok(n > 0, "offer built");
    is_int(bot_sdp_parse(s, buf, (size_t)n), 0, "offer parses");
    is_int(s->n_m, 1, "one m-line");
    is_int(s->m[0].setup, BOT_SETUP_ACTPASS, "offer actpass");
    is_int(s->m[0].ssrc, 12345, "offer ssrc");
    ok(!strcmp(s->bundle, "0") && !strcmp(s->m[0].mid, "0"), "offer bundle/mid");
    ok(strstr(buf, "a=rtpmap:111 opus/48000/2\r\n") != NULL, "opus 111 in offer");
    ok(strstr(buf, "o=- 42 2 IN IP4 ") != NULL, "first offer: o= version 2");
    l.session_version = 3; /* an ICE restart's offer after three descriptions */
    ok(bot_sdp_build_offer(&l, buf, sizeof buf) > 0 && strstr(buf, "o=- 42 5 IN IP4 ") != NULL,
       "a later offer: same session id, higher o= version");
    is_int(bot_sdp_build_offer(&l, buf, 64), RTC_ESPACE, "offer overflow");
    free(s);
}

static void others(const char *dir)
{
    bot_sdp *s = malloc(sizeof *s);
    size_t len;
    char *t;

    t = slurp(dir, "firefox_session_level.sdp", &len);
    is_int(bot_sdp_parse(s, t, len), 0, "session-level attrs parse");
    ok(!strcmp(s->m[0].ufrag, "sess") && !strcmp(s->m[0].fp, "AB:CD"), "session-level fallback");
    is_int(s->m[0].opus_pt, 109, "opus at another PT");
    free(t);

    t = slurp(dir, "answer_with_cand.sdp", &len);
    is_int(bot_sdp_parse(s, t, len), 0, "answer with candidate");
    is_int(s->n_cands, 1, "one candidate");
    ok(!strncmp(s->cands[0].cand, "candidate:1 1 udp", 17), "candidate text without a=");
    ok(s->end_of_candidates, "end-of-candidates");
    free(t);

    t = slurp(dir, "video_only.sdp", &len);
    is_int(bot_sdp_parse(s, t, len), 0, "video-only parses");
    is_int(bot_sdp_audio_index(s), -1, "but has no audio");
    {
        char ans[1024];
        is_int(bot_sdp_build_answer(s, &local, ans, sizeof ans), RTC_EUNSUP, "no audio -> EUNSUP");
    }
    free(t);

    static const char *bad[] = {"bad_port.sdp", "no_v.sdp", "short_m.sdp"};
    for (size_t i = 0; i < 3; i++) {
        t = slurp(dir, bad[i], &len);
        ok(t && bot_sdp_parse(s, t, len) == RTC_EMSG, bad[i]);
        free(t);
    }
    is_int(bot_sdp_parse(s, "", 0), RTC_EMSG, "empty");
    is_int(bot_sdp_parse(s, "v=0\r\nm=audio 9 RTP/AVP 0\r\na=mid:a\rb\r\n", 37), RTC_EMSG,
           "CR inside a value refused (would be echoed into an answer)");
    is_int(bot_sdp_parse(s, "v=0\nm=audio 9 RTP/AVP 0\na=setup:sideways\n", 41), RTC_EMSG, "bad setup");
    {
        /* a value longer than its buffer is an error, not a silent cut */
        char big[1200];
        int n = snprintf(big, sizeof big, "v=0\nm=audio 9 RTP/AVP 0\na=ice-ufrag:");
        memset(big + n, 'u', 600);
        is_int(bot_sdp_parse(s, big, (size_t)n + 600), RTC_EMSG, "over-long ufrag");
    }
    {
        size_t big = BOT_SDP_MAX_LEN + 1;
        char *huge = malloc(big);
        memset(huge, '\n', big);
        memcpy(huge, "v=0\n", 4);
        is_int(bot_sdp_parse(s, huge, big), RTC_EMSG, "over-long SDP");
        free(huge);
    }
    free(s);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz/corpus/sdp";
    chromium_offer(dir);
    offer_roundtrip();
    others(dir);
    return done_testing();
}
