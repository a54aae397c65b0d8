/*
 * half: one side of a relayed connection (the client side or the upstream
 * side), the same type for both, as in relayd's se_in/se_out.
 *
 * A half owns its TCP handle, one timer, the read buffer handed to libuv
 * (taken from the buffer pool only while bytes are unread), the plaintext
 * buffer when TLS is on, and the outbound queue. Its owner (downstream or
 * upstream) sees plaintext only: half_data/half_consume to read, half_send
 * and half_flush to write, whether the bytes cross TLS or not.
 *
 * Lifetime: half_init opens two handles; half_close closes both, and
 * ops->on_closed runs once when the last close callback has run: only then
 * may the owner free the memory the half lives in. After half_close no other
 * callback of ops runs.
 */
#ifndef TLSLIFT_HALF_H
#define TLSLIFT_HALF_H

#include "bufq.h"
#include "tlsio.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct half;

struct half_ops {
    /* Plaintext may be available (call half_data). */
    void (*on_readable)(struct half *h);
    /* TLS handshake finished (halves with TLS only). */
    void (*on_ready)(struct half *h);
    /* The peer closed (UV_EOF) or the connection failed (other < 0; the TLS
     * detail, if any, is in half_tls_error). */
    void (*on_error)(struct half *h, int err);
    /* A write completed; the queue is shorter (or empty). */
    void (*on_drain)(struct half *h);
    void (*on_timeout)(struct half *h);
    void (*on_closed)(struct half *h);
};

struct half {
    uv_tcp_t tcp;
    uv_timer_t timer;
    const struct half_ops *ops;
    void *owner;
    struct iobuf rx; /* from the socket: ciphertext with TLS, else plaintext */
    struct iobuf px; /* TLS only: decrypted and not yet consumed */
    struct bufq tx;  /* to the socket */
    struct bufq ptx; /* TLS only: plaintext queued, encrypted at flush (so a
                      * burst of small sends becomes few records) */
    void *tls;       /* the TLS session, driven through eng; NULL for plain */
    const struct tls_engine *eng;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    size_t wlen; /* bytes pinned by the write in flight */
    uint64_t linger_ms;
    bool writing, reading, handshaking, closing, shut, reopening;
    uv_loop_t *loop;
    void (*reopen_cb)(struct half *h);
    int open_handles;
    int tls_err; /* last TLSIO_* error */
};

void half_init(uv_loop_t *loop, struct half *h, const struct half_ops *ops, void *owner);
/* Start TLS over the socket with session T of engine ENG (takes T). Bytes
 * already in the read buffer (a peeked ClientHello) go to the engine first. */
int half_start_tls(struct half *h, const struct tls_engine *eng, void *t);
int half_start_read(struct half *h);
void half_stop_read(struct half *h);
/* The plaintext received and not consumed yet: 0 with *p, *n (n may be 0),
 * or a negative code: UV_EOF when the peer closed the TLS session, another
 * when decryption failed. */
int half_data(struct half *h, const uint8_t **p, size_t *n);
void half_consume(struct half *h, size_t n);
/* Queue plaintext; nothing is written until half_flush. 0 or < 0. */
int half_send(struct half *h, const void *p, size_t n);
/* Start writing what is queued. */
void half_flush(struct half *h);
static inline size_t
half_tx_len(const struct half *h)
{
    return bufq_len(&h->tx) + bufq_len(&h->ptx);
}
/* Arm (ms > 0) or stop (ms == 0) the half's timer. */
void half_timer(struct half *h, uint64_t ms);
/* Send what is queued, then FIN, then wait (reading and discarding) up to
 * LINGER_MS for the peer to close, then close: a client that still sends
 * gets our answer instead of a reset. LINGER_MS 0: close right after the
 * FIN (nothing is left unread, so no reset can eat the answer). */
void half_close_gracefully(struct half *h, uint64_t linger_ms);
void half_close(struct half *h);
/* Replace the TCP handle by a fresh one (after a failed connect), then call
 * CB; if the half is closed meanwhile, CB is not called. */
void half_reopen(struct half *h, void (*cb)(struct half *h));
/* Return the read buffers to the pool if nothing unread is in them. */
void half_trim(struct half *h);
const char *half_tls_error(const struct half *h);

#endif
