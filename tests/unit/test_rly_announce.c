/* test_rly_announce.c - the fleet registry beat of the relay
 * (relay/io/rly_announce.c): its JSON, and the checks that keep every field
 * safe to put in it unescaped. The signaling side reads the same text in
 * test_sig_fleet and the fleet integration tests. */
#include <string.h>

#include "rly_announce.h"
#include "tap.h"

int main(void)
{
    char *urls[] = {"turn:198.51.100.7:3478", "turn:198.51.100.7:3478?transport=tcp"};
    rly_announce_beat b = {.name = "r1", .generation = "v2", .urls = urls, .n_urls = 2,
                           .allocations = 7, .beat = 3, .cpu = 0.25, .draining = true,
                           .loss_sum = 0.16, .loss_count = 2, .jitter_sum = 0.004,
                           .jitter_count = 2};
    char out[1024], err[128], tiny[40];
    int n = rly_announce_json(&b, out, sizeof out);
    ok(n > 0 && (size_t)n == strlen(out), "beat fits");
    ok(!strcmp(out, "{\"name\":\"r1\",\"generation\":\"v2\",\"urls\":[\"turn:198.51.100.7:3478\","
                    "\"turn:198.51.100.7:3478?transport=tcp\"],\"allocations\":7,\"cpu\":0.250,"
                    "\"draining\":true,\"beat\":3,\"loss_sum\":0.160000,\"loss_count\":2,"
                    "\"jitter_sum\":0.004000,\"jitter_count\":2}"),
       "beat text");
    is_int(rly_announce_json(&b, tiny, sizeof tiny), -1, "too small: -1");
    is_int(rly_announce_check_field("turn:203.0.113.1:3478", err, sizeof err), 0, "a URL");
    ok(rly_announce_check_field("a\"b", err, sizeof err), "quote refused");
    ok(rly_announce_check_field("a\\b", err, sizeof err), "backslash refused");
    ok(rly_announce_check_field("a\nb", err, sizeof err), "newline refused");
    ok(rly_announce_check_field("", err, sizeof err), "empty refused");
    is_int(rly_announce_check_url("redis://127.0.0.1:6379/0", err, sizeof err), 0, "redis URL");
    is_int(rly_announce_check_url("redis://:pw@[2001:db8::1]:7000/3", err, sizeof err), 0,
           "password and IPv6");
    ok(rly_announce_check_url("http://x", err, sizeof err), "not redis://");
    ok(rly_announce_check_url("redis://h:99999", err, sizeof err), "bad port");
    ok(rly_announce_check_url("redis://:@h", err, sizeof err), "empty password");
    ok(!strstr(err, "pw"), "no password in errors");
    return done_testing();
}
