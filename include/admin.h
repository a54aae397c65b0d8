/*
 * admin: the operator's HTTP endpoint (admin_listen in [tlslift]).
 *
 *   GET /healthz   200 "ok" while the listeners are up, 503 while stopping
 *   GET /metrics   Prometheus text format (see stats.h)
 *
 * One request per connection, answered and closed; heads over 4 KiB and
 * clients slower than 5 s are dropped. Loopback by design: the address is
 * checked like a route's listen.
 */
#ifndef TLSLIFT_ADMIN_H
#define TLSLIFT_ADMIN_H

#include <stdbool.h>
#include <sys/socket.h>
#include <uv.h>

struct admin;

struct admin *admin_new(uv_loop_t *loop, const struct sockaddr_storage *addr, char *err,
                        size_t errlen);
void admin_free(struct admin *a);
/* Listeners up (true) or stopping (false): what /healthz says. */
void admin_set_healthy(bool up);

#endif
