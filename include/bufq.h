/*
 * bufq: a byte queue made of fixed-size chunks, and the pool of read buffers.
 *
 * Ownership rules:
 * - A bufq owns its chunks. bufq_push copies the caller's bytes in; the caller
 *   keeps its own buffer.
 * - bufq_peek hands out iovecs that point into the chunks. They stay valid
 *   until bufq_consume drops those bytes, even if more bytes are pushed in the
 *   meantime (a chunk's memory never moves), so a uv_write may pin them until
 *   its callback runs.
 * - Read buffers (bufpool_get/put) belong to one connection half at a time and
 *   go back to the pool as soon as the half has nothing unread, so an idle
 *   connection holds none.
 * High and low water marks are the callers' business: bufq_len tells them.
 */
#ifndef TLSLIFT_BUFQ_H
#define TLSLIFT_BUFQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define BUFQ_CHUNK   16384
#define BUFPOOL_SIZE 16384 /* one read buffer */
#define BUFQ_HIGH    (256 * 1024)
#define BUFQ_LOW     (64 * 1024)

struct bufq_chunk;

struct bufq {
    struct bufq_chunk *head, *tail;
    size_t len; /* bytes queued, not yet consumed */
};

void bufq_init(struct bufq *q);
/* Copy LEN bytes in. Returns 0 or -ENOMEM (then nothing was queued). */
int bufq_push(struct bufq *q, const void *data, size_t len);
/* Fill at most N iovecs with the queued bytes, from the front; returns how many. */
int bufq_peek(const struct bufq *q, struct iovec *iov, int n);
/* Drop LEN bytes (<= bufq_len) from the front. */
void bufq_consume(struct bufq *q, size_t len);
void bufq_clear(struct bufq *q);
static inline size_t
bufq_len(const struct bufq *q)
{
    return q->len;
}

/* A read buffer of BUFPOOL_SIZE bytes, or NULL. */
uint8_t *bufpool_get(void);
void bufpool_put(uint8_t *buf);
/* Free the cached buffers (at exit, so leak checkers see a clean heap). */
void bufpool_drain(void);

#endif
