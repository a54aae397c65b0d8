/*
 * upstream: connection pools towards the real services. See upstream.h.
 */
#include "upstream.h"

#include "conf.h"
#include "log.h"
#include "stats.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct upstream_pool {
    uv_loop_t *loop;
    struct conf *conf;
    struct route *route;
    struct upconn *idle; /* most recently used first */
    size_t nidle;
    bool dying;
};

struct upstream_stats upstream_stats;

static void up_close(struct upconn *u);

struct upstream_pool *
upstream_pool_new(uv_loop_t *loop, struct conf *conf, struct route *route)
{
    struct upstream_pool *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->loop = loop;
    p->conf = conf;
    p->route = route;
    return p;
}

static void
pool_unlink(struct upconn *u)
{
    struct upstream_pool *p = u->pool;

    if (u->prev)
        u->prev->next = u->next;
    else
        p->idle = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->next = u->prev = NULL;
    p->nidle--;
}

/* Take an idle connection out of the pool and close it. */
static void
pool_drop(struct upconn *u)
{
    pool_unlink(u);
    up_close(u);
}

void
upstream_pool_retire(struct upstream_pool *p)
{
    if (!p)
        return;
    p->dying = true;
    while (p->idle) {
        struct upconn *u = p->idle;
        pool_drop(u);
    }
}

void
upstream_pool_free(struct upstream_pool *p)
{
    if (!p)
        return;
    /* Idle connections hold a reference to the snapshot, so a snapshot that
     * is being freed has none left: retire closed them. */
    free(p);
}

/* --- the half's callbacks, dispatched by state --- */

static void
up_fail(struct upconn *u, int status, const char *reason)
{
    const struct upconn_ops *ops = u->ops;
    void *owner = u->owner;

    if (u->state == UP_CLOSING)
        return;
    up_close(u);
    if (ops && owner)
        ops->on_fail(owner, status, reason);
}

static void
on_h_readable(struct half *h)
{
    struct upconn *u = h->owner;

    if (u->state == UP_IDLE) {
        /* An idle connection must stay silent; anything else (a TLS alert
         * that ends it, stray bytes) means it cannot be used again. */
        const uint8_t *p;
        size_t n;
        int rc = half_data(h, &p, &n);
        if (rc != 0 || n > 0) {
            log_debug(0, "upstream %s: idle pooled connection closed by the peer",
                      u->pool->route->up_hostport);
            pool_drop(u);
        }
        return;
    }
    if (u->state == UP_BUSY && u->ops)
        u->ops->on_readable(u);
}

static void
on_h_ready(struct half *h)
{
    struct upconn *u = h->owner;
    struct route *r = u->pool->route;

    upstream_stats.handshakes++;
    stats_tls_version(1, strcmp(tlsio_version(h->tls), "1.3") == 0 ? 13 : 12);
    if (tlsio_resumed(h->tls))
        upstream_stats.handshakes_resumed_offered++;
    half_timer(h, 0);
    u->state = UP_BUSY;
    log_debug(u->owner_cid, "upstream %s: TLS %s established", r->up_hostport,
              tlsio_version(h->tls));
    if (u->ops)
        u->ops->on_ready(u);
}

static void
on_h_error(struct half *h, int err)
{
    struct upconn *u = h->owner;
    struct route *r = u->pool->route;
    const char *reason;

    switch (u->state) {
    case UP_IDLE:
        pool_drop(u);
        return;
    case UP_HANDSHAKE:
        if (h->tls_err == TLSIO_ERR_RETRY) {
            log_warn(u->owner_cid, "upstream %s (route %s): %s", r->up_hostport, r->name,
                     half_tls_error(h));
            up_fail(u, 0, "upstream TLS handshake failed");
            return;
        }
        upstream_stats.connect_failures++;
        if (h->tls_err == TLSIO_ERR_VERIFY) {
            log_error(u->owner_cid,
                      "upstream %s (route %s): %s; check that upstream_ca_file trusts its issuer "
                      "and that upstream_sni names the certificate's host",
                      r->up_hostport, r->name, half_tls_error(h));
            reason = "upstream certificate verification failed";
        } else if (err == UV_EPROTO) {
            log_error(u->owner_cid,
                      "upstream %s (route %s): TLS handshake failed: %s; the upstream must speak "
                      "TLS 1.2 or 1.3 with an ECDHE AEAD suite",
                      r->up_hostport, r->name, half_tls_error(h));
            reason = "upstream TLS handshake failed";
        } else {
            log_error(u->owner_cid,
                      "upstream %s (route %s): connection lost during the TLS "
                      "handshake: %s",
                      r->up_hostport, r->name, uv_strerror(err));
            reason = "upstream closed the connection during the TLS handshake";
        }
        up_fail(u, 502, reason);
        return;
    case UP_BUSY:
        /* The borrower decides what a lost connection means for its
         * exchange: it hears it as a failure with the status it would send. */
        if (err == UV_EPROTO)
            log_warn(u->owner_cid, "upstream %s: TLS error: %s", r->up_hostport, half_tls_error(h));
        up_fail(u, 502,
                err == UV_EOF ? "upstream closed the connection"
                              : "upstream connection "
                                "failed");
        return;
    default:
        up_fail(u, 502, "upstream connection failed");
        return;
    }
}

static void
on_h_drain(struct half *h)
{
    struct upconn *u = h->owner;

    if (u->state == UP_BUSY && u->ops)
        u->ops->on_drain(u);
}

static void
on_h_timeout(struct half *h)
{
    struct upconn *u = h->owner;
    struct route *r = u->pool->route;

    switch (u->state) {
    case UP_RESOLVING:
    case UP_CONNECTING:
        upstream_stats.connect_failures++;
        log_error(u->owner_cid,
                  "upstream %s (route %s): no connection within upstream_connect_timeout "
                  "(%llums); is the host reachable?",
                  r->up_hostport, r->name, (unsigned long long)r->lim.upstream_connect_timeout);
        up_fail(u, 504, "upstream connect timeout");
        return;
    case UP_HANDSHAKE:
        upstream_stats.connect_failures++;
        log_error(u->owner_cid,
                  "upstream %s (route %s): TLS handshake not done within upstream_tls_timeout "
                  "(%llums)",
                  r->up_hostport, r->name, (unsigned long long)r->lim.upstream_tls_timeout);
        up_fail(u, 504, "upstream TLS handshake timeout");
        return;
    case UP_IDLE:
        pool_drop(u);
        return;
    case UP_BUSY:
        if (u->ops)
            u->ops->on_timeout(u);
        return;
    case UP_CLOSING:
        return;
    }
}

static void
up_free(struct upconn *u)
{
    if (u->ai)
        uv_freeaddrinfo(u->ai);
    upstream_stats.active--;
    /* The connection's reference may be the snapshot's last one, and the
     * snapshot frees the pool: the pool is not touched after this. */
    conf_unref(u->conf);
    free(u);
}

static void
on_h_closed(struct half *h)
{
    struct upconn *u = h->owner;

    if (u->gai_pending)
        return; /* freed when getaddrinfo comes back */
    up_free(u);
}

static const struct half_ops up_half_ops = {
    .on_readable = on_h_readable,
    .on_ready = on_h_ready,
    .on_error = on_h_error,
    .on_drain = on_h_drain,
    .on_timeout = on_h_timeout,
    .on_closed = on_h_closed,
};

/* --- connecting --- */

static void try_connect(struct upconn *u);

static void
on_reopened(struct half *h)
{
    try_connect(h->owner);
}

static void
on_connect(uv_connect_t *req, int status)
{
    struct upconn *u = req->data;
    struct route *r;
    struct tlsio *t;

    if (u->state == UP_CLOSING || status == UV_ECANCELED)
        return;
    r = u->pool->route;
    if (status < 0) {
        if (u->ai_next) {
            /* Try the next address of the name. A fresh handle is needed. */
            log_debug(u->owner_cid, "upstream %s: connect failed (%s), trying the next address",
                      r->up_hostport, uv_strerror(status));
            half_reopen(&u->h, on_reopened);
            return;
        }
        upstream_stats.connect_failures++;
        log_error(u->owner_cid, "upstream %s (route %s): connect failed: %s", r->up_hostport,
                  r->name, uv_strerror(status));
        up_fail(u, 502, "cannot connect to the upstream");
        return;
    }
    uv_tcp_nodelay(&u->h.tcp, 1);
    t = tlsio_client_new(r->up_tls, r->up_sni ? r->up_sni : r->up_host, &u->h.rx, &u->h.tx);
    if (!t) {
        log_error(u->owner_cid, "upstream %s: cannot set up TLS (out of memory?)", r->up_hostport);
        up_fail(u, 502, "cannot set up TLS");
        return;
    }
    u->state = UP_HANDSHAKE;
    half_timer(&u->h, r->lim.upstream_tls_timeout);
    if (half_start_read(&u->h) != 0) {
        tlsio_free(t);
        up_fail(u, 502, "cannot read from the upstream");
        return;
    }
    half_start_tls(&u->h, &tlsio_engine, t);
}

static void
try_connect(struct upconn *u)
{
    struct addrinfo *ai = u->ai_next;
    int rc;

    u->ai_next = ai->ai_next;
    u->state = UP_CONNECTING;
    u->creq.data = u;
    rc = uv_tcp_connect(&u->creq, &u->h.tcp, ai->ai_addr, on_connect);
    if (rc < 0) {
        log_error(u->owner_cid, "upstream %s: connect: %s", u->pool->route->up_hostport,
                  uv_strerror(rc));
        up_fail(u, 502, "cannot connect to the upstream");
    }
}

static void
on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct upconn *u = req->data;
    struct route *r = u->pool->route;

    u->gai_pending = false;
    if (u->state == UP_CLOSING) {
        if (res)
            uv_freeaddrinfo(res);
        if (u->h.closing && u->h.open_handles == 0)
            up_free(u);
        return;
    }
    if (status < 0 || !res) {
        upstream_stats.connect_failures++;
        log_error(u->owner_cid, "upstream %s (route %s): cannot resolve %s: %s", r->up_hostport,
                  r->name, r->up_host, uv_strerror(status));
        up_fail(u, 502, "cannot resolve the upstream host");
        return;
    }
    u->ai = res;
    u->ai_next = res;
    try_connect(u);
}

static struct upconn *
up_new(struct upstream_pool *p, uint64_t cid)
{
    struct route *r = p->route;
    struct upconn *u = calloc(1, sizeof(*u));
    struct addrinfo hints;
    char port[8];
    int rc;

    if (!u)
        return NULL;
    half_init(p->loop, &u->h, &up_half_ops, u);
    u->pool = p;
    u->conf = conf_ref(p->conf);
    u->owner_cid = cid;
    u->state = UP_RESOLVING;
    upstream_stats.active++;
    half_timer(&u->h, r->lim.upstream_connect_timeout);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%u", (unsigned)r->up_port);
    u->gai.data = u;
    u->gai_pending = true;
    rc = uv_getaddrinfo(p->loop, &u->gai, on_resolved, r->up_host, port, &hints);
    if (rc < 0) {
        u->gai_pending = false;
        log_error(cid, "upstream %s: cannot resolve: %s", r->up_hostport, uv_strerror(rc));
        /* Close now; the caller hears of it through on_fail once it has set
         * the ops, so fail asynchronously: leave it to the connect timer. */
    }
    return u;
}

static void
up_close(struct upconn *u)
{
    if (u->state == UP_CLOSING)
        return;
    u->state = UP_CLOSING;
    u->ops = NULL;
    u->owner = NULL;
    if (u->gai_pending)
        uv_cancel((uv_req_t *)&u->gai);
    if (u->h.tls && !u->h.closing)
        u->h.eng->close_notify(u->h.tls);
    half_close(&u->h);
}

struct upconn *
upstream_get(struct upstream_pool *p, const struct upconn_ops *ops, void *owner, uint64_t cid,
             bool fresh)
{
    struct upconn *u = fresh ? NULL : p->idle;

    if (u) {
        pool_unlink(u);
        u->state = UP_BUSY;
        u->reused = true;
        u->owner_cid = cid;
        half_timer(&u->h, 0);
        upstream_stats.pool_hits++;
    } else {
        u = up_new(p, cid);
        if (!u)
            return NULL;
        upstream_stats.pool_misses++;
    }
    u->ops = ops;
    u->owner = owner;
    u->requests++;
    return u;
}

void
upstream_release(struct upconn *u, bool reusable)
{
    struct upstream_pool *p = u->pool;
    struct route *r = p->route;

    u->ops = NULL;
    u->owner = NULL;
    if (u->state != UP_BUSY || !reusable || p->dying || p->nidle >= r->lim.upstream_pool_size ||
        half_tx_len(&u->h) > 0) {
        up_close(u);
        return;
    }
    /* Anything already received past the response means the upstream broke
     * the protocol: do not pool it. */
    const uint8_t *d;
    size_t n;
    if (half_data(&u->h, &d, &n) != 0 || n > 0) {
        up_close(u);
        return;
    }
    half_trim(&u->h);
    u->state = UP_IDLE;
    u->next = p->idle;
    u->prev = NULL;
    if (p->idle)
        p->idle->prev = u;
    p->idle = u;
    p->nidle++;
    half_timer(&u->h, r->lim.upstream_idle_timeout);
    if (half_start_read(&u->h) != 0) {
        pool_drop(u);
    }
}

void
upstream_timer(struct upconn *u, uint64_t ms)
{
    half_timer(&u->h, ms);
}
