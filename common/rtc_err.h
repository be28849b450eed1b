/* rtc_err.h - error codes shared by every tsunagu module.
 *
 * Functions return 0 on success or a negative code. System failures pass
 * through as -errno (as libuv and the kernel do); project codes start at
 * -1000 so they never collide with an errno value. Protocol outcomes (STUN
 * error responses, signaling error messages) are data, not C errors. */
#ifndef RTC_ERR_H
#define RTC_ERR_H

enum {
    RTC_OK = 0,
    RTC_EMSG = -1000,   /* malformed input (packet, frame, config value) */
    RTC_EAUTH = -1001,  /* authentication failed */
    RTC_ESTALE = -1002, /* nonce or token expired */
    RTC_ELIMIT = -1003, /* a configured limit was reached */
    RTC_ENOTFOUND = -1004,
    RTC_EEXIST = -1005,
    RTC_ESPACE = -1006, /* output buffer too small */
    RTC_EUNSUP = -1007, /* valid but not supported */
    RTC_EPOLICY = -1008 /* forbidden by policy (peer rules) */
};

/* Human-readable text for 0, -errno or an RTC_E* code. Never NULL. */
const char *rtc_strerror(int err);

#endif
