/*
 * listener: the bound sockets, one per distinct listen address, and accept.
 *
 * A listener belongs to the snapshot's route that declared it; it accepts,
 * enforces max_connections (past it the client gets 503, never a crash or
 * an fd exhaustion), and hands each socket to downstream. On EMFILE/ENFILE
 * it stops accepting for a moment instead of spinning.
 */
#ifndef TLSLIFT_LISTENER_H
#define TLSLIFT_LISTENER_H

#include <uv.h>

struct conf;
struct route;
struct listener;

/* Bind and listen on ROUTE's address. NULL with a message in ERR. */
struct listener *listener_new(uv_loop_t *loop, struct conf *conf, struct route *route, char *err,
                              size_t errlen);
/* The same over an inherited, already listening socket FD (systemd socket
 * activation). */
struct listener *listener_new_fd(uv_loop_t *loop, struct conf *conf, struct route *route, int fd,
                                 char *err, size_t errlen);
/* Serve ROUTE's group of snapshot CONF from now on (reload): the socket
 * stays, so no connection is refused while the configuration changes. */
void listener_update(struct listener *l, struct conf *conf, struct route *route);
/* The address the socket is bound to. */
const struct sockaddr_storage *listener_addr(const struct listener *l);
/* Stop accepting and free (the close completes in the loop). */
void listener_free(struct listener *l);

#endif
