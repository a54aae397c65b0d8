/*
 * admin: /healthz and /metrics. See admin.h.
 */
#include "admin.h"

#include "half.h"
#include "http.h"
#include "log.h"
#include "stats.h"

#include <stdlib.h>
#include <string.h>

#define ADMIN_MAX_HEAD 4096
#define ADMIN_TIMEOUT  5000

struct admin {
    uv_tcp_t tcp;
    uv_loop_t *loop;
};

struct admin_conn {
    struct half h;
    struct http_parser *hp;
    char path[64];
    bool is_get, done;
};

static bool healthy;

void
admin_set_healthy(bool up)
{
    healthy = up;
}

static int
on_head(void *user, struct http_head *h)
{
    struct admin_conn *c = user;
    size_t n = h->url_len < sizeof(c->path) - 1 ? h->url_len : sizeof(c->path) - 1;

    memcpy(c->path, h->buf + h->url_off, n);
    c->path[n] = 0;
    c->path[strcspn(c->path, "?")] = 0;
    c->is_get = strcmp(http_method_name(h), "GET") == 0 || strcmp(http_method_name(h), "HEAD") == 0;
    return 0;
}

static int
on_body(void *user, const uint8_t *p, size_t n)
{
    (void)user;
    (void)p;
    (void)n;
    return 0;
}

static int
on_done(void *user)
{
    ((struct admin_conn *)user)->done = true;
    return 0;
}

static const struct http_cb admin_cb = {on_head, on_body, on_done};

static void
respond(struct admin_conn *c, int status, const char *ctype, const char *body, size_t len)
{
    struct sbuf head = {0};

    if (sbuf_printf(&head,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Connection: close\r\n\r\n",
                    status,
                    status == 200   ? "OK"
                    : status == 404 ? "Not Found"
                    : status == 405 ? "Method Not Allowed"
                                    : "Service Unavailable",
                    ctype, len) == 0) {
        half_send(&c->h, head.p, head.len);
        half_send(&c->h, body, len);
    }
    sbuf_free(&head);
    half_close_gracefully(&c->h, 1000);
}

static void
answer(struct admin_conn *c)
{
    if (!c->is_get) {
        respond(c, 405, "text/plain", "GET only\n", 9);
    } else if (strcmp(c->path, "/healthz") == 0) {
        if (healthy)
            respond(c, 200, "text/plain", "ok\n", 3);
        else
            respond(c, 503, "text/plain", "stopping\n", 9);
    } else if (strcmp(c->path, "/metrics") == 0) {
        struct sbuf b = {0};
        if (stats_render(&b) == 0)
            respond(c, 200, "text/plain; version=0.0.4", b.p ? b.p : "", b.len);
        else
            respond(c, 503, "text/plain", "out of memory\n", 14);
        sbuf_free(&b);
    } else {
        respond(c, 404, "text/plain", "try /healthz or /metrics\n", 25);
    }
}

static void
on_readable(struct half *h)
{
    struct admin_conn *c = h->owner;
    const uint8_t *p;
    size_t n, used;

    if (half_data(h, &p, &n) != 0 || n == 0)
        return;
    int rc = http_feed(c->hp, p, n, &used);
    half_consume(h, used);
    if (rc == HTTP_ERROR) {
        half_close(h);
        return;
    }
    if (c->done) {
        half_stop_read(h);
        answer(c);
    }
}

static void
on_error(struct half *h, int err)
{
    (void)err;
    half_close(h);
}

static void
on_nothing(struct half *h)
{
    (void)h;
}

static void
on_timeout(struct half *h)
{
    half_close(h);
}

static void
on_closed(struct half *h)
{
    struct admin_conn *c = h->owner;

    http_parser_free(c->hp);
    free(c);
}

static const struct half_ops admin_half_ops = {
    .on_readable = on_readable,
    .on_ready = on_nothing,
    .on_error = on_error,
    .on_drain = on_nothing,
    .on_timeout = on_timeout,
    .on_closed = on_closed,
};

static void
on_connection(uv_stream_t *server, int status)
{
    struct admin *a = server->data;
    static const struct http_limits lim = {
        .max_line = 1024, .max_head = ADMIN_MAX_HEAD, .max_headers = 32};
    struct admin_conn *c;

    if (status < 0)
        return;
    c = calloc(1, sizeof(*c));
    if (!c)
        return;
    half_init(a->loop, &c->h, &admin_half_ops, c);
    c->hp = http_parser_new(HTTP_KIND_REQUEST, &lim, &admin_cb, c);
    if (!c->hp || uv_accept(server, (uv_stream_t *)&c->h.tcp) != 0 || half_start_read(&c->h) != 0) {
        half_close(&c->h);
        return;
    }
    half_timer(&c->h, ADMIN_TIMEOUT);
}

struct admin *
admin_new(uv_loop_t *loop, const struct sockaddr_storage *addr, char *err, size_t errlen)
{
    struct admin *a = calloc(1, sizeof(*a));
    int rc;

    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->loop = loop;
    uv_tcp_init(loop, &a->tcp);
    a->tcp.data = a;
    rc = uv_tcp_bind(&a->tcp, (const struct sockaddr *)addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->tcp, 64, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "admin_listen: %s", uv_strerror(rc));
        admin_free(a);
        return NULL;
    }
    return a;
}

static void
on_admin_closed(uv_handle_t *h)
{
    free(h->data);
}

void
admin_free(struct admin *a)
{
    if (a)
        uv_close((uv_handle_t *)&a->tcp, on_admin_closed);
}
