/* test_stn_attr.c - typed attribute decoders/encoders (RFC 8489 s.14,
 * RFC 8656 s.18, RFC 6156 s.4): round trips, the RFC 5769 XOR encodings, and
 * every length/family/range a decoder must refuse. */
#include <string.h>
#include <sys/socket.h>

#include "rtc_err.h"
#include "stn_attr.h"
#include "stn_msg.h"
#include "tap.h"

static const uint8_t tid[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};
static uint8_t buf[1024];
static stn_msg m;

/* One attribute with a raw value; returns its ref in the parsed view. */
static const stn_attr_ref *one(uint16_t type, const void *val, size_t len)
{
    stn_builder b;
    size_t n = 0;
    stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_REQUEST, tid);
    stn_build_attr(&b, type, val, len);
    if (stn_build_finish(&b, &n) || stn_msg_parse(&m, buf, n) || m.n_attrs != 1)
        return NULL;
    return &m.attrs[0];
}

static void xor_roundtrip(const char *ip, uint16_t port, bool xor)
{
    rtc_addr a, back;
    stn_builder b;
    size_t n = 0;
    char name[160];
    int rc;

    rtc_addr_parse_ip(ip, &a);
    a.port = port;
    stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_SUCCESS, tid);
    if (xor)
        stn_build_xor_addr(&b, STN_A_XOR_RELAYED_ADDRESS, &a);
    else
        stn_build_addr(&b, STN_A_MAPPED_ADDRESS, &a);
    rc = stn_build_finish(&b, &n) || stn_msg_parse(&m, buf, n) || m.n_attrs != 1;
    if (!rc)
        rc = xor ? stn_attr_get_xor_addr(&m, &m.attrs[0], &back)
                 : stn_attr_get_addr(&m, &m.attrs[0], &back);
    snprintf(name, sizeof name, "%s %s port %u round-trips", xor ? "XOR" : "plain", ip, port);
    ok(rc == 0 && rtc_addr_equal(&a, &back), name);
    if (!xor) {
        snprintf(name, sizeof name, "plain %s: port on the wire is not XORed", ip);
        ok(buf[26] == (uint8_t)(port >> 8) && buf[27] == (uint8_t)port, name);
    }
}

static void addresses(void)
{
    static const uint8_t v4_wire[] = {0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43};
    static const uint8_t v6_wire[] = {0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3,
                                      0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9};
    const char *ips[] = {"192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8:1234:5678:11:2233:4455:6677",
                         "::", "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:1.2.3.4"};
    const uint16_t ports[] = {0, 1, 3478, 32853, 65535};
    const stn_attr_ref *a;
    rtc_addr ad, want;
    stn_builder b;
    size_t n = 0;
    uint8_t bad[24];

    for (size_t i = 0; i < sizeof ips / sizeof ips[0]; i++)
        for (size_t p = 0; p < sizeof ports / sizeof ports[0]; p++) {
            xor_roundtrip(ips[i], ports[p], true);
            if (p == 3)
                xor_roundtrip(ips[i], ports[p], false);
        }

    /* the RFC 5769 encodings, both directions */
    rtc_addr_parse_ip("192.0.2.1", &want);
    want.port = 32853;
    a = one(STN_A_XOR_MAPPED_ADDRESS, v4_wire, sizeof v4_wire);
    ok(a && stn_attr_get_xor_addr(&m, a, &ad) == 0 && rtc_addr_equal(&ad, &want),
       "RFC 5769 v4 XOR-MAPPED-ADDRESS decodes to 192.0.2.1:32853");
    stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_SUCCESS, tid);
    stn_build_xor_addr(&b, STN_A_XOR_MAPPED_ADDRESS, &want);
    ok(stn_build_finish(&b, &n) == 0 && n == 32 && memcmp(buf + 24, v4_wire, 8) == 0,
       "192.0.2.1:32853 encodes to the RFC 5769 bytes");
    rtc_addr_parse_ip("2001:db8:1234:5678:11:2233:4455:6677", &want);
    want.port = 32853;
    a = one(STN_A_XOR_MAPPED_ADDRESS, v6_wire, sizeof v6_wire);
    ok(a && stn_attr_get_xor_addr(&m, a, &ad) == 0 && rtc_addr_equal(&ad, &want),
       "RFC 5769 v6 XOR-MAPPED-ADDRESS decodes");
    stn_build_init(&b, buf, sizeof buf, STN_BINDING, STN_SUCCESS, tid);
    stn_build_xor_addr(&b, STN_A_XOR_MAPPED_ADDRESS, &want);
    ok(stn_build_finish(&b, &n) == 0 && n == 44 && memcmp(buf + 24, v6_wire, 20) == 0,
       "v6 address encodes to the RFC 5769 bytes (XOR with cookie||tid)");

    /* bad families and lengths */
    memset(bad, 0, sizeof bad);
    for (int fam = 0; fam < 256; fam += 1) {
        if (fam == 1 || fam == 2)
            continue;
        bad[1] = (uint8_t)fam;
        a = one(STN_A_XOR_PEER_ADDRESS, bad, 8);
        if (!a || stn_attr_get_xor_addr(&m, a, &ad) != RTC_EMSG ||
            stn_attr_get_addr(&m, a, &ad) != RTC_EMSG) {
            ok(0, "bad family rejected");
            break;
        }
        if (fam == 255)
            ok(1, "families 0, 3..255 rejected (v4-sized value)");
    }
    bad[1] = 3;
    a = one(STN_A_XOR_PEER_ADDRESS, bad, 20);
    is_int(a ? stn_attr_get_xor_addr(&m, a, &ad) : 0, RTC_EMSG, "family 3 with 16 bytes rejected");
    {
        static const struct {
            uint8_t fam;
            size_t len;
        } lens[] = {{1, 0}, {1, 3}, {1, 4}, {1, 7}, {1, 9}, {1, 12}, {1, 20},
                    {2, 4}, {2, 8}, {2, 19}, {2, 21}, {2, 24}};
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            char name[96];
            bad[1] = lens[i].fam;
            a = one(STN_A_XOR_PEER_ADDRESS, bad, lens[i].len);
            snprintf(name, sizeof name, "family %u with %zu-byte value rejected (xor and plain)",
                     lens[i].fam, lens[i].len);
            ok(a && stn_attr_get_xor_addr(&m, a, &ad) == RTC_EMSG &&
                   stn_attr_get_addr(&m, a, &ad) == RTC_EMSG,
               name);
        }
    }
}

static void error_code(void)
{
    static const struct {
        int code;
        const char *reason;
    } c[] = {{300, "Try Alternate"}, {400, "Bad Request"},   {401, "Unauthorized"},
             {420, "Unknown Attribute"}, {437, "Allocation Mismatch"}, {438, "Stale Nonce"},
             {441, "Wrong Credentials"}, {486, "Allocation Quota Reached"}, {508, "Insufficient Capacity"},
             {699, ""}};
    const stn_attr_ref *a;
    stn_builder b;
    size_t n = 0;
    int code = 0;
    rtc_rd reason;
    char longr[300];

    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char name[96];
        size_t rl = strlen(c[i].reason);
        stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_ERROR, tid);
        stn_build_error(&b, c[i].code, c[i].reason);
        snprintf(name, sizeof name, "ERROR-CODE %d round-trips with its reason", c[i].code);
        ok(stn_build_finish(&b, &n) == 0 && stn_msg_parse(&m, buf, n) == 0 &&
               stn_attr_get_error(&m, &m.attrs[0], &code, &reason) == 0 && code == c[i].code &&
               rtc_rd_left(&reason) == rl && memcmp(reason.p, c[i].reason, rl) == 0,
           name);
        snprintf(name, sizeof name, "ERROR-CODE %d wire: class %d number %d", c[i].code,
                 c[i].code / 100, c[i].code % 100);
        ok(buf[24] == 0 && buf[25] == 0 && buf[26] == c[i].code / 100 &&
               buf[27] == c[i].code % 100,
           name);
    }
    memset(longr, 'r', sizeof longr - 1);
    longr[sizeof longr - 1] = '\0';
    stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_ERROR, tid);
    stn_build_error(&b, 500, longr);
    ok(stn_build_finish(&b, &n) == 0 && stn_msg_parse(&m, buf, n) == 0 &&
           stn_attr_get_error(&m, &m.attrs[0], &code, &reason) == 0 &&
           rtc_rd_left(&reason) == 128,
       "299-byte reason is cut to 128 bytes");
    stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_ERROR, tid);
    stn_build_error(&b, 400, NULL);
    ok(stn_build_finish(&b, &n) == 0 && stn_msg_parse(&m, buf, n) == 0 &&
           stn_attr_get_error(&m, &m.attrs[0], &code, &reason) == 0 && code == 400 &&
           rtc_rd_left(&reason) == 0,
       "NULL reason builds an empty one");

    a = one(STN_A_ERROR_CODE, "\x00\x00\x02\x63", 4);
    is_int(a ? stn_attr_get_error(&m, a, &code, &reason) : 0, RTC_EMSG, "class 2 (299) rejected");
    a = one(STN_A_ERROR_CODE, "\x00\x00\x07\x00", 4);
    is_int(a ? stn_attr_get_error(&m, a, &code, &reason) : 0, RTC_EMSG, "class 7 rejected");
    a = one(STN_A_ERROR_CODE, "\x00\x00\x04\x64", 4);
    is_int(a ? stn_attr_get_error(&m, a, &code, &reason) : 0, RTC_EMSG, "number 100 rejected");
    a = one(STN_A_ERROR_CODE, "\x00\x00\x04", 3);
    is_int(a ? stn_attr_get_error(&m, a, &code, &reason) : 0, RTC_EMSG, "3-byte value rejected");
    a = one(STN_A_ERROR_CODE, "", 0);
    is_int(a ? stn_attr_get_error(&m, a, &code, &reason) : 0, RTC_EMSG, "empty value rejected");
    a = one(STN_A_ERROR_CODE, "\xff\xff\xfc\x01", 4);
    ok(a && stn_attr_get_error(&m, a, &code, &reason) == 0 && code == 401,
       "reserved bits are ignored (class = low 3 bits)");
}

static void unknown_list(void)
{
    static const uint16_t t[10] = {0x0031, 0x7fff, 3, 4, 5, 6, 7, 8, 9, 10};
    stn_builder b;
    size_t n = 0;

    stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_ERROR, tid);
    stn_build_unknown(&b, t, 3);
    ok(stn_build_finish(&b, &n) == 0 && n == 32 && buf[22] == 0 && buf[23] == 6 &&
           memcmp(buf + 24, "\x00\x31\x7f\xff\x00\x03\x00\x00", 8) == 0,
       "UNKNOWN-ATTRIBUTES: 3 types, zero padded");
    stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_ERROR, tid);
    stn_build_unknown(&b, t, 10);
    ok(stn_build_finish(&b, &n) == 0 && buf[23] == 2 * STN_MAX_UNKNOWN,
       "UNKNOWN-ATTRIBUTES capped at 8 types");
}

static void scalars(void)
{
    const stn_attr_ref *a;
    uint32_t u = 0;
    uint16_t chan = 0;
    uint8_t proto = 0;
    int fam = 0;
    bool r = false;
    stn_builder b;
    size_t n = 0;

    a = one(STN_A_LIFETIME, "\x00\x00\x02\x58", 4);
    ok(a && stn_attr_get_u32(&m, a, &u) == 0 && u == 600, "LIFETIME 600");
    a = one(STN_A_LIFETIME, "\x00\x00\x02", 3);
    is_int(a ? stn_attr_get_u32(&m, a, &u) : 0, RTC_EMSG, "u32 of 3 bytes rejected");
    a = one(STN_A_LIFETIME, "\x00\x00\x02\x58\x00", 5);
    is_int(a ? stn_attr_get_u32(&m, a, &u) : 0, RTC_EMSG, "u32 of 5 bytes rejected");

    stn_build_init(&b, buf, sizeof buf, STN_CHANNEL_BIND, STN_REQUEST, tid);
    stn_build_channel(&b, 0x4abc);
    ok(stn_build_finish(&b, &n) == 0 && memcmp(buf + 20, "\x00\x0c\x00\x04\x4a\xbc\x00\x00", 8) == 0,
       "CHANNEL-NUMBER 0x4abc on the wire with zero RFFU");
    ok(stn_msg_parse(&m, buf, n) == 0 && stn_attr_get_channel(&m, &m.attrs[0], &chan) == 0 &&
           chan == 0x4abc,
       "CHANNEL-NUMBER decodes");
    a = one(STN_A_CHANNEL_NUMBER, "\x3f\xff\x00\x00", 4);
    ok(a && stn_attr_get_channel(&m, a, &chan) == 0 && chan == 0x3fff,
       "out-of-range channel decodes (caller answers 400)");
    a = one(STN_A_CHANNEL_NUMBER, "\x40\x00", 2);
    is_int(a ? stn_attr_get_channel(&m, a, &chan) : 0, RTC_EMSG, "CHANNEL-NUMBER of 2 bytes rejected");
    a = one(STN_A_CHANNEL_NUMBER, "\x40\x00\x00\x00\x00\x00\x00\x00", 8);
    is_int(a ? stn_attr_get_channel(&m, a, &chan) : 0, RTC_EMSG, "CHANNEL-NUMBER of 8 bytes rejected");

    a = one(STN_A_REQUESTED_TRANSPORT, "\x11\x00\x00\x00", 4);
    ok(a && stn_attr_get_transport(&m, a, &proto) == 0 && proto == 17,
       "REQUESTED-TRANSPORT UDP (17)");
    a = one(STN_A_REQUESTED_TRANSPORT, "\x06\x00\x00\x00", 4);
    ok(a && stn_attr_get_transport(&m, a, &proto) == 0 && proto == 6,
       "REQUESTED-TRANSPORT TCP (6) decodes (caller answers 442)");
    a = one(STN_A_REQUESTED_TRANSPORT, "\x11", 1);
    is_int(a ? stn_attr_get_transport(&m, a, &proto) : 0, RTC_EMSG, "REQUESTED-TRANSPORT of 1 byte rejected");
    a = one(STN_A_REQUESTED_TRANSPORT, "", 0);
    is_int(a ? stn_attr_get_transport(&m, a, &proto) : 0, RTC_EMSG, "empty REQUESTED-TRANSPORT rejected");

    a = one(STN_A_REQUESTED_ADDRESS_FAMILY, "\x01\x00\x00\x00", 4);
    ok(a && stn_attr_get_family(&m, a, &fam) == 0 && fam == AF_INET, "REQUESTED-ADDRESS-FAMILY 1 = IPv4");
    a = one(STN_A_REQUESTED_ADDRESS_FAMILY, "\x02\x00\x00\x00", 4);
    ok(a && stn_attr_get_family(&m, a, &fam) == 0 && fam == AF_INET6, "REQUESTED-ADDRESS-FAMILY 2 = IPv6");
    a = one(STN_A_ADDITIONAL_ADDRESS_FAMILY, "\x02\x00\x00\x00", 4);
    ok(a && stn_attr_get_family(&m, a, &fam) == 0 && fam == AF_INET6, "ADDITIONAL-ADDRESS-FAMILY 2");
    a = one(STN_A_REQUESTED_ADDRESS_FAMILY, "\x03\x00\x00\x00", 4);
    is_int(a ? stn_attr_get_family(&m, a, &fam) : 0, RTC_EMSG, "family 3 rejected (-> 440)");
    a = one(STN_A_REQUESTED_ADDRESS_FAMILY, "\x00\x00\x00\x00", 4);
    is_int(a ? stn_attr_get_family(&m, a, &fam) : 0, RTC_EMSG, "family 0 rejected");
    a = one(STN_A_REQUESTED_ADDRESS_FAMILY, "\x01", 1);
    is_int(a ? stn_attr_get_family(&m, a, &fam) : 0, RTC_EMSG, "family of 1 byte rejected");

    a = one(STN_A_EVEN_PORT, "\x80", 1);
    ok(a && stn_attr_get_even_port(&m, a, &r) == 0 && r, "EVEN-PORT R=1");
    a = one(STN_A_EVEN_PORT, "\x00", 1);
    ok(a && stn_attr_get_even_port(&m, a, &r) == 0 && !r, "EVEN-PORT R=0");
    a = one(STN_A_EVEN_PORT, "\x80\x00\x00\x00", 4);
    ok(a && stn_attr_get_even_port(&m, a, &r) == 0 && r, "EVEN-PORT padded to 4 bytes");
    a = one(STN_A_EVEN_PORT, "\x80\x00", 2);
    is_int(a ? stn_attr_get_even_port(&m, a, &r) : 0, RTC_EMSG, "EVEN-PORT of 2 bytes rejected");
    a = one(STN_A_EVEN_PORT, "", 0);
    is_int(a ? stn_attr_get_even_port(&m, a, &r) : 0, RTC_EMSG, "empty EVEN-PORT rejected");
}

/* ADDRESS-ERROR-CODE (RFC 8656 s.18.12) and PASSWORD-ALGORITHM(S)
 * (RFC 8489 s.14.11, s.14.12), byte for byte as the RFCs draw them. */
static void rfc8489_8656(void)
{
    const stn_attr_ref *a;
    stn_builder b;
    size_t n = 0;
    int fam = 0, code = 0;
    uint16_t alg = 0;
    rtc_rd reason;
    static const uint16_t algs[] = {0x0002, 0x0001};

    stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_SUCCESS, tid);
    stn_build_address_error(&b, AF_INET6, 440, "Address Family not Supported");
    ok(stn_build_finish(&b, &n) == 0 &&
           !memcmp(buf + 20, "\x80\x01\x00\x20\x02\x00\x04\x28" "Address Family not Supported", 36),
       "ADDRESS-ERROR-CODE: family 2, reserved 0, class 4, number 40, reason");
    ok(stn_msg_parse(&m, buf, n) == 0 &&
           stn_attr_get_address_error(&m, &m.attrs[0], &fam, &code, &reason) == 0 &&
           fam == AF_INET6 && code == 440 && rtc_rd_left(&reason) == 28,
       "ADDRESS-ERROR-CODE decodes");
    a = one(STN_A_ADDRESS_ERROR_CODE, "\x01\x00\x05\x08", 4);
    ok(a && stn_attr_get_address_error(&m, a, &fam, &code, &reason) == 0 && fam == AF_INET &&
           code == 508,
       "ADDRESS-ERROR-CODE IPv4 508, no reason");
    a = one(STN_A_ADDRESS_ERROR_CODE, "\x03\x00\x04\x28", 4);
    is_int(a ? stn_attr_get_address_error(&m, a, &fam, &code, &reason) : 0, RTC_EMSG,
           "ADDRESS-ERROR-CODE family 3 rejected");
    a = one(STN_A_ADDRESS_ERROR_CODE, "\x02\x00\x04", 3);
    is_int(a ? stn_attr_get_address_error(&m, a, &fam, &code, &reason) : 0, RTC_EMSG,
           "ADDRESS-ERROR-CODE of 3 bytes rejected");

    stn_build_init(&b, buf, sizeof buf, STN_ALLOCATE, STN_ERROR, tid);
    stn_build_password_algorithms(&b, algs, 2);
    stn_build_password_algorithm(&b, 0x0002);
    ok(stn_build_finish(&b, &n) == 0 &&
           !memcmp(buf + 20, "\x80\x02\x00\x08\x00\x02\x00\x00\x00\x01\x00\x00"
                             "\x00\x1d\x00\x04\x00\x02\x00\x00", 20),
       "PASSWORD-ALGORITHMS SHA-256, MD5 and PASSWORD-ALGORITHM SHA-256 on the wire");
    ok(stn_msg_parse(&m, buf, n) == 0 &&
           stn_attr_get_password_algorithm(&m, &m.attrs[1], &alg) == 0 && alg == 2,
       "PASSWORD-ALGORITHM decodes");
    a = one(STN_A_PASSWORD_ALGORITHM, "\x00\x03\x00\x02\xaa\xbb\x00\x00", 8);
    ok(a && stn_attr_get_password_algorithm(&m, a, &alg) == 0 && alg == 3,
       "PASSWORD-ALGORITHM with 2 bytes of parameters padded to 4");
    a = one(STN_A_PASSWORD_ALGORITHM, "\x00\x02\x00\x08\x00\x00\x00\x00", 8);
    is_int(a ? stn_attr_get_password_algorithm(&m, a, &alg) : 0, RTC_EMSG,
           "PASSWORD-ALGORITHM whose parameters overrun it rejected");
    a = one(STN_A_PASSWORD_ALGORITHM, "\x00\x02\x00\x00\x00\x00\x00\x00", 8);
    is_int(a ? stn_attr_get_password_algorithm(&m, a, &alg) : 0, RTC_EMSG,
           "PASSWORD-ALGORITHM with trailing bytes rejected");
    a = one(STN_A_PASSWORD_ALGORITHM, "\x00\x02", 2);
    is_int(a ? stn_attr_get_password_algorithm(&m, a, &alg) : 0, RTC_EMSG,
           "PASSWORD-ALGORITHM of 2 bytes rejected");
}

int main(void)
{
    addresses();
    error_code();
    unknown_list();
    scalars();
    rfc8489_8656();
    return done_testing();
}
