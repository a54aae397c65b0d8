#include "bufq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct bufq_chunk {
    struct bufq_chunk *next;
    size_t start, end; /* live bytes are data[start, end) */
    uint8_t data[BUFQ_CHUNK];
};

/* Freed chunks and read buffers are kept for reuse, up to a bound, so a busy
 * proxy does not go to malloc for every read and write. */
#define FREE_MAX 64

struct freenode {
    struct freenode *next;
};

static struct freenode *free_chunks, *free_bufs;
static int n_free_chunks, n_free_bufs;

static void *
cache_get(struct freenode **list, int *n, size_t size)
{
    struct freenode *f = *list;

    if (f) {
        *list = f->next;
        (*n)--;
        return f;
    }
    return malloc(size);
}

static void
cache_put(struct freenode **list, int *n, void *p)
{
    struct freenode *f = p;

    if (!p)
        return;
    if (*n >= FREE_MAX) {
        free(p);
        return;
    }
    f->next = *list;
    *list = f;
    (*n)++;
}

static void
cache_drain(struct freenode **list, int *n)
{
    while (*list) {
        struct freenode *f = *list;
        *list = f->next;
        free(f);
    }
    *n = 0;
}

void
bufq_init(struct bufq *q)
{
    q->head = q->tail = NULL;
    q->len = 0;
}

int
bufq_push(struct bufq *q, const void *data, size_t len)
{
    const uint8_t *p = data;
    struct bufq_chunk *first_new = NULL, *c;
    size_t room, n;

    /* Fill the tail first; new chunks are linked only when all were allocated,
     * so a failure leaves the queue as it was, but for the tail's new bytes
     * which we roll back. */
    size_t tail_end = q->tail ? q->tail->end : 0;
    size_t left = len;

    if (q->tail) {
        room = BUFQ_CHUNK - q->tail->end;
        n = left < room ? left : room;
        memcpy(q->tail->data + q->tail->end, p, n);
        q->tail->end += n;
        p += n;
        left -= n;
    }
    struct bufq_chunk *last = NULL;
    while (left > 0) {
        c = cache_get(&free_chunks, &n_free_chunks, sizeof(*c));
        if (!c) {
            while (first_new) {
                c = first_new->next;
                cache_put(&free_chunks, &n_free_chunks, first_new);
                first_new = c;
            }
            if (q->tail)
                q->tail->end = tail_end;
            return -ENOMEM;
        }
        n = left < BUFQ_CHUNK ? left : BUFQ_CHUNK;
        c->next = NULL;
        c->start = 0;
        c->end = n;
        memcpy(c->data, p, n);
        p += n;
        left -= n;
        if (last)
            last->next = c;
        else
            first_new = c;
        last = c;
    }
    if (first_new) {
        if (q->tail)
            q->tail->next = first_new;
        else
            q->head = first_new;
        q->tail = last;
    }
    q->len += len;
    return 0;
}

int
bufq_peek(const struct bufq *q, struct iovec *iov, int n)
{
    int i = 0;

    for (struct bufq_chunk *c = q->head; c && i < n; c = c->next) {
        if (c->end == c->start)
            continue;
        iov[i].iov_base = c->data + c->start;
        iov[i].iov_len = c->end - c->start;
        i++;
    }
    return i;
}

void
bufq_consume(struct bufq *q, size_t len)
{
    while (len > 0 && q->head) {
        struct bufq_chunk *c = q->head;
        size_t have = c->end - c->start;

        if (len < have) {
            c->start += len;
            q->len -= len;
            return;
        }
        len -= have;
        q->len -= have;
        q->head = c->next;
        if (!q->head)
            q->tail = NULL;
        cache_put(&free_chunks, &n_free_chunks, c);
    }
    /* An emptied tail that stays linked would be refilled in place; reset it
     * so its whole room is usable again. */
    if (q->head && q->head == q->tail && q->head->start == q->head->end)
        q->head->start = q->head->end = 0;
}

void
bufq_clear(struct bufq *q)
{
    bufq_consume(q, q->len);
    while (q->head) {
        struct bufq_chunk *c = q->head;
        q->head = c->next;
        cache_put(&free_chunks, &n_free_chunks, c);
    }
    q->tail = NULL;
    q->len = 0;
}

uint8_t *
bufpool_get(void)
{
    return cache_get(&free_bufs, &n_free_bufs, BUFPOOL_SIZE);
}

void
bufpool_put(uint8_t *buf)
{
    cache_put(&free_bufs, &n_free_bufs, buf);
}

void
bufpool_drain(void)
{
    cache_drain(&free_chunks, &n_free_chunks);
    cache_drain(&free_bufs, &n_free_bufs);
}
