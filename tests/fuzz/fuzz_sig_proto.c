/* fuzz_sig_proto.c - libFuzzer target for the signaling message parser
 * (sig_proto_parse) and, on the same bytes, the JWT verifier and the
 * server-side builders that re-serialize client data. Invariants checked:
 * a refusal always says why and leaves nothing allocated; an accepted
 * message has every field its type requires, with sane lengths. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sig_proto.h"
#include "sig_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = NULL;
    sig_msg m;
    sig_code c = sig_proto_parse((const char *)data, size, &m, &why);
    char *s;

    if (c != SIG_OK) {
        if (c != SIG_E_BAD_REQUEST || !why || m.root)
            abort();
    } else {
        switch (m.type) {
        case SIG_MSG_JOIN:
            if (!m.room || !*m.room || strlen(m.room) > SIG_ROOM_MAX ||
                (m.name && strlen(m.name) > SIG_NAME_MAX))
                abort();
            if (m.token) {
                sig_token_claims cl;
                const char *w;
                sig_token_verify(m.token, "k", 1, m.room, 1000, &cl, &w);
            }
            break;
        case SIG_MSG_SIGNAL:
            if (!m.to || !*m.to || strlen(m.to) > SIG_ID_MAX || !m.data)
                abort();
            /* fall through */
        case SIG_MSG_BROADCAST:
            if (!m.data)
                abort();
            s = sig_proto_forward("signal", "0123456789abcdef", m.data);
            if (!s)
                abort();
            free(s);
            break;
        case SIG_MSG_RESUME:
            if (!m.token || !*m.token)
                abort();
            break;
        case SIG_MSG_LEAVE:
        case SIG_MSG_PING:
            break;
        default:
            abort();
        }
        sig_msg_dispose(&m);
    }

    /* the same bytes as an access token (a separate parser: base64url + JSON) */
    if (size < 8192) {
        char *tok = malloc(size + 1);
        sig_token_claims cl;
        const char *w;
        memcpy(tok, data, size);
        tok[size] = '\0';
        sig_token_verify(tok, "k", 1, "r", 1000, &cl, &w);
        free(tok);
    }
    return 0;
}
