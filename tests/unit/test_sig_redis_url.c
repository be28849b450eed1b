/* test_sig_redis_url.c - the --redis URL (sig_conf.c): the accepted forms,
 * the refused ones with a reason, that a refusal never echoes the password,
 * and that the describe form used in logs carries no credentials. */
#include <stdio.h>
#include <string.h>

#include "rtc_err.h"
#include "sig_conf.h"
#include "tap.h"

static void good(const char *s, const char *host, int port, const char *path, int db,
                 const char *user, const char *pass)
{
    sig_redis_url u;
    char err[256] = "";
    int rc = sig_redis_url_parse(s, &u, err, sizeof err);
    ok(rc == 0 && !strcmp(u.host, host) && u.port == port && !strcmp(u.path, path) && u.db == db &&
           !strcmp(u.user, user) && !strcmp(u.pass, pass),
       s);
    if (rc)
        printf("#   refused: %s\n", err);
}

static void bad(const char *s, const char *why)
{
    sig_redis_url u;
    char err[256] = "";
    ok(sig_redis_url_parse(s, &u, err, sizeof err) == RTC_EMSG && err[0] &&
           !strstr(err, "hunter2"),
       why);
}

int main(void)
{
    sig_redis_url u;
    char err[256], text[300];
    char *argv_bad[] = {"tsunagu-signal", "--redis", "redis://:hunter2@host:99999", NULL};
    char *argv_ok[] = {"tsunagu-signal", "--redis", "redis://127.0.0.1:7000/2", NULL};
    sig_conf conf;

    good("redis://127.0.0.1", "127.0.0.1", 6379, "", 0, "", "");
    good("redis://127.0.0.1:7000", "127.0.0.1", 7000, "", 0, "", "");
    good("redis://127.0.0.1:7000/3", "127.0.0.1", 7000, "", 3, "", "");
    good("redis://redis.example.com/", "redis.example.com", 6379, "", 0, "", "");
    good("redis://:s3cret@db:6380/1", "db", 6380, "", 1, "", "s3cret");
    good("redis://alice:p@ss@db", "db", 6379, "", 0, "alice", "p@ss");
    good("redis://[::1]:6390/4", "::1", 6390, "", 4, "", "");
    good("redis://[::1]", "::1", 6379, "", 0, "", "");
    good("unix:///run/redis/redis.sock", "", 6379, "/run/redis/redis.sock", 0, "", "");
    good("unix:///run/redis.sock?db=5", "", 6379, "/run/redis.sock", 5, "", "");

    bad("", "empty");
    bad("http://127.0.0.1", "wrong scheme");
    bad("redis://", "no host");
    bad("redis://:6379", "no host, only a port");
    bad("redis://host:0", "port 0");
    bad("redis://host:65536", "port out of range");
    bad("redis://host:12ab", "port not a number");
    bad("redis://host/db", "database not a number");
    bad("redis://host/-1", "negative database");
    bad("redis://:hunter2@host:99999", "bad port after a password: password not echoed");
    bad("redis://hunter2@host", "credentials without ':'");
    bad("redis://:@host", "empty password");
    bad("redis://[::1", "unterminated [");
    bad("redis://[::1]x", "junk after ]");
    bad("redis://ho st", "space in host");
    bad("unix://relative.sock", "unix socket path must be absolute");
    bad("unix://", "unix: no path");
    bad("unix:///s.sock?x=1", "unix: unknown query");

    /* the log form never shows credentials */
    sig_redis_url_parse("redis://bob:hunter2@db:6380/1", &u, err, sizeof err);
    sig_redis_url_describe(&u, text, sizeof text);
    ok(!strcmp(text, "redis://db:6380/1"), "describe: host, port, db only");
    sig_redis_url_parse("redis://[::1]:6390/4", &u, err, sizeof err);
    sig_redis_url_describe(&u, text, sizeof text);
    ok(!strcmp(text, "redis://[::1]:6390/4"), "describe: IPv6 in brackets");

    /* through the settings table: the error names the key, not the secret */
    is_int(sig_conf_load(&conf, 3, argv_bad, err, sizeof err), RTC_EMSG, "bad --redis stops start-up");
    ok(strstr(err, "redis") && !strstr(err, "hunter2"), "error names the key, hides the password");
    printf("# %s\n", err);
    is_int(sig_conf_load(&conf, 3, argv_ok, err, sizeof err), 0, "good --redis loads");
    ok(conf.redis && !strcmp(conf.redis, "redis://127.0.0.1:7000/2") && conf.redis_node_ttl == 5,
       "redis set, node ttl default 5");
    sig_conf_dispose(&conf);
    return done_testing();
}
