/* rtc_err.c - text for error codes. */
#include "rtc_err.h"

#include <string.h>

const char *rtc_strerror(int err)
{
    switch (err) {
    case RTC_OK:
        return "success";
    case RTC_EMSG:
        return "malformed input";
    case RTC_EAUTH:
        return "authentication failed";
    case RTC_ESTALE:
        return "expired";
    case RTC_ELIMIT:
        return "limit reached";
    case RTC_ENOTFOUND:
        return "not found";
    case RTC_EEXIST:
        return "already exists";
    case RTC_ESPACE:
        return "buffer too small";
    case RTC_EUNSUP:
        return "not supported";
    case RTC_EPOLICY:
        return "forbidden by policy";
    default:
        return err < 0 && err > -1000 ? strerror(-err) : "unknown error";
    }
}
