/* bot_srtp.c - the libsrtp2 adapter (see bot_srtp.h). Two streams per
 * session: "any outbound" keyed with our key, "any inbound" with the peer's,
 * so neither side has to know the other's SSRC in advance. */
#include "bot_srtp.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <srtp2/srtp.h>

#include "rtc_err.h"

/* libsrtp keeps one template stream per session, so "any outbound" and
 * "any inbound" need a session each. */
struct bot_srtp {
    srtp_t tx, rx;
};

int bot_srtp_global_init(void) { return srtp_init() == srtp_err_status_ok ? 0 : RTC_EMSG; }

void bot_srtp_global_shutdown(void) { srtp_shutdown(); }

static void set_policy(srtp_policy_t *p, bot_srtp_profile prof)
{
    if (prof == BOT_SRTP_AEAD_AES_128_GCM) {
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p->rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p->rtcp);
    } else {
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtcp);
    }
}

bot_srtp *bot_srtp_new(bot_srtp_keys *keys)
{
    bot_srtp *s = calloc(1, sizeof *s);
    srtp_policy_t pol[2];

    if (!s)
        goto out_wipe;
    memset(pol, 0, sizeof pol);
    set_policy(&pol[0], keys->profile);
    set_policy(&pol[1], keys->profile);
    pol[0].ssrc.type = ssrc_any_outbound;
    pol[0].key = keys->local;
    pol[0].window_size = 1024;
    pol[1].ssrc.type = ssrc_any_inbound;
    pol[1].key = keys->remote;
    /* A wide replay window: a late packet on a jittery path is not an attack. */
    pol[1].window_size = 1024;
    if (srtp_create(&s->tx, &pol[0]) != srtp_err_status_ok)
        goto out_free;
    if (srtp_create(&s->rx, &pol[1]) != srtp_err_status_ok)
        goto out_tx;
    goto out_wipe;
out_tx:
    srtp_dealloc(s->tx);
out_free:
    free(s);
    s = NULL;
out_wipe:
    OPENSSL_cleanse(keys, sizeof *keys);
    return s;
}

void bot_srtp_free(bot_srtp *s)
{
    if (!s)
        return;
    srtp_dealloc(s->tx);
    srtp_dealloc(s->rx);
    free(s);
}

int bot_srtp_protect(bot_srtp *s, uint8_t *pkt, size_t *len, size_t cap)
{
    int n = (int)*len;
    if (*len + BOT_SRTP_OVERHEAD > cap)
        return RTC_ESPACE;
    if (srtp_protect(s->tx, pkt, &n) != srtp_err_status_ok)
        return RTC_EMSG;
    *len = (size_t)n;
    return 0;
}

int bot_srtp_unprotect(bot_srtp *s, uint8_t *pkt, size_t *len)
{
    int n = (int)*len;
    if (srtp_unprotect(s->rx, pkt, &n) != srtp_err_status_ok)
        return RTC_EMSG;
    *len = (size_t)n;
    return 0;
}

int bot_srtp_protect_rtcp(bot_srtp *s, uint8_t *pkt, size_t *len, size_t cap)
{
    int n = (int)*len;
    if (*len + BOT_SRTP_OVERHEAD > cap)
        return RTC_ESPACE;
    if (srtp_protect_rtcp(s->tx, pkt, &n) != srtp_err_status_ok)
        return RTC_EMSG;
    *len = (size_t)n;
    return 0;
}

int bot_srtp_unprotect_rtcp(bot_srtp *s, uint8_t *pkt, size_t *len)
{
    int n = (int)*len;
    if (srtp_unprotect_rtcp(s->rx, pkt, &n) != srtp_err_status_ok)
        return RTC_EMSG;
    *len = (size_t)n;
    return 0;
}
