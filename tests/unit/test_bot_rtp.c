/* test_bot_rtp.c - RTP header and RTCP SR/RR/SDES encode/decode, the
 * RFC 7983 / RFC 5761 demultiplexer, and malformed input. */
#include <stdlib.h>
#include <string.h>

#include "bot_rtp.h"
#include "rtc_err.h"
#include "tap.h"

static void rtp(void)
{
    uint8_t buf[64];
    bot_rtp_hdr h = {111, true, 65535, 0xdeadbeef, 0x01020304, 0, 0}, g;
    is_int(bot_rtp_write(buf, sizeof buf, &h), 12, "header written");
    ok(buf[0] == 0x80 && buf[1] == (0x80 | 111) && buf[2] == 0xff && buf[3] == 0xff, "bytes");
    memset(buf + 12, 0xab, 20);
    is_int(bot_rtp_parse(buf, 32, &g), 0, "parses");
    ok(g.pt == 111 && g.marker && g.seq == 65535 && g.ts == 0xdeadbeef && g.ssrc == 0x01020304,
       "fields round-trip");
    ok(g.payload_off == 12 && g.payload_len == 20, "payload");
    is_int(bot_rtp_write(buf, 11, &h), RTC_ESPACE, "short buffer");
    /* CSRC count 2, extension of 1 word, 3 bytes padding */
    {
        uint8_t p[] = {0xb2, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, /* csrc */ 1, 1, 1, 1, 2, 2, 2, 2,
                       /* ext */ 0xbe, 0xde, 0, 1, 9, 9, 9, 9, /* payload */ 7, 7, /* pad */ 0, 0, 3};
        is_int(bot_rtp_parse(p, sizeof p, &g), 0, "csrc+ext+padding");
        ok(g.payload_off == 28 && g.payload_len == 2, "payload located");
        for (size_t cut = 0; cut < sizeof p; cut++) {
            uint8_t *c = malloc(cut ? cut : 1);
            memcpy(c, p, cut);
            if (bot_rtp_parse(c, cut, &g) == 0 && g.payload_off + g.payload_len > cut) {
                ok(0, "truncated parse stayed in bounds");
                free(c);
                return;
            }
            free(c);
        }
        ok(1, "every truncation in bounds");
        p[sizeof p - 1] = 200;
        is_int(bot_rtp_parse(p, sizeof p, &g), RTC_EMSG, "padding longer than body");
    }
    buf[0] = 0x40;
    is_int(bot_rtp_parse(buf, 32, &g), RTC_EMSG, "version 1 refused");
}

static void demux(void)
{
    uint8_t stun[] = {0, 1, 0, 0}, dtls[] = {22, 254, 253}, rtpp[] = {0x80, 111}, rtcp[] = {0x80, 200},
            rr[] = {0x81, 201}, junk[] = {70};
    is_int(bot_pkt_classify(stun, 4), BOT_PKT_STUN, "stun");
    is_int(bot_pkt_classify(dtls, 3), BOT_PKT_DTLS, "dtls");
    is_int(bot_pkt_classify(rtpp, 2), BOT_PKT_RTP, "rtp");
    is_int(bot_pkt_classify(rtcp, 2), BOT_PKT_RTCP, "sr");
    is_int(bot_pkt_classify(rr, 2), BOT_PKT_RTCP, "rr");
    is_int(bot_pkt_classify(junk, 1), BOT_PKT_OTHER, "other");
    is_int(bot_pkt_classify(junk, 0), BOT_PKT_OTHER, "empty");
}

static void rtcp(void)
{
    uint8_t buf[256];
    bot_rtcp_out o;
    bot_rtcp_in in;
    int n;

    memset(&o, 0, sizeof o);
    o.ssrc = 0x11111111;
    o.is_sr = true;
    o.ntp = 0x0123456789abcdefull;
    o.rtp_ts = 48000;
    o.pkt_count = 50;
    o.octet_count = 5000;
    o.has_rb = true;
    o.rb.ssrc = 0x22222222;
    o.rb.fraction = 25;
    o.rb.cum_lost = -3;
    o.rb.ext_max_seq = 0x10005;
    o.rb.jitter = 77;
    o.rb.lsr = 0xabcd1234;
    o.rb.dlsr = 0x8000;
    o.cname = "tsunagu-bot";
    n = bot_rtcp_write(buf, sizeof buf, &o);
    /* SR 28 + RB 24 + SDES (4 hdr + 4 ssrc + 2 + 11 "tsunagu-bot" + END, padded -> 24) */
    is_int(n, 28 + 24 + 24, "compound length");
    ok(n > 0 && n % 4 == 0, "multiple of 4 bytes");
    is_int(bot_rtcp_parse(buf, (size_t)n, 0x22222222, &in), 0, "parses");
    ok(in.got_sr && in.sr_ssrc == 0x11111111 && in.sr_ntp == o.ntp, "SR fields");
    is_int(in.sr_pkt_count, 50, "SR packet count");
    ok(!in.got_bye, "no BYE");
    ok(in.got_rb && in.rb.fraction == 25 && in.rb.cum_lost == -3 && in.rb.ext_max_seq == 0x10005 &&
           in.rb.jitter == 77 && in.rb.lsr == 0xabcd1234 && in.rb.dlsr == 0x8000,
       "report block round-trips (negative cumulative loss too)");
    is_int(bot_rtcp_parse(buf, (size_t)n, 0x33333333, &in), 0, "other ssrc");
    ok(!in.got_rb, "block about someone else ignored");
    o.is_sr = false;
    n = bot_rtcp_write(buf, sizeof buf, &o);
    is_int(n, 8 + 24 + 24, "RR compound length");
    is_int(bot_rtcp_parse(buf, (size_t)n, 0x22222222, &in), 0, "RR parses");
    ok(!in.got_sr && in.got_rb, "RR: block, no SR");
    o.bye = true;
    n = bot_rtcp_write(buf, sizeof buf, &o);
    is_int(n, 8 + 24 + 24 + 8, "RR + SDES + BYE length");
    is_int(bot_rtcp_parse(buf, (size_t)n, 0x22222222, &in), 0, "BYE compound parses");
    ok(in.got_bye && in.bye_ssrc == 0x11111111 && in.got_rb, "BYE of the sender, block kept");
    is_int(bot_rtcp_parse(buf, (size_t)n - 4, 0x22222222, &in), RTC_EMSG, "BYE cut short");
    buf[n - 8] = 0x80; /* BYE with no source (SC 0): nothing to end */
    buf[n - 6] = 0;
    buf[n - 5] = 0;
    is_int(bot_rtcp_parse(buf, (size_t)n - 4, 0x22222222, &in), 0, "empty BYE parses");
    ok(!in.got_bye, "a BYE without a source ends nothing");
    o.bye = false;
    n = bot_rtcp_write(buf, sizeof buf, &o);
    is_int(bot_rtcp_write(buf, 20, &o), RTC_ESPACE, "short buffer");
    buf[3] = 200; /* length pointing far past the end */
    is_int(bot_rtcp_parse(buf, (size_t)n, 0x22222222, &in), RTC_EMSG, "bad length");
    ok(bot_ntp_mid(0x0123456789abcdefull) == 0x456789ab, "NTP middle 32 bits");
}

int main(void)
{
    rtp();
    demux();
    rtcp();
    return done_testing();
}
