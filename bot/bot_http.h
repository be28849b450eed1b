/* bot_http.h - the bot's metrics listener (--metrics-listen, canary mode):
 * GET /metrics and /healthz through common/rtc_http, on the GLib main loop.
 *
 * A small fixed table of connections; each answer closes its connection; a
 * client that has not sent a whole request head within 5 s is dropped, and
 * when the table is full the oldest connection makes room, so an idle
 * client cannot lock the scraper out. Answers are small (a few KB) and
 * written with one non-blocking send; what the socket does not take at once
 * is dropped with the connection. Main thread only. */
#ifndef BOT_HTTP_H
#define BOT_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "rtc_http.h"

typedef struct bot_http bot_http;

/* Listen on `addr_port` ("127.0.0.1:9108", "[::1]:0"). The site is copied;
 * its callbacks run on the main loop. NULL with a reason in err. */
bot_http *bot_http_new(const char *addr_port, const rtc_http_site *site, char *err, size_t errlen);
uint16_t bot_http_port(const bot_http *h);  /* the bound port (for :0) */
void bot_http_free(bot_http *h);            /* NULL is a no-op */

#endif
