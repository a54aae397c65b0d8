/*
 * downstream: a client connection and the relay of its exchanges.
 * See downstream.h for the shape and the back-pressure rule.
 */
#include "downstream.h"

#include "conf.h"
#include "half.h"
#include "hello.h"
#include "http.h"
#include "legacytls.h"
#include "log.h"
#include "stats.h"
#include "upstream.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DS_MAGIC  0x7d5c0a11u
#define LINGER_MS 2000
/* A request sent on a pooled connection is kept (up to this size) until the
 * response starts, so that it can be sent again on a new connection when
 * the pooled one turns out to have been closed by the upstream. */
#define REPLAY_MAX (64 * 1024)

enum req_state { RQ_IDLE, RQ_BODY, RQ_DONE };
enum resp_state { RS_NONE, RS_WAIT, RS_BODY, RS_DONE };
enum ctimer { CT_NONE, CT_IDLE, CT_HEADER, CT_BODY };

struct downstream {
    uint32_t magic;
    struct half h; /* the client side */
    struct conf *conf;
    struct route *route;
    uint64_t id;
    struct http_parser *req, *resp;
    struct upconn *up; /* the upstream side, while an exchange runs */
    enum req_state rq;
    enum resp_state rs;
    enum ctimer ct;
    enum http_frame frame;
    bool up_ready;      /* up is connected and its TLS is done */
    bool req_chunked;   /* re-chunk the request body upstream */
    bool keep_alive;    /* the client connection stays open after this exchange */
    bool http10;        /* the client speaks HTTP/1.0 */
    bool head_req;      /* the request is HEAD: its response has no body */
    bool client_eof;    /* the client closed its sending side */
    bool client_paused; /* back-pressure: the upstream queue is full */
    bool up_paused;     /* back-pressure: the client queue is full */
    bool interim;       /* the response being parsed is a 1xx */
    bool up_keep;       /* the upstream connection may be pooled after this */
    bool resp_bytes;    /* the upstream sent something for this exchange */
    bool replay_ok;     /* replay holds every request byte sent so far */
    bool retried;
    bool closing;
    bool served_one;                /* a request was answered on this connection */
    bool peek;                      /* TLS listener: look at the first bytes before anything */
    bool sni_routed;                /* the route was chosen by SNI: Host does not change it */
    struct downstream *next, *prev; /* all live connections */
    struct bufq pending;            /* request bytes waiting for the upstream handshake */
    struct sbuf replay;
    struct sbuf sb; /* scratch for heads */
    int fail_status;
    const char *fail_reason;
    /* For the access log. */
    uint64_t in, out, t0, t_up, t_up_head;
    int status;
    const char *reason;
    bool reused;
    const char *tls;
    char method[16], path[200], client[64];
};

struct downstream_stats downstream_stats;
static uint64_t next_id;
static struct downstream *all;
static bool shutting_down;
static struct conf *current; /* not a reference: main holds one */

void
downstream_set_conf(struct conf *conf)
{
    current = conf;
}

/* A reload happened since this connection's snapshot: take the new
 * snapshot's route for the same listen address (and the same server_name
 * when SNI chose it). */
static void
migrate(struct downstream *ds)
{
    struct route *nr = NULL;

    if (!current || ds->conf == current)
        return;
    for (size_t i = 0; i < current->nroutes && !nr; i++) {
        struct route *r = &current->routes[i];
        if (memcmp(&r->listen_addr, &ds->route->listen_addr, sizeof(r->listen_addr)) == 0)
            nr = r->group[0];
    }
    if (!nr)
        return; /* the address is gone: finish on the old snapshot */
    if (ds->sni_routed && ds->route->server_name) {
        struct route *s = conf_route_by_name(nr->group, nr->ngroup, ds->route->server_name,
                                             strlen(ds->route->server_name));
        if (!s)
            return;
        nr = s;
    }
    conf_ref(current);
    conf_unref(ds->conf);
    ds->conf = current;
    ds->route = nr;
}

static void client_process(struct downstream *ds);
static void up_process(struct downstream *ds);
static void ds_close(struct downstream *ds, const char *reason);

static struct downstream *
ds_of(struct half *h)
{
    struct downstream *ds = h->owner;
    assert(ds->magic == DS_MAGIC);
    return ds;
}

/* --- access log --- */

/* The reason as one logfmt token: "upstream response timeout" becomes
 * upstream-response-timeout, so a line splits on spaces. */
static const char *
reason_token(const char *reason, char *buf, size_t len)
{
    size_t o = 0;

    if (!reason)
        return "-";
    for (const char *s = reason; *s && o + 1 < len; s++) {
        char c = *s;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_')
            buf[o++] = c;
        else if (c >= 'A' && c <= 'Z')
            buf[o++] = (char)(c - 'A' + 'a');
        else if (o > 0 && buf[o - 1] != '-')
            buf[o++] = '-';
    }
    while (o > 0 && buf[o - 1] == '-')
        o--;
    buf[o] = 0;
    return o ? buf : "-";
}

static void
access_line(struct downstream *ds)
{
    char rbuf[96];
    uint64_t end = uv_hrtime();
    double total = ds->t0 ? (double)(end - ds->t0) / 1e6 : 0;
    double upt = ds->t_up && ds->t_up_head ? (double)(ds->t_up_head - ds->t_up) / 1e6 : 0;

    struct route_stats *rs = ds->route->stats;
    if (rs) {
        rs->requests[ds->status >= 100 && ds->status < 600 ? ds->status / 100 : 0]++;
        rs->bytes_in += ds->in;
        rs->bytes_out += ds->out;
        if (upt > 0)
            stats_observe(&rs->upstream, upt / 1000);
        stats_observe(&rs->total, total / 1000);
    }
    if (ds->reason)
        stats_error(ds->reason);
    log_access("route=%s client=%s method=%s path=%s status=%d in=%llu out=%llu upstream_ms=%.1f "
               "total_ms=%.1f tls=%s reused=%d reason=%s",
               ds->route->name, ds->client, ds->method[0] ? ds->method : "-",
               ds->path[0] ? ds->path : "-", ds->status, (unsigned long long)ds->in,
               (unsigned long long)ds->out, upt, total, ds->tls ? ds->tls : "-", ds->reused ? 1 : 0,
               reason_token(ds->reason, rbuf, sizeof(rbuf)));
}

static void
exchange_reset(struct downstream *ds)
{
    ds->rq = RQ_IDLE;
    ds->rs = RS_NONE;
    ds->frame = FRAME_NONE;
    ds->up_ready = ds->req_chunked = ds->head_req = ds->interim = false;
    ds->up_keep = ds->resp_bytes = ds->replay_ok = ds->retried = false;
    ds->fail_status = 0;
    ds->fail_reason = NULL;
    ds->in = ds->out = ds->t0 = ds->t_up = ds->t_up_head = 0;
    ds->status = 0;
    ds->reason = NULL;
    ds->reused = false;
    ds->tls = NULL;
    ds->method[0] = ds->path[0] = 0;
    ds->replay.len = 0;
    bufq_clear(&ds->pending);
}

/* --- sending --- */

static size_t
up_queue_len(struct downstream *ds)
{
    if (!ds->up)
        return 0;
    return ds->up_ready ? half_tx_len(&ds->up->h) : bufq_len(&ds->pending);
}

static int
up_send(struct downstream *ds, const void *p, size_t n)
{
    if (ds->replay_ok) {
        if (ds->replay.len + n > REPLAY_MAX || sbuf_add(&ds->replay, p, n)) {
            ds->replay_ok = false;
            sbuf_free(&ds->replay);
        }
    }
    if (!ds->up)
        return -1;
    if (ds->up_ready) {
        int rc = half_send(&ds->up->h, p, n);
        if (rc)
            log_warn(ds->id, "upstream %s: cannot send: %s (%s)", ds->route->up_hostport,
                     uv_strerror(rc), half_tls_error(&ds->up->h));
        return rc;
    }
    return bufq_push(&ds->pending, p, n);
}

static void
up_flush(struct downstream *ds)
{
    if (ds->up && ds->up_ready)
        half_flush(&ds->up->h);
}

static int
client_send(struct downstream *ds, const void *p, size_t n)
{
    ds->out += n;
    return half_send(&ds->h, p, n);
}

/* --- teardown --- */

static void
release_up(struct downstream *ds, bool reusable)
{
    if (!ds->up)
        return;
    upstream_release(ds->up, reusable);
    ds->up = NULL;
    ds->up_ready = false;
}

/* Close after a complete response: a TLS client gets close_notify first, so
 * it can tell the end of a close-delimited body from a cut connection (never
 * sent by ds_close, where the response may be cut). */
static void
close_after_response(struct downstream *ds)
{
    const uint8_t *p;
    size_t n;
    /* Linger only when the client may still be sending: a request not read
     * to its end, or bytes of a next one. */
    bool quiet = ds->rq == RQ_DONE && half_data(&ds->h, &p, &n) == 0 && n == 0;

    if (ds->h.tls && !ds->h.handshaking && !ds->h.closing && !ds->h.shut) {
        half_flush(&ds->h); /* the queued plaintext goes into records before the alert */
        ds->h.eng->close_notify(ds->h.tls);
    }
    half_close_gracefully(&ds->h, quiet ? 0 : LINGER_MS);
}

/* Close without an answer of our own: for a client that left, or a response
 * that cannot be finished. What is queued for the client still goes out
 * (a cut response then ends short of its Content-Length, which the client
 * sees), then FIN. */
static void
ds_close(struct downstream *ds, const char *reason)
{
    if (ds->closing)
        return;
    if (ds->rq != RQ_IDLE || ds->rs != RS_NONE) {
        if (!ds->reason)
            ds->reason = reason;
        access_line(ds);
    }
    release_up(ds, false);
    ds->closing = true;
    half_close_gracefully(&ds->h, LINGER_MS);
}

/* Answer STATUS with a one-line reason and close, if no response byte was
 * sent yet; else close. */
static void
ds_fail(struct downstream *ds, int status, const char *reason)
{
    if (ds->closing)
        return;
    if (ds->rs == RS_BODY || ds->rs == RS_DONE) {
        log_warn(ds->id, "route %s: response cut short: %s", ds->route->name, reason);
        ds_close(ds, reason);
        return;
    }
    release_up(ds, false);
    ds->status = status;
    ds->reason = reason;
    log_info(ds->id, "route %s: answering %d: %s", ds->route->name, status, reason);
    ds->sb.len = 0;
    if (http_build_error(status, reason, &ds->sb) == 0)
        client_send(ds, ds->sb.p, ds->sb.len);
    access_line(ds);
    ds->closing = true;
    close_after_response(ds);
}

static void
finish_exchange(struct downstream *ds)
{
    bool keep;

    ds->served_one = true;
    downstream_stats.requests++;
    access_line(ds);
    release_up(ds, ds->up_keep && ds->rq == RQ_DONE);
    keep = ds->keep_alive && ds->rq == RQ_DONE && !ds->client_eof && !shutting_down;
    if (!keep) {
        ds->closing = true;
        close_after_response(ds);
        return;
    }
    exchange_reset(ds);
    half_flush(&ds->h);
    http_resume(ds->req);
    ds->ct = CT_NONE;
    client_process(ds);
    if (!ds->closing && ds->rq == RQ_IDLE && !http_in_message(ds->req)) {
        /* Idle keep-alive: hold no head buffers while waiting (1.6 KiB per
         * idle connection instead of 5.5 KiB, measured). */
        http_parser_trim(ds->req);
        http_parser_trim(ds->resp);
        sbuf_free(&ds->sb);
        sbuf_free(&ds->replay);
    }
}

/* --- client timer --- */

static void
client_timer(struct downstream *ds, bool progress)
{
    const struct limits *l = &ds->route->lim;
    enum ctimer want;
    uint64_t ms = 0;

    if (ds->closing)
        return;
    if (ds->rq == RQ_IDLE) {
        if (http_head_started(ds->req)) {
            want = CT_HEADER;
            ms = l->client_header_timeout;
        } else {
            want = CT_IDLE;
            /* The first request must come as fast as a head; later ones may
             * idle for idle_timeout. */
            ms = ds->served_one ? l->idle_timeout : l->client_header_timeout;
        }
    } else if (ds->rq == RQ_BODY && !ds->client_paused) {
        want = CT_BODY;
        ms = l->client_body_timeout;
    } else {
        want = CT_NONE;
    }
    if (want == ds->ct && !(want == CT_BODY && progress))
        return;
    ds->ct = want;
    half_timer(&ds->h, ms);
}

/* --- the upstream side --- */

static void
up_response_timer(struct downstream *ds)
{
    if (ds->up && ds->up_ready && ds->rq == RQ_DONE && ds->rs != RS_DONE)
        upstream_timer(ds->up, ds->route->lim.upstream_response_timeout);
}

static void
on_up_ready(struct upconn *u)
{
    struct downstream *ds = u->owner;
    struct iovec iov[16];
    int n;

    ds->up_ready = true;
    ds->tls = tlsio_version(u->h.tls);
    while ((n = bufq_peek(&ds->pending, iov, 16)) > 0) {
        size_t total = 0;
        for (int i = 0; i < n; i++) {
            if (half_send(&u->h, iov[i].iov_base, iov[i].iov_len)) {
                ds_fail(ds, 502, "cannot send to the upstream");
                return;
            }
            total += iov[i].iov_len;
        }
        bufq_consume(&ds->pending, total);
    }
    half_flush(&u->h);
    up_response_timer(ds);
    if (ds->client_paused && up_queue_len(ds) <= BUFQ_LOW) {
        ds->client_paused = false;
        client_process(ds);
    }
}

static void
on_up_readable(struct upconn *u)
{
    up_process(u->owner);
}

static void retry_exchange(struct downstream *ds);
static int borrow_up(struct downstream *ds, bool fresh);

static void
on_up_fail(void *owner, int status, const char *reason)
{
    struct downstream *ds = owner;

    ds->up = NULL;
    ds->up_ready = false;
    if (ds->closing)
        return;
    if (ds->rs == RS_BODY) {
        /* A close-delimited response ends here. */
        if (http_finish(ds->resp) == 0 && ds->rs == RS_DONE) {
            ds->up_keep = false;
            half_flush(&ds->h);
            finish_exchange(ds);
            return;
        }
        ds_close(ds, "upstream closed the connection mid-response");
        return;
    }
    if (ds->rs == RS_WAIT && !ds->resp_bytes && ds->reused && ds->replay_ok && !ds->retried) {
        retry_exchange(ds);
        return;
    }
    if (status == 0 && !ds->retried && ds->rs == RS_WAIT) {
        /* Failed before the handshake ended: the request is still whole in
         * `pending`; a new connection gets it. */
        ds->retried = true;
        if (borrow_up(ds, true) == 0)
            return;
    }
    ds_fail(ds, status ? status : 502, reason);
}

static void
on_up_drain(struct upconn *u)
{
    struct downstream *ds = u->owner;

    if (ds->client_paused && up_queue_len(ds) <= BUFQ_LOW) {
        ds->client_paused = false;
        client_process(ds);
    }
}

static void
on_up_timeout(struct upconn *u)
{
    struct downstream *ds = u->owner;
    const struct route *r = ds->route;

    if (ds->rs == RS_WAIT) {
        log_error(ds->id,
                  "upstream %s (route %s): no response within upstream_response_timeout (%llums)",
                  r->up_hostport, r->name, (unsigned long long)r->lim.upstream_response_timeout);
        ds_fail(ds, 504, "upstream response timeout");
    } else {
        log_warn(ds->id, "upstream %s (route %s): response stalled for %llums, closing",
                 r->up_hostport, r->name, (unsigned long long)r->lim.upstream_response_timeout);
        ds_close(ds, "upstream response stalled");
    }
}

static const struct upconn_ops ds_up_ops = {
    .on_ready = on_up_ready,
    .on_readable = on_up_readable,
    .on_fail = on_up_fail,
    .on_drain = on_up_drain,
    .on_timeout = on_up_timeout,
};

static int
borrow_up(struct downstream *ds, bool fresh)
{
    ds->up = upstream_get(ds->route->pool, &ds_up_ops, ds, ds->id, fresh);
    if (!ds->up)
        return -1;
    ds->reused = ds->up->reused;
    log_debug(ds->id, "upstream %s: %s connection", ds->route->up_hostport,
              ds->reused ? "pooled" : "new");
    ds->up_ready = ds->up->state == UP_BUSY;
    if (ds->up_ready)
        ds->tls = tlsio_version(ds->up->h.tls);
    return 0;
}

/* The pooled connection was dead: send what we sent again, once, on a new
 * connection. */
static void
retry_exchange(struct downstream *ds)
{
    log_info(ds->id,
             "upstream %s: pooled connection was closed by the upstream; retrying on a "
             "new connection",
             ds->route->up_hostport);
    ds->retried = true;
    if (borrow_up(ds, true)) {
        ds_fail(ds, 503, "out of memory");
        return;
    }
    ds->reused = false;
    ds->replay_ok = false;
    bufq_clear(&ds->pending);
    if (up_send(ds, ds->replay.p, ds->replay.len)) {
        ds_fail(ds, 502, "cannot send to the upstream");
        return;
    }
    sbuf_free(&ds->replay);
    up_flush(ds);
}

static void
up_process(struct downstream *ds)
{
    const uint8_t *p;
    size_t n, used;
    int rc;

    while (!ds->closing && ds->up && ds->rs != RS_DONE) {
        if (half_tx_len(&ds->h) > BUFQ_HIGH) {
            half_flush(&ds->h); /* see client_process */
            if (half_tx_len(&ds->h) > BUFQ_HIGH) {
                half_stop_read(&ds->up->h);
                ds->up_paused = true;
                break;
            }
        }
        rc = half_data(&ds->up->h, &p, &n);
        if (rc == UV_EOF) {
            /* close_notify: the end of a close-delimited response, or an
             * upstream that gave up; the same as a closed socket. */
            release_up(ds, false);
            on_up_fail(ds, 502, "upstream closed the connection");
            return;
        }
        if (rc < 0) {
            log_warn(ds->id, "upstream %s: TLS error: %s", ds->route->up_hostport,
                     half_tls_error(&ds->up->h));
            release_up(ds, false);
            ds_fail(ds, 502, "upstream TLS error");
            return;
        }
        if (n == 0)
            break;
        ds->resp_bytes = true;
        rc = http_feed(ds->resp, p, n, &used);
        if (ds->up)
            half_consume(&ds->up->h, used);
        if (rc == HTTP_ERROR) {
            const char *reason;
            int st = http_error(ds->resp, &reason);
            if (ds->fail_status) {
                st = ds->fail_status;
                reason = ds->fail_reason;
            }
            log_warn(ds->id, "upstream %s: bad response: %s", ds->route->up_hostport, reason);
            ds_fail(ds, st == 400 ? 502 : st, reason);
            return;
        }
        if (rc == HTTP_PAUSED) {
            if (ds->interim) {
                ds->interim = false;
                http_resume(ds->resp);
                continue;
            }
            break;
        }
    }
    if (ds->closing)
        return;
    half_flush(&ds->h);
    if (ds->rs == RS_DONE) {
        finish_exchange(ds);
        return;
    }
    if (ds->up) {
        if (ds->up_ready && ds->rq == RQ_DONE)
            upstream_timer(ds->up, ds->route->lim.upstream_response_timeout);
        half_trim(&ds->up->h);
    }
}

/* --- response callbacks --- */

static int
on_resp_head(void *user, struct http_head *h)
{
    struct downstream *ds = user;
    bool no_body;

    if (h->status < 200) {
        /* 100 Continue was answered by us already; other 1xx are optional
         * and dropped. 101 cannot happen: Upgrade is never forwarded. */
        if (h->status == 101) {
            ds->fail_status = 502;
            ds->fail_reason = "upstream switched protocols";
            return -1;
        }
        ds->interim = true;
        return 0;
    }
    ds->t_up_head = uv_hrtime();
    no_body = ds->head_req || h->status == 204 || h->status == 304;
    if (no_body)
        ds->frame = FRAME_NONE;
    else if (h->has_length)
        ds->frame = FRAME_LENGTH;
    else
        ds->frame = ds->http10 ? FRAME_CLOSE : FRAME_CHUNKED;
    ds->keep_alive = ds->keep_alive && ds->frame != FRAME_CLOSE && !ds->client_eof;
    /* llhttp's keep-alive verdict includes "no framing means close". */
    ds->up_keep = h->keep_alive;
    ds->status = h->status;
    ds->sb.len = 0;
    if (http_build_response(h, ds->frame, ds->keep_alive, ds->http10, &ds->sb) ||
        client_send(ds, ds->sb.p, ds->sb.len)) {
        ds->fail_status = 502;
        ds->fail_reason = "out of memory";
        return -1;
    }
    ds->rs = RS_BODY;
    return no_body ? 1 : 0;
}

/* Send N bytes through SEND, as one chunk when CHUNKED. */
static int
send_body(struct downstream *ds, int (*send)(struct downstream *, const void *, size_t),
          bool chunked, const uint8_t *p, size_t n)
{
    char line[24];

    if (!chunked)
        return send(ds, p, n) ? -1 : 0;
    int l = snprintf(line, sizeof(line), "%zx\r\n", n);
    if (send(ds, line, (size_t)l) || send(ds, p, n) || send(ds, "\r\n", 2))
        return -1;
    return 0;
}

static int
on_resp_body(void *user, const uint8_t *p, size_t n)
{
    struct downstream *ds = user;

    return send_body(ds, client_send, ds->frame == FRAME_CHUNKED, p, n);
}

static int
on_resp_done(void *user)
{
    struct downstream *ds = user;

    if (ds->interim)
        return 0;
    if (ds->frame == FRAME_CHUNKED && client_send(ds, "0\r\n\r\n", 5))
        return -1;
    ds->rs = RS_DONE;
    return 0;
}

static const struct http_cb resp_cb = {on_resp_head, on_resp_body, on_resp_done};

/* --- request callbacks --- */

static int
on_req_head(void *user, struct http_head *h)
{
    struct downstream *ds = user;
    struct route *r;
    bool has_body;

    migrate(ds);
    if (ds->route->ngroup > 1 && !ds->sni_routed) {
        const char *hn;
        size_t hl;
        struct route *byhost = http_host(h, &hn, &hl) == 0
                                   ? conf_route_by_name(ds->route->group, ds->route->ngroup, hn, hl)
                                   : NULL;
        ds->route = byhost ? byhost : ds->route->group[0];
    }
    /* Only now: migrate() may have dropped the snapshot ds->route was in. */
    r = ds->route;
    snprintf(ds->method, sizeof(ds->method), "%s", http_method_name(h));
    http_log_path(h, ds->path, sizeof(ds->path));
    ds->http10 = h->major == 1 && h->minor == 0;
    ds->keep_alive = h->keep_alive;
    ds->head_req = strcmp(ds->method, "HEAD") == 0;
    ds->req_chunked = h->chunked;
    has_body = h->chunked || (h->has_length && h->length > 0);
    log_debug(ds->id, "request %s %s (HTTP/1.%d, %s)", ds->method, ds->path, h->minor,
              h->chunked ? "chunked body"
              : has_body ? "body with length"
                         : "no body");

    ds->sb.len = 0;
    if (http_build_request(h, r->up_hostport, r->host_header == HOST_HEADER_PRESERVE, &ds->sb)) {
        ds->fail_status = 503;
        ds->fail_reason = "out of memory";
        return -1;
    }
    ds->t_up = uv_hrtime();
    if (borrow_up(ds, false)) {
        ds->fail_status = 503;
        ds->fail_reason = "out of memory";
        return -1;
    }
    ds->replay_ok = ds->reused;
    ds->replay.len = 0;
    if (up_send(ds, ds->sb.p, ds->sb.len)) {
        ds->fail_status = 502;
        ds->fail_reason = "cannot send to the upstream";
        return -1;
    }
    if (h->expect_continue && has_body && !ds->http10) {
        /* .NET waits ~350 ms for this before sending the body; answer now
         * (the upstream never sees the Expect). */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        half_send(&ds->h, cont, sizeof(cont) - 1);
        half_flush(&ds->h);
    }
    ds->rq = RQ_BODY;
    ds->rs = RS_WAIT;
    struct http_limits lim = {
        .max_line = 65536,
        .max_head = r->lim.max_header_size * 4 > 65536 ? r->lim.max_header_size * 4 : 65536,
        .max_headers = r->lim.max_headers * 2 > 256 ? r->lim.max_headers * 2 : 256,
    };
    if (ds->resp)
        http_parser_reset(ds->resp, &lim);
    else if (!(ds->resp = http_parser_new(HTTP_KIND_RESPONSE, &lim, &resp_cb, ds))) {
        ds->fail_status = 503;
        ds->fail_reason = "out of memory";
        return -1;
    }
    http_expect_no_body(ds->resp, ds->head_req);
    return 0;
}

static int
on_req_body(void *user, const uint8_t *p, size_t n)
{
    struct downstream *ds = user;

    return send_body(ds, up_send, ds->req_chunked, p, n);
}

static int
on_req_done(void *user)
{
    struct downstream *ds = user;

    if (ds->req_chunked && up_send(ds, "0\r\n\r\n", 5))
        return -1;
    ds->rq = RQ_DONE;
    return 0;
}

static const struct http_cb req_cb = {on_req_head, on_req_body, on_req_done};

/* --- TLS from clients: the dispatch --- */

/* A fatal alert in a TLS 1.0 record, for clients we refuse before any
 * engine runs: 70 protocol_version, 40 handshake_failure. */
static void
send_alert(struct downstream *ds, uint8_t desc)
{
    const uint8_t rec[7] = {21, 3, 1, 0, 2, 2, desc};

    bufq_push(&ds->h.tx, rec, sizeof(rec));
    ds->closing = true;
    half_close_gracefully(&ds->h, LINGER_MS);
}

static const char *
version_name(int v)
{
    switch (v) {
    case 10:
        return "1.0";
    case 11:
        return "1.1";
    case 12:
        return "1.2";
    case 13:
        return "1.3";
    default:
        return "SSL 3.0 or older";
    }
}

/* Look at the first bytes on a TLS listener. Returns 1 to go on with plain
 * HTTP, 0 when waiting for more bytes or when TLS (or a refusal) has taken
 * over the connection. */
static int
dispatch(struct downstream *ds)
{
    const uint8_t *p;
    size_t n;
    struct hello hl;
    struct route *r;
    void *t;

    if (half_data(&ds->h, &p, &n) != 0 || n == 0)
        return 0;
    switch (hello_parse(p, n, &hl)) {
    case HELLO_PLAIN:
        ds->peek = false;
        stats_tls_version(0, 0);
        return 1;
    case HELLO_NEED_MORE:
        return 0;
    case HELLO_TLS:
        break;
    case HELLO_SSLV2:
        log_info(ds->id, "client %s sent an SSLv2 ClientHello: refused", ds->client);
        ds->peek = false;
        ds->closing = true;
        half_close(&ds->h);
        return 0;
    default:
        log_info(ds->id, "client %s sent a malformed or oversized ClientHello: closing",
                 ds->client);
        ds->peek = false;
        send_alert(ds, 40);
        return 0;
    }
    ds->peek = false;
    r = hl.sni[0] ? conf_route_by_name(ds->route->group, ds->route->ngroup, hl.sni, strlen(hl.sni))
                  : NULL;
    ds->sni_routed = r != NULL;
    if (!r)
        r = ds->route->group[0];
    ds->route = r;
    if (hl.max_version < r->tls_min_version) {
        log_info(
            ds->id, "route %s: client %s offers TLS %s at most, below tls_min_version %s: refused",
            r->name, ds->client, version_name(hl.max_version), version_name(r->tls_min_version));
        send_alert(ds, 70);
        return 0;
    }
    if (hl.max_version >= 12) {
        t = tlsio_server_new(r->srv_tls, &ds->h.rx, &ds->h.tx);
        if (t)
            half_start_tls(&ds->h, &tlsio_engine, t);
    } else {
        int lo = r->tls_min_version > 10 ? r->tls_min_version : 10;
        t = legacytls_new(r->legacy_tls, lo, 11, &ds->h.rx, &ds->h.tx);
        if (t)
            half_start_tls(&ds->h, &legacytls_engine, t);
    }
    if (!t) {
        log_error(ds->id, "out of memory starting TLS");
        ds_close(ds, "out of memory");
    }
    return 0;
}

static void
client_process(struct downstream *ds)
{
    const uint8_t *p;
    size_t n, used;
    bool progress = false;
    int rc;

    if (ds->peek && dispatch(ds) == 0) {
        if (!ds->closing && !ds->h.tls) {
            client_timer(ds, false);
            if (half_start_read(&ds->h) != 0)
                ds_close(ds, "cannot read from the client");
        }
        return; /* waiting, refused, or the TLS engine took over */
    }
    while (!ds->closing && ds->rq != RQ_DONE) {
        if (ds->up && up_queue_len(ds) > BUFQ_HIGH) {
            /* Pause only on what a flush leaves: a write then is in flight,
             * and its callback resumes us. A queue the socket takes at once
             * would leave no callback to wait for. */
            up_flush(ds);
            if (up_queue_len(ds) > BUFQ_HIGH) {
                ds->client_paused = true;
                half_stop_read(&ds->h);
                break;
            }
        }
        rc = half_data(&ds->h, &p, &n);
        if (rc < 0) {
            ds_close(ds, "client TLS error");
            return;
        }
        if (n == 0)
            break;
        if (!ds->t0)
            ds->t0 = uv_hrtime();
        rc = http_feed(ds->req, p, n, &used);
        half_consume(&ds->h, used);
        ds->in += used;
        progress = progress || used > 0;
        if (rc == HTTP_ERROR) {
            const char *reason;
            int st = http_error(ds->req, &reason);
            if (ds->fail_status) {
                st = ds->fail_status;
                reason = ds->fail_reason;
            }
            if (!ds->method[0])
                http_describe(ds->req, ds->method, sizeof(ds->method), ds->path, sizeof(ds->path));
            ds_fail(ds, st, reason);
            return;
        }
        if (rc == HTTP_PAUSED)
            break;
    }
    if (ds->closing)
        return;
    up_flush(ds);
    half_flush(&ds->h);
    if (ds->up && up_queue_len(ds) > BUFQ_HIGH && !ds->client_paused) {
        ds->client_paused = true;
        half_stop_read(&ds->h);
    }
    if (ds->rq == RQ_DONE && ds->up)
        up_response_timer(ds);
    client_timer(ds, progress);
    half_trim(&ds->h);
    if (!ds->client_paused && !ds->client_eof && half_start_read(&ds->h) != 0)
        ds_close(ds, "cannot read from the client");
}

/* --- client half callbacks --- */

static void
on_c_readable(struct half *h)
{
    client_process(ds_of(h));
}

static void
on_c_ready(struct half *h)
{
    struct downstream *ds = ds_of(h);

    const char *v = h->eng->version(h->tls);
    log_debug(ds->id, "route %s: client %s speaks TLS %s", ds->route->name, ds->client, v);
    stats_tls_version(0, 10 + (v[0] == '1' && v[1] == '.' ? v[2] - '0' : -10));
    client_process(ds);
}

static void
on_c_error(struct half *h, int err)
{
    struct downstream *ds = ds_of(h);

    if (ds->closing)
        return;
    if (ds->rq == RQ_IDLE && !http_head_started(ds->req)) {
        ds->closing = true;
        half_close(&ds->h);
        return;
    }
    if (err == UV_EOF && ds->rq == RQ_DONE) {
        /* Half-close after a complete request: still deliver the answer. */
        ds->client_eof = true;
        half_stop_read(&ds->h);
        return;
    }
    log_info(ds->id, "client %s went away mid-request (%s)", ds->client, uv_strerror(err));
    ds_close(ds, "client closed the connection");
}

static void
on_c_drain(struct half *h)
{
    struct downstream *ds = ds_of(h);

    if (ds->up_paused && half_tx_len(&ds->h) <= BUFQ_LOW) {
        ds->up_paused = false;
        up_process(ds);
        if (ds->up && !ds->closing && !ds->up_paused && half_start_read(&ds->up->h) != 0)
            ds_fail(ds, 502, "cannot read from the upstream");
    }
}

static void
on_c_timeout(struct half *h)
{
    struct downstream *ds = ds_of(h);

    switch (ds->ct) {
    case CT_IDLE:
        ds->closing = true;
        half_close(&ds->h);
        return;
    case CT_HEADER:
        http_describe(ds->req, ds->method, sizeof(ds->method), ds->path, sizeof(ds->path));
        ds_fail(ds, 408, "request head not received within client_header_timeout");
        return;
    case CT_BODY:
        ds_fail(ds, 408, "request body stalled past client_body_timeout");
        return;
    case CT_NONE:
        return;
    }
}

static void
on_c_closed(struct half *h)
{
    struct downstream *ds = ds_of(h);

    release_up(ds, false);
    http_parser_free(ds->req);
    http_parser_free(ds->resp);
    bufq_clear(&ds->pending);
    sbuf_free(&ds->replay);
    sbuf_free(&ds->sb);
    conf_unref(ds->conf);
    downstream_stats.active--;
    if (ds->prev)
        ds->prev->next = ds->next;
    else
        all = ds->next;
    if (ds->next)
        ds->next->prev = ds->prev;
    ds->magic = 0;
    free(ds);
}

static const struct half_ops client_ops = {
    .on_readable = on_c_readable,
    .on_ready = on_c_ready,
    .on_error = on_c_error,
    .on_drain = on_c_drain,
    .on_timeout = on_c_timeout,
    .on_closed = on_c_closed,
};

struct downstream *
downstream_alloc(uv_loop_t *loop, struct conf *conf, struct route *route)
{
    struct downstream *ds = calloc(1, sizeof(*ds));

    if (!ds)
        return NULL;
    ds->magic = DS_MAGIC;
    half_init(loop, &ds->h, &client_ops, ds);
    ds->conf = conf_ref(conf);
    ds->route = route;
    ds->id = ++next_id;
    bufq_init(&ds->pending);
    downstream_stats.active++;
    ds->next = all;
    if (all)
        all->prev = ds;
    all = ds;
    return ds;
}

uv_stream_t *
downstream_stream(struct downstream *ds)
{
    return (uv_stream_t *)&ds->h.tcp;
}

void
downstream_abort(struct downstream *ds)
{
    ds->closing = true;
    half_close(&ds->h);
}

static void
peer_name(struct downstream *ds)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (uv_tcp_getpeername(&ds->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *s = (struct sockaddr_in *)&ss;
            uv_ip4_name(s, ip, sizeof(ip));
            port = ntohs(s->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(s, ip, sizeof(ip));
            port = ntohs(s->sin6_port);
        }
    }
    snprintf(ds->client, sizeof(ds->client), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip,
             port);
}

void
downstream_start(struct downstream *ds, int over_limit)
{
    const struct limits *l = &ds->route->lim;
    struct http_limits lim = {
        .max_line = l->max_request_line,
        .max_head = l->max_header_size,
        .max_headers = l->max_headers,
    };

    downstream_stats.accepted++;
    peer_name(ds);
    log_debug(ds->id, "route %s: connection from %s", ds->route->name, ds->client);
    uv_tcp_nodelay(&ds->h.tcp, 1);
    if (over_limit) {
        downstream_stats.rejected++;
        log_warn(ds->id,
                 "route %s: over max_connections (%llu): answering 503; raise "
                 "max_connections if this is expected load",
                 ds->route->name, (unsigned long long)ds->conf->max_connections);
        ds->rs = RS_WAIT;
        snprintf(ds->method, sizeof(ds->method), "-");
        ds_fail(ds, 503, "too many connections");
        return;
    }
    ds->req = http_parser_new(HTTP_KIND_REQUEST, &lim, &req_cb, ds);
    if (!ds->req) {
        ds->rs = RS_WAIT;
        ds_fail(ds, 503, "out of memory");
        return;
    }
    ds->peek = ds->route->tls_cert != NULL;
    if (!ds->peek)
        stats_tls_version(0, 0);
    client_timer(ds, false);
    if (half_start_read(&ds->h) != 0)
        ds_close(ds, "cannot read from the client");
}

void
downstream_shutdown(void)
{
    shutting_down = true;
    for (struct downstream *ds = all; ds; ds = ds->next) {
        if (!ds->closing && ds->rq == RQ_IDLE && (!ds->req || !http_head_started(ds->req))) {
            ds->closing = true;
            half_close(&ds->h);
        }
    }
}
