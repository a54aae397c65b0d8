/*
 * listener: bound sockets and accept. See listener.h.
 */
#include "listener.h"

#include "conf.h"
#include "downstream.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>

struct listener {
    uv_tcp_t tcp;
    uv_loop_t *loop;
    struct conf *conf;
    struct route *route;
    struct sockaddr_storage addr;
    int open_handles;
};

static void on_connection(uv_stream_t *server, int status);

static void
on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    struct downstream *ds;

    if (status < 0) {
        log_warn(0, "route %s: accept: %s", l->route->name, uv_strerror(status));
        return;
    }
    ds = downstream_alloc(l->loop, l->conf, l->route);
    if (!ds) {
        log_error(0, "route %s: out of memory accepting a connection", l->route->name);
        return;
    }
    int rc = uv_accept(server, downstream_stream(ds));
    if (rc < 0) {
        downstream_abort(ds);
        /* libuv itself keeps a spare descriptor for EMFILE, accepts and
         * closes the pending connection, so the loop does not spin. */
        if (rc == UV_EMFILE || rc == UV_ENFILE)
            log_error(0,
                      "route %s: out of file descriptors (%s); raise LimitNOFILE or lower "
                      "max_connections",
                      l->route->name, uv_strerror(rc));
        return;
    }
    downstream_start(ds, downstream_stats.active > l->conf->max_connections);
}

/* A listener on socket FD (already listening, from systemd) or, with FD
 * -1, on a socket bound here to ROUTE's address. */
static struct listener *
listener_open(uv_loop_t *loop, struct conf *conf, struct route *route, int fd, char *err,
              size_t errlen)
{
    struct listener *l = calloc(1, sizeof(*l));
    int rc;

    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->loop = loop;
    l->conf = conf_ref(conf);
    l->route = route;
    l->addr = route->listen_addr;
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    l->open_handles = 1;
    if (fd >= 0)
        rc = uv_tcp_open(&l->tcp, fd);
    else
        rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&route->listen_addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
    if (rc < 0) {
        if (fd >= 0)
            snprintf(err, errlen, "route %s: cannot use the socket passed by systemd (fd %d): %s",
                     route->name, fd, uv_strerror(rc));
        else
            snprintf(err, errlen, "route %s: cannot listen on %s: %s%s", route->name, route->listen,
                     uv_strerror(rc),
                     rc == UV_EADDRINUSE ? " (another process holds the port)"
                     : rc == UV_EACCES   ? " (ports below 1024 need CAP_NET_BIND_SERVICE or "
                                           "socket activation)"
                                         : "");
        listener_free(l);
        return NULL;
    }
    return l;
}

struct listener *
listener_new(uv_loop_t *loop, struct conf *conf, struct route *route, char *err, size_t errlen)
{
    return listener_open(loop, conf, route, -1, err, errlen);
}

struct listener *
listener_new_fd(uv_loop_t *loop, struct conf *conf, struct route *route, int fd, char *err,
                size_t errlen)
{
    return listener_open(loop, conf, route, fd, err, errlen);
}

void
listener_update(struct listener *l, struct conf *conf, struct route *route)
{
    conf_ref(conf);
    conf_unref(l->conf);
    l->conf = conf;
    l->route = route;
}

const struct sockaddr_storage *
listener_addr(const struct listener *l)
{
    return &l->addr;
}

static void
on_closed(uv_handle_t *h)
{
    struct listener *l = h->data;

    if (--l->open_handles > 0)
        return;
    conf_unref(l->conf);
    free(l);
}

void
listener_free(struct listener *l)
{
    if (!l)
        return;
    uv_close((uv_handle_t *)&l->tcp, on_closed);
}
