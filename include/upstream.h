/*
 * upstream: per-route pools of keep-alive TLS connections to the real service.
 *
 * upstream_get lends a connection: an idle one from the route's pool when
 * there is one (after checking it is still open), else a new one that
 * resolves, connects and handshakes (offering the route's last TLS session
 * for resumption). The borrower talks to it through the embedded half and
 * hears about it through struct upconn_ops. upstream_release gives it back:
 * into the pool when the exchange left it clean, else it is closed.
 * While idle in the pool a connection keeps reading, so an upstream that
 * closes it (or sends anything) takes it out of the pool at once.
 * Knows nothing about the client side.
 */
#ifndef TLSLIFT_UPSTREAM_H
#define TLSLIFT_UPSTREAM_H

#include "half.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct route;
struct conf;
struct upconn;

struct upconn_ops {
    void (*on_ready)(struct upconn *u); /* connected and TLS done: may send */
    void (*on_readable)(struct upconn *u);
    /* Failed: STATUS is what the client should see (502 or 504; 0 when
     * nothing was sent and a new connection is worth one try), REASON a
     * string literal (it is kept: access log, /metrics errors by reason) and
     * short text; the detail is logged here already. The connection is
     * closing already (so only the owner is passed): drop the pointer. */
    void (*on_fail)(void *owner, int status, const char *reason);
    void (*on_drain)(struct upconn *u);
    void (*on_timeout)(struct upconn *u); /* the borrower's timer (response) */
};

enum upconn_state {
    UP_RESOLVING,
    UP_CONNECTING,
    UP_HANDSHAKE,
    UP_BUSY, /* lent out and ready */
    UP_IDLE, /* in the pool */
    UP_CLOSING,
};

struct upconn {
    struct half h;
    enum upconn_state state;
    struct upstream_pool *pool;
    struct conf *conf; /* reference held while the connection lives */
    const struct upconn_ops *ops;
    void *owner;
    uint64_t owner_cid; /* for log lines */
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    struct addrinfo *ai, *ai_next;
    bool gai_pending;
    bool reused;                /* lent from the pool */
    struct upconn *next, *prev; /* pool list */
    uint64_t requests;
};

struct upstream_pool;

struct upstream_stats {
    uint64_t pool_hits, pool_misses, handshakes, handshakes_resumed_offered, connect_failures;
    uint64_t active;
};
extern struct upstream_stats upstream_stats;

/* A pool for ROUTE of snapshot CONF (which must outlive it). */
struct upstream_pool *upstream_pool_new(uv_loop_t *loop, struct conf *conf, struct route *route);
/* The snapshot is being replaced (reload, shutdown): close the idle
 * connections now and every lent one when it comes back. */
void upstream_pool_retire(struct upstream_pool *p);
/* Free the pool; its snapshot is going away, so nothing is lent (each
 * connection holds a reference to the snapshot). */
void upstream_pool_free(struct upstream_pool *p);

/* Lend a connection (a new one when FRESH); NULL when out of memory. */
struct upconn *upstream_get(struct upstream_pool *p, const struct upconn_ops *ops, void *owner,
                            uint64_t cid, bool fresh);
/* Give it back. REUSABLE: the exchange ended cleanly and it may be pooled. */
void upstream_release(struct upconn *u, bool reusable);
/* Arm the borrower's timer (0 stops it). */
void upstream_timer(struct upconn *u, uint64_t ms);

#endif
