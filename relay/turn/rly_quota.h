/* rly_quota.h - what workers share: allocation quotas (--max-allocations,
 * --max-allocations-per-user; 486 when reached) and EVEN-PORT reservations
 * (RFC 8656 s.7.2: the RESERVATION-TOKEN may come back on another 5-tuple,
 * which SO_REUSEPORT may hand to another worker).
 *
 * The only mutable state workers share. It is touched only when an
 * allocation is made or released, never per packet, so a mutex is enough;
 * the lock is never held while calling into another module. */
#ifndef RLY_QUOTA_H
#define RLY_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rtc_addr.h"

typedef struct rly_quota rly_quota; /* opaque, thread-safe */

rly_quota *rly_quota_new(void); /* NULL on ENOMEM */
void rly_quota_free(rly_quota *q);

/* Count one allocation for user if both limits allow it (max_user 0: no
 * per-user cap): 0, or RTC_ELIMIT (quota reached) / -ENOMEM. */
int rly_quota_take(rly_quota *q, const char *user, uint64_t max_total, uint64_t max_user);
/* The per-user cap for a quota key (issue 14 item 9). A static user is
 * often one name handed to every client of a deployment, so a cap on it
 * caps the whole deployment: only --max-allocations-per-user applies, and
 * its default is 0, no cap (coturn's too). A REST credential's ID names one
 * person (tsunagu-signal: a token's sub) or one client address (open mode:
 * an office behind a NAT shares it), so --max-allocations-per-rest-id
 * bounds it too; the smaller non-zero cap wins. 0: no cap. */
static inline uint64_t rly_quota_user_max(uint64_t per_user, uint64_t per_rest_id, bool rest)
{
    if (!rest || !per_rest_id)
        return per_user;
    return per_user && per_user < per_rest_id ? per_user : per_rest_id;
}

/* Give one back (at release: the quota is free at once). */
void rly_quota_give(rly_quota *q, const char *user);
size_t rly_quota_total(rly_quota *q);
/* The same units split, read under one lock: live allocations, and
 * EVEN-PORT reservations held (each holds a unit, rly_quota_resv_put). */
void rly_quota_counts(rly_quota *q, size_t *allocations, size_t *reservations);

/* EVEN-PORT reservations one user may hold at once: the table is shared by
 * everyone, so without a cap one user could fill it and deny EVEN-PORT R
 * to all others. */
#define RLY_RESV_PER_USER 4
#define RLY_QUOTA_NAME_MAX 128

/* Hold a relayed socket under token until expiry_ms for user (the quota
 * key). The caller has taken one quota unit for user (rly_quota_take); the
 * reservation keeps it until taken or expired. 0, or RTC_ELIMIT when user
 * holds RLY_RESV_PER_USER already or the table is full (the unit stays the
 * caller's to give back). */
int rly_quota_resv_put(rly_quota *q, const uint8_t token[8], int fd, const rtc_addr *bound,
                       uint64_t expiry_ms, const char *user);
/* The socket held under token (now the caller's), or -1; the quota unit
 * the reservation held is given back. */
int rly_quota_resv_take(rly_quota *q, const uint8_t *token, uint64_t now_ms, rtc_addr *bound);
/* One expired (or, with now_ms = UINT64_MAX, any) held socket for the caller
 * to close, or -1 when none is left; its quota unit is given back. */
int rly_quota_resv_expired(rly_quota *q, uint64_t now_ms, rtc_addr *bound);

#endif
