/*
 * half: buffers, TLS and libuv plumbing for one side of a connection.
 */
#include "half.h"

#include <stdlib.h>
#include <string.h>

#define MAX_IOV 16

static struct half *
half_of_handle(void *handle)
{
    return ((uv_handle_t *)handle)->data;
}

void
half_init(uv_loop_t *loop, struct half *h, const struct half_ops *ops, void *owner)
{
    memset(h, 0, sizeof(*h));
    h->ops = ops;
    h->owner = owner;
    h->loop = loop;
    bufq_init(&h->tx);
    bufq_init(&h->ptx);
    uv_tcp_init(loop, &h->tcp);
    uv_timer_init(loop, &h->timer);
    h->tcp.data = h;
    h->timer.data = h;
    h->open_handles = 2;
}

static void
on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf)
{
    struct half *h = half_of_handle(handle);
    struct iobuf *rx = &h->rx;

    (void)hint;
    if (!rx->data) {
        rx->data = bufpool_get();
        rx->off = rx->len = 0;
        rx->cap = rx->data ? BUFPOOL_SIZE : 0;
    }
    if (rx->off == rx->len) {
        rx->off = rx->len = 0;
    } else if (rx->len == rx->cap && rx->off > 0) {
        memmove(rx->data, rx->data + rx->off, rx->len - rx->off);
        rx->len -= rx->off;
        rx->off = 0;
    }
    /* A full buffer gives libuv no room: it reports UV_ENOBUFS and we stop
     * reading until the owner consumes (back-pressure on the socket). */
    *buf = uv_buf_init(rx->data ? (char *)rx->data + rx->len : NULL, (unsigned)(rx->cap - rx->len));
}

static void
drive_handshake(struct half *h)
{
    int rc = h->eng->handshake(h->tls);

    half_flush(h);
    if (rc == TLSIO_WANT)
        return;
    h->handshaking = false;
    if (rc != TLSIO_OK) {
        h->tls_err = rc;
        h->ops->on_error(h, UV_EPROTO);
        return;
    }
    h->ops->on_ready(h);
}

static void
on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct half *h = half_of_handle(stream);

    (void)buf;
    if (h->closing)
        return;
    if (h->shut) {
        /* Lingering: drop whatever the peer still sends, until it closes. */
        h->rx.off = h->rx.len = 0;
        if (nread < 0)
            half_close(h);
        return;
    }
    if (nread == UV_ENOBUFS) {
        half_stop_read(h);
        return;
    }
    if (nread < 0) {
        h->ops->on_error(h, (int)nread);
        return;
    }
    if (nread == 0)
        return;
    h->rx.len += (size_t)nread;
    if (h->handshaking) {
        drive_handshake(h);
        return;
    }
    h->ops->on_readable(h);
}

int
half_start_read(struct half *h)
{
    int rc;

    if (h->reading || h->closing)
        return 0;
    rc = uv_read_start((uv_stream_t *)&h->tcp, on_alloc, on_read);
    if (rc == 0)
        h->reading = true;
    return rc;
}

void
half_stop_read(struct half *h)
{
    if (!h->reading)
        return;
    uv_read_stop((uv_stream_t *)&h->tcp);
    h->reading = false;
}

int
half_start_tls(struct half *h, const struct tls_engine *eng, void *t)
{
    h->eng = eng;
    h->tls = t;
    h->handshaking = true;
    drive_handshake(h);
    return 0;
}

int
half_data(struct half *h, const uint8_t **p, size_t *n)
{
    struct iobuf *src = &h->rx;

    if (h->tls) {
        struct iobuf *px = &h->px;
        if (px->off == px->len) {
            px->off = px->len = 0;
            if (!px->data) {
                px->data = bufpool_get();
                if (!px->data)
                    return UV_ENOMEM;
                px->cap = BUFPOOL_SIZE;
            }
            int rc = h->eng->read(h->tls, px->data, px->cap);
            half_flush(h); /* a read may have queued an alert or a ticket reply */
            if (rc > 0) {
                px->len = (size_t)rc;
            } else if (rc == TLSIO_CLOSED) {
                return UV_EOF;
            } else if (rc != TLSIO_WANT) {
                h->tls_err = rc;
                return UV_EPROTO;
            }
        }
        src = px;
    }
    *p = src->data ? src->data + src->off : NULL;
    *n = src->len - src->off;
    return 0;
}

void
half_consume(struct half *h, size_t n)
{
    struct iobuf *b = h->tls ? &h->px : &h->rx;

    b->off += n;
}

void
half_trim(struct half *h)
{
    if (h->rx.data && h->rx.off == h->rx.len) {
        bufpool_put(h->rx.data);
        memset(&h->rx, 0, sizeof(h->rx));
    }
    if (h->px.data && h->px.off == h->px.len) {
        bufpool_put(h->px.data);
        memset(&h->px, 0, sizeof(h->px));
    }
}

int
half_send(struct half *h, const void *p, size_t n)
{
    if (h->closing)
        return UV_ECANCELED;
    return bufq_push(h->tls ? &h->ptx : &h->tx, p, n) ? UV_ENOMEM : 0;
}

static void on_write(uv_write_t *req, int status);

static void
do_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct half *h = req->data;

    if (h->closing)
        return;
    /* Keep reading (and dropping) until the peer closes or the linger timer
     * fires; with no linger, close now. */
    if (status < 0 || h->linger_ms == 0 || half_start_read(h) != 0)
        half_close(h);
}

static void
maybe_shutdown(struct half *h)
{
    if (!h->shut || h->writing || bufq_len(&h->tx) || h->closing)
        return;
    if (h->sreq.data)
        return; /* already under way */
    h->sreq.data = h;
    if (uv_shutdown(&h->sreq, (uv_stream_t *)&h->tcp, do_shutdown_cb) != 0)
        half_close(h);
}

/* Encrypt the queued plaintext into records (at most BUFQ_CHUNK each). */
static int
encrypt_pending(struct half *h)
{
    struct iovec iov[MAX_IOV];
    int n;

    while ((n = bufq_peek(&h->ptx, iov, MAX_IOV)) > 0) {
        for (int i = 0; i < n; i++) {
            int rc = h->eng->write(h->tls, iov[i].iov_base, iov[i].iov_len);
            if (rc != TLSIO_OK) {
                h->tls_err = rc;
                return UV_EPROTO;
            }
            bufq_consume(&h->ptx, iov[i].iov_len);
        }
    }
    return 0;
}

void
half_flush(struct half *h)
{
    struct iovec iov[MAX_IOV];
    uv_buf_t bufs[MAX_IOV];
    int n, rc;

    if (h->tls && !h->handshaking && bufq_len(&h->ptx) && !h->closing && encrypt_pending(h) != 0) {
        if (h->shut)
            half_close(h);
        else
            h->ops->on_error(h, UV_EPROTO);
        return;
    }

    if (h->writing || h->closing || bufq_len(&h->tx) == 0) {
        maybe_shutdown(h);
        return;
    }
    /* Try the write now: most writes fit in the socket buffer, and then no
     * request and no callback are needed. */
    for (;;) {
        n = bufq_peek(&h->tx, iov, MAX_IOV);
        if (n == 0)
            break;
        for (int i = 0; i < n; i++)
            bufs[i] = uv_buf_init(iov[i].iov_base, (unsigned)iov[i].iov_len);
        rc = uv_try_write((uv_stream_t *)&h->tcp, bufs, (unsigned)n);
        if (rc == UV_EAGAIN)
            break;
        if (rc < 0) {
            if (h->shut)
                half_close(h);
            else
                h->ops->on_error(h, rc);
            return;
        }
        bufq_consume(&h->tx, (size_t)rc);
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].iov_len;
        if ((size_t)rc < total)
            break;
    }
    if (bufq_len(&h->tx) == 0) {
        maybe_shutdown(h);
        return;
    }
    n = bufq_peek(&h->tx, iov, MAX_IOV);
    h->wlen = 0;
    for (int i = 0; i < n; i++) {
        bufs[i] = uv_buf_init(iov[i].iov_base, (unsigned)iov[i].iov_len);
        h->wlen += iov[i].iov_len;
    }
    h->wreq.data = h;
    rc = uv_write(&h->wreq, (uv_stream_t *)&h->tcp, bufs, (unsigned)n, on_write);
    if (rc < 0) {
        if (h->shut)
            half_close(h);
        else
            h->ops->on_error(h, rc);
        return;
    }
    h->writing = true;
}

static void
on_write(uv_write_t *req, int status)
{
    struct half *h = req->data;

    h->writing = false;
    bufq_consume(&h->tx, h->wlen);
    h->wlen = 0;
    if (h->closing)
        return;
    if (status < 0) {
        if (h->shut)
            half_close(h);
        else
            h->ops->on_error(h, status);
        return;
    }
    half_flush(h);
    if (!h->shut && !h->closing)
        h->ops->on_drain(h);
}

static void
on_timer(uv_timer_t *t)
{
    struct half *h = t->data;

    if (h->closing)
        return;
    if (h->shut) {
        half_close(h);
        return;
    }
    h->ops->on_timeout(h);
}

void
half_timer(struct half *h, uint64_t ms)
{
    if (h->closing)
        return;
    if (ms)
        uv_timer_start(&h->timer, on_timer, ms, 0);
    else
        uv_timer_stop(&h->timer);
}

void
half_close_gracefully(struct half *h, uint64_t linger_ms)
{
    if (h->closing || h->shut)
        return;
    h->shut = true;
    h->linger_ms = linger_ms;
    half_stop_read(h);
    h->rx.off = h->rx.len = 0;
    /* Bounds the flush too: a peer that never reads cannot hold us. */
    uv_timer_start(&h->timer, on_timer, linger_ms ? linger_ms : 5000, 0);
    half_flush(h);
}

static void
on_handle_closed(uv_handle_t *handle)
{
    struct half *h = handle->data;

    if (--h->open_handles > 0)
        return;
    bufq_clear(&h->tx);
    bufq_clear(&h->ptx);
    if (h->tls)
        h->eng->free(h->tls);
    h->tls = NULL;
    if (h->rx.data)
        bufpool_put(h->rx.data);
    if (h->px.data)
        bufpool_put(h->px.data);
    h->rx.data = h->px.data = NULL;
    h->ops->on_closed(h);
}

void
half_close(struct half *h)
{
    if (h->closing)
        return;
    h->closing = true;
    h->reading = false;
    if (!h->reopening)
        uv_close((uv_handle_t *)&h->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}

const char *
half_tls_error(const struct half *h)
{
    return h->tls ? h->eng->strerror(h->tls) : "connection failed";
}

static void
on_tcp_reopened(uv_handle_t *handle)
{
    struct half *h = handle->data;

    h->reopening = false;
    if (h->closing) {
        on_handle_closed(handle);
        return;
    }
    uv_tcp_init(h->loop, &h->tcp);
    h->tcp.data = h;
    h->reopen_cb(h);
}

void
half_reopen(struct half *h, void (*cb)(struct half *h))
{
    if (h->closing || h->reopening)
        return;
    h->reopening = true;
    h->reopen_cb = cb;
    uv_close((uv_handle_t *)&h->tcp, on_tcp_reopened);
}
