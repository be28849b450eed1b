/* sig_token.h - HS256 JSON Web Tokens (RFC 7519, RFC 7515) for room access.
 *
 * Claims: "room" (must equal the room being joined), "sub" (who), "exp"
 * (unix seconds, required) and optional "name" (display name that overrides
 * the one in join). Only alg HS256 is accepted: "none" and every other
 * algorithm are rejected before any other work (the classic JWT
 * algorithm-confusion hole). Pure: the caller passes the wall clock. */
#ifndef SIG_TOKEN_H
#define SIG_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define SIG_TOKEN_SUB_MAX 128

typedef struct {
    char sub[SIG_TOKEN_SUB_MAX + 1];
    char name[65]; /* "" when the token has no name */
    int64_t exp;
} sig_token_claims;

/* 0, RTC_EAUTH (malformed, wrong alg, bad signature, other room) or
 * RTC_ESTALE (expired). `why` gets a static reason for the log. */
int sig_token_verify(const char *token, const void *secret, size_t secretlen, const char *room,
                     uint64_t now_s, sig_token_claims *out, const char **why);

#define SIG_TOKEN_SECRETS 4 /* secrets accepted at once (rotation) */

/* The same against several secrets (NUL-terminated strings, at most
 * SIG_TOKEN_SECRETS; more are ignored): the token must be signed by one of
 * them, and its claims are then checked once. Lets an operator rotate the
 * secret while tokens signed with the old one are still out. */
int sig_token_verify_any(const char *token, char *const *secrets, size_t n, const char *room,
                         uint64_t now_s, sig_token_claims *out, const char **why);

/* A fresh token; malloc'd, caller frees. NULL on ENOMEM. name may be NULL. */
char *sig_token_mint(const void *secret, size_t secretlen, const char *room, const char *sub,
                     const char *name, uint64_t exp_s);

#endif
