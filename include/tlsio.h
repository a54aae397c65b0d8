/*
 * tlsio: the only module that includes mbedTLS.
 *
 * TLS runs over memory, never over a socket: the caller puts received
 * ciphertext in a struct iobuf, and every record mbedTLS wants to send is
 * appended to the caller's struct bufq, which the caller flushes to the
 * socket. So the same face serves plain and TLS connections, and the TLS code
 * never blocks or touches a file descriptor.
 *
 * Lifetimes: a tlsio_client_conf (one per route: trust store, version floor,
 * suites, the last session for resumption) is built by conf_load and belongs
 * to the configuration snapshot; it must outlive every tlsio made from it
 * (connections hold a reference to their snapshot). mbedTLS keeps pointers
 * into its config, so a conf is never changed once built, except for the
 * resumption session it caches.
 */
#ifndef TLSLIFT_TLSIO_H
#define TLSLIFT_TLSIO_H

#include <stddef.h>
#include <stdint.h>

struct bufq;

/* Bytes received from the socket and not yet consumed: data[off, len). */
struct iobuf {
    uint8_t *data;
    size_t off, len, cap;
};

/* Results, translated from mbedTLS codes at this boundary. */
enum tlsio_rc {
    TLSIO_OK = 0,
    TLSIO_WANT = -1,       /* needs more received bytes */
    TLSIO_CLOSED = -2,     /* the peer sent close_notify */
    TLSIO_ERR = -3,        /* protocol or I/O error */
    TLSIO_ERR_VERIFY = -4, /* the peer's certificate did not verify */
    TLSIO_ERR_NOMEM = -5,
    /* The handshake failed in a way a new connection avoids: the conf has
     * switched itself (see tlsio.c, TLS 1.2 and RSA-PSS). Nothing was sent. */
    TLSIO_ERR_RETRY = -6,
};

struct tlsio_client_conf;
struct tlsio;

/* Call once, before anything else here (and before any thread starts). */
int tlsio_global_init(void);
void tlsio_global_free(void);

/* Trust store CA_FILE, lowest version 12 or 13. NULL on failure with a reason
 * in ERR that tells the operator what to fix. */
struct tlsio_client_conf *tlsio_client_conf_new(const char *ca_file, int min_version, char *err,
                                                size_t errlen);
void tlsio_client_conf_free(struct tlsio_client_conf *cc);

/* Server side, for clients that speak TLS 1.2 or 1.3 to tlslift: the PEM
 * chain CERT_FILE (leaf first) and key KEY_FILE, lowest version 12 or 13.
 * *DAYS_LEFT gets the days until the leaf expires. NULL on failure with a
 * reason in ERR. */
struct tlsio_server_conf *tlsio_server_conf_new(const char *cert_file, const char *key_file,
                                                int min_version, long *days_left, char *err,
                                                size_t errlen);
void tlsio_server_conf_free(struct tlsio_server_conf *sc);
struct tlsio *tlsio_server_new(struct tlsio_server_conf *sc, struct iobuf *in, struct bufq *out);

/* The same four calls for any engine (mbedTLS client or server, BearSSL
 * server), so a connection half drives them alike. */
struct tls_engine {
    int (*handshake)(void *t);
    int (*read)(void *t, uint8_t *buf, size_t len);
    int (*write)(void *t, const uint8_t *buf, size_t len);
    void (*close_notify)(void *t);
    void (*free)(void *t);
    const char *(*version)(const void *t);
    const char *(*strerror)(const void *t);
};
extern const struct tls_engine tlsio_engine;

/* A client connection verifying HOSTNAME (also sent as SNI). IN and OUT
 * belong to the caller and must outlive the tlsio. */
struct tlsio *tlsio_client_new(struct tlsio_client_conf *cc, const char *hostname, struct iobuf *in,
                               struct bufq *out);
void tlsio_free(struct tlsio *t);

/* Drive the handshake: TLSIO_OK when done, TLSIO_WANT, or an error. */
int tlsio_handshake(struct tlsio *t);
/* Decrypt into BUF: bytes (> 0), TLSIO_WANT, TLSIO_CLOSED or an error. */
int tlsio_read(struct tlsio *t, uint8_t *buf, size_t len);
/* Encrypt all LEN bytes into OUT: TLSIO_OK or an error. */
int tlsio_write(struct tlsio *t, const uint8_t *buf, size_t len);
/* Queue a close_notify alert. */
void tlsio_close_notify(struct tlsio *t);

/* "1.2", "1.3" once the handshake is done, else "-". */
const char *tlsio_version(const struct tlsio *t);
/* Did this handshake resume a session? */
int tlsio_resumed(const struct tlsio *t);
/* The last error, as text for the operator (verification details included). */
const char *tlsio_strerror(const struct tlsio *t);

/* Library versions, for --version. */
const char *tlsio_lib_version(void);

#endif
