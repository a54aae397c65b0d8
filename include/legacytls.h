/*
 * legacytls: the only module that includes BearSSL. TLS 1.0 and 1.1 servers
 * for legacy clients (SChannel on Windows 7/2008 R2 and XP/2003, .NET
 * Framework before 4.6), with the same face as tlsio: received ciphertext in
 * a struct iobuf, records to send appended to a struct bufq, results as
 * enum tlsio_rc. So the relay cannot tell it from an mbedTLS or a plain
 * connection.
 *
 * Versions 1.0-1.1 only. Suites: ECDHE_RSA and RSA key exchange with
 * AES_128/256_CBC_SHA (and TLS_RSA_WITH_3DES_EDE_CBC_SHA only when enabled for
 * XP/2003); never RC4. Renegotiation refused. A session cache per conf gives
 * resumption.
 *
 * Lifetimes: a legacytls_conf (one per certificate: chain, key, session cache)
 * belongs to the configuration snapshot and outlives every session made from
 * it; its session cache is locked internally, so worker threads may share
 * the conf. A session holds its BearSSL context and a full-duplex record
 * buffer (37,568 bytes in all on amd64) from legacytls_new to legacytls_free:
 * BearSSL cannot shrink or swap buffers on a live connection (see
 * legacytls.c), so idle legacy connections cost that much each.
 */
#ifndef TLSLIFT_LEGACYTLS_H
#define TLSLIFT_LEGACYTLS_H

#include "tlsio.h"

#include <stdbool.h>
#include <stddef.h>

struct legacytls_conf;
struct legacytls;

/* Load the PEM chain CERT_FILE (leaf first) and the PEM key KEY_FILE (RSA;
 * EC keys are refused: SChannel's TLS 1.0 suites need RSA). NULL on failure,
 * with a reason in ERR that tells the operator what to fix. */
struct legacytls_conf *legacytls_conf_new(const char *cert_file, const char *key_file,
                                          bool allow_3des, char *err, size_t errlen);
void legacytls_conf_free(struct legacytls_conf *lc);

/* A server session limited to versions 10 or 11 up to MAX (10 or 11) and
 * down to MIN. IN and OUT belong to the caller and outlive the session. */
struct legacytls *legacytls_new(struct legacytls_conf *lc, int min_version, int max_version,
                                struct iobuf *in, struct bufq *out);
void legacytls_free(struct legacytls *t);

/* Same contracts as tlsio_handshake/read/write/close_notify. */
int legacytls_handshake(struct legacytls *t);
int legacytls_read(struct legacytls *t, uint8_t *buf, size_t len);
int legacytls_write(struct legacytls *t, const uint8_t *buf, size_t len);
void legacytls_close_notify(struct legacytls *t);

/* "1.0" or "1.1" once the handshake is done, else "-". */
const char *legacytls_version(const struct legacytls *t);
/* The negotiated suite's standard name (TLS_RSA_WITH_AES_128_CBC_SHA, ...). */
const char *legacytls_suite(const struct legacytls *t);
/* Did the handshake resume a cached session? */
int legacytls_resumed(const struct legacytls *t);
const char *legacytls_strerror(const struct legacytls *t);
const char *legacytls_lib_version(void);

/* The engine face (tlsio.h) over these functions. */
extern const struct tls_engine legacytls_engine;

#endif
