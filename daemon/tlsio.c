/*
 * tlsio: mbedTLS over memory buffers. See tlsio.h for the face and lifetimes.
 */
#include "tlsio.h"

#include "bufq.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tlsio_client_conf {
    mbedtls_ssl_config conf;
    /* mbedTLS 3.6.6 offers rsa_pss_rsae signatures (needed for TLS 1.3 with
     * RSA keys) but then rejects them in a TLS 1.2 ServerKeyExchange, which
     * OpenSSL servers choose (Mbed-TLS issue 10668, fixed upstream after
     * 3.6.6). When a TLS 1.2 upstream trips on it, the route switches to
     * conf12: TLS 1.2 only, PKCS#1 v1.5 and ECDSA signatures. */
    mbedtls_ssl_config conf12;
    int use_conf12;
    int min_version;
    mbedtls_x509_crt ca;
    /* The newest session a server gave us, offered by the next connection
     * so that it can skip the full handshake. */
    mbedtls_ssl_session saved;
    int have_saved;
};

struct tlsio_server_conf {
    mbedtls_ssl_config conf;
    mbedtls_x509_crt chain;
    mbedtls_pk_context key;
    mbedtls_ssl_cache_context cache; /* TLS 1.2 session-id resumption */
};

struct tlsio {
    mbedtls_ssl_context ssl;
    int on_conf12;
    struct tlsio_client_conf *cc;
    struct iobuf *in;
    struct bufq *out;
    int offered_session; /* we offered a saved session */
    int handshake_done;
    char err[256];
};

static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;
static int global_ready;

/* Forward secrecy and AEAD only: the TLS 1.3 suites, and ECDHE with GCM or
 * ChaCha20-Poly1305 for TLS 1.2. */
static const int client_suites[] = {
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

int
tlsio_global_init(void)
{
    static const char pers[] = "tlslift";

    if (global_ready)
        return 0;
    if (psa_crypto_init() != PSA_SUCCESS)
        return -1;
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, (const unsigned char *)pers,
                              sizeof(pers) - 1) != 0) {
        mbedtls_ctr_drbg_free(&drbg);
        mbedtls_entropy_free(&entropy);
        return -1;
    }
    global_ready = 1;
    return 0;
}

void
tlsio_global_free(void)
{
    if (!global_ready)
        return;
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    mbedtls_psa_crypto_free();
    global_ready = 0;
}

static const uint16_t sig_algs_tls12[] = {
    MBEDTLS_TLS1_3_SIG_ECDSA_SECP256R1_SHA256,
    MBEDTLS_TLS1_3_SIG_ECDSA_SECP384R1_SHA384,
    MBEDTLS_TLS1_3_SIG_ECDSA_SECP521R1_SHA512,
    MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA256,
    MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA384,
    MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA512,
    MBEDTLS_TLS1_3_SIG_NONE,
};

static int
setup_conf(mbedtls_ssl_config *conf, mbedtls_x509_crt *ca, int min_version, int max_version)
{
    int rc = mbedtls_ssl_config_defaults(conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc)
        return rc;
    mbedtls_ssl_conf_rng(conf, mbedtls_ctr_drbg_random, &drbg);
    /* Verification is always on: there is deliberately no switch for it. */
    mbedtls_ssl_conf_authmode(conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(conf, ca, NULL);
    mbedtls_ssl_conf_min_tls_version(conf, min_version == 13 ? MBEDTLS_SSL_VERSION_TLS1_3
                                                             : MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(conf, max_version == 13 ? MBEDTLS_SSL_VERSION_TLS1_3
                                                             : MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_ciphersuites(conf, client_suites);
    mbedtls_ssl_conf_renegotiation(conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_session_tickets(conf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    mbedtls_ssl_conf_tls13_key_exchange_modes(conf,
                                              MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ALL);
    /* Without this, mbedTLS 3.6 drops TLS 1.3 tickets silently; with it the
     * read path sees MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET and stores
     * the ticket for the next connection. */
    mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
        conf, MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
    if (max_version == 12)
        mbedtls_ssl_conf_sig_algs(conf, sig_algs_tls12);
    return 0;
}

static void
strerr(int rc, char *buf, size_t len)
{
    mbedtls_strerror(rc, buf, len);
}

struct tlsio_client_conf *
tlsio_client_conf_new(const char *ca_file, int min_version, char *err, size_t errlen)
{
    struct tlsio_client_conf *cc;
    char e[160];
    int rc;

    if (tlsio_global_init()) {
        snprintf(err, errlen, "cannot initialise the crypto library");
        return NULL;
    }
    cc = calloc(1, sizeof(*cc));
    if (!cc) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    mbedtls_ssl_config_init(&cc->conf);
    mbedtls_ssl_config_init(&cc->conf12);
    mbedtls_x509_crt_init(&cc->ca);
    mbedtls_ssl_session_init(&cc->saved);

    rc = mbedtls_x509_crt_parse_file(&cc->ca, ca_file);
    if (rc < 0) {
        strerr(rc, e, sizeof(e));
        snprintf(err, errlen, "cannot load trust store %s: %s (check ca_file/upstream_ca_file)",
                 ca_file, e);
        goto err;
    }
    if (cc->ca.version == 0) {
        snprintf(err, errlen, "trust store %s holds no usable certificate", ca_file);
        goto err;
    }
    cc->min_version = min_version;
    rc = setup_conf(&cc->conf, &cc->ca, min_version, 13);
    if (rc == 0 && min_version == 12)
        rc = setup_conf(&cc->conf12, &cc->ca, 12, 12);
    if (rc) {
        strerr(rc, e, sizeof(e));
        snprintf(err, errlen, "TLS configuration: %s", e);
        goto err;
    }
    return cc;
err:
    tlsio_client_conf_free(cc);
    return NULL;
}

void
tlsio_client_conf_free(struct tlsio_client_conf *cc)
{
    if (!cc)
        return;
    mbedtls_ssl_session_free(&cc->saved);
    mbedtls_ssl_config_free(&cc->conf);
    mbedtls_ssl_config_free(&cc->conf12);
    mbedtls_x509_crt_free(&cc->ca);
    free(cc);
}

static int
on_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct tlsio *t = ctx;

    if (bufq_push(t->out, buf, len))
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    return (int)len;
}

static int
on_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct tlsio *t = ctx;
    struct iobuf *in = t->in;
    size_t have = in->len - in->off;

    if (have == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (len > have)
        len = have;
    memcpy(buf, in->data + in->off, len);
    in->off += len;
    return (int)len;
}

struct tlsio *
tlsio_client_new(struct tlsio_client_conf *cc, const char *hostname, struct iobuf *in,
                 struct bufq *out)
{
    struct tlsio *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    t->cc = cc;
    t->in = in;
    t->out = out;
    mbedtls_ssl_init(&t->ssl);
    t->on_conf12 = cc->use_conf12;
    if (mbedtls_ssl_setup(&t->ssl, t->on_conf12 ? &cc->conf12 : &cc->conf) != 0)
        goto err;
    /* Sets SNI and the name the certificate must carry. */
    if (mbedtls_ssl_set_hostname(&t->ssl, hostname) != 0)
        goto err;
    mbedtls_ssl_set_bio(&t->ssl, t, on_send, on_recv, NULL);
    if (cc->have_saved && mbedtls_ssl_set_session(&t->ssl, &cc->saved) == 0)
        t->offered_session = 1;
    return t;
err:
    mbedtls_ssl_free(&t->ssl);
    free(t);
    return NULL;
}

void
tlsio_free(struct tlsio *t)
{
    if (!t)
        return;
    mbedtls_ssl_free(&t->ssl);
    free(t);
}

static void
save_session(struct tlsio *t)
{
    mbedtls_ssl_session s;

    if (!t->cc)
        return; /* server side: nothing to resume from here */
    mbedtls_ssl_session_init(&s);
    if (mbedtls_ssl_get_session(&t->ssl, &s) == 0) {
        mbedtls_ssl_session_free(&t->cc->saved);
        t->cc->saved = s; /* shallow move: s's heap parts now belong to saved */
        t->cc->have_saved = 1;
        return;
    }
    mbedtls_ssl_session_free(&s);
}

static int
translate(struct tlsio *t, int rc)
{
    switch (rc) {
    case MBEDTLS_ERR_SSL_WANT_READ:
    case MBEDTLS_ERR_SSL_WANT_WRITE:
    case MBEDTLS_ERR_SSL_ASYNC_IN_PROGRESS:
    case MBEDTLS_ERR_SSL_CRYPTO_IN_PROGRESS:
        return TLSIO_WANT;
    case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
    case 0:
        return TLSIO_CLOSED;
    case MBEDTLS_ERR_SSL_ALLOC_FAILED:
        snprintf(t->err, sizeof(t->err), "out of memory");
        return TLSIO_ERR_NOMEM;
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED: {
        uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
        char info[200];
        int n = mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
        /* verify_info puts a newline after each reason: keep one line. */
        for (int i = 0; i < n && info[i]; i++)
            if (info[i] == '\n')
                info[i] = (info[i + 1] ? ';' : 0);
        snprintf(t->err, sizeof(t->err), "certificate verification failed: %s",
                 n > 0 ? info : "unknown reason");
        return TLSIO_ERR_VERIFY;
    }
    default: {
        char e[160];
        strerr(rc, e, sizeof(e));
        snprintf(t->err, sizeof(t->err), "%s", e);
        return TLSIO_ERR;
    }
    }
}

/* mbedTLS answers WANT_READ after it has handled a post-handshake message
 * (a TLS 1.3 ticket) even when more records wait in our buffer: it means
 * "call again", so we do, as long as bytes are left and it made progress. */
static bool
more_input(const struct tlsio *t, size_t before)
{
    return t->in->off > before && t->in->off < t->in->len;
}

int
tlsio_handshake(struct tlsio *t)
{
    int rc;

    if (t->handshake_done)
        return TLSIO_OK;
    for (;;) {
        size_t before = t->in->off;
        rc = mbedtls_ssl_handshake(&t->ssl);
        if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
            save_session(t);
            continue;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ && more_input(t, before))
            continue;
        break;
    }
    if (rc == 0) {
        t->handshake_done = 1;
        /* TLS 1.2 sessions are complete now; TLS 1.3 ones arrive as tickets
         * after the handshake, through tlsio_read. */
        if (t->cc && mbedtls_ssl_get_version_number(&t->ssl) == MBEDTLS_SSL_VERSION_TLS1_2)
            save_session(t);
        return TLSIO_OK;
    }
    if (rc == MBEDTLS_ERR_SSL_ILLEGAL_PARAMETER && t->cc && !t->on_conf12 &&
        t->cc->min_version == 12 &&
        mbedtls_ssl_get_version_number(&t->ssl) == MBEDTLS_SSL_VERSION_TLS1_2) {
        t->cc->use_conf12 = 1;
        snprintf(t->err, sizeof(t->err),
                 "TLS 1.2 server signature rejected by mbedTLS (RSA-PSS in TLS 1.2); switching "
                 "this upstream to TLS 1.2 with PKCS#1 v1.5/ECDSA signatures");
        return TLSIO_ERR_RETRY;
    }
    rc = translate(t, rc);
    return rc == TLSIO_CLOSED ? TLSIO_ERR : rc;
}

int
tlsio_read(struct tlsio *t, uint8_t *buf, size_t len)
{
    int rc;

    for (;;) {
        size_t before = t->in->off;
        rc = mbedtls_ssl_read(&t->ssl, buf, len);
        if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
            save_session(t);
            continue;
        }
        if (rc == MBEDTLS_ERR_SSL_WANT_READ && more_input(t, before))
            continue;
        break;
    }
    if (rc > 0)
        return rc;
    return translate(t, rc);
}

int
tlsio_write(struct tlsio *t, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        int rc = mbedtls_ssl_write(&t->ssl, buf, len);
        if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
            /* A write may process a ticket that arrived meanwhile. */
            save_session(t);
            continue;
        }
        if (rc < 0) {
            rc = translate(t, rc);
            return rc == TLSIO_WANT ? TLSIO_ERR : rc; /* on_send never blocks */
        }
        buf += rc;
        len -= (size_t)rc;
    }
    return TLSIO_OK;
}

void
tlsio_close_notify(struct tlsio *t)
{
    if (t->handshake_done)
        (void)mbedtls_ssl_close_notify(&t->ssl);
}

const char *
tlsio_version(const struct tlsio *t)
{
    if (!t || !t->handshake_done)
        return "-";
    switch (mbedtls_ssl_get_version_number(&t->ssl)) {
    case MBEDTLS_SSL_VERSION_TLS1_2:
        return "1.2";
    case MBEDTLS_SSL_VERSION_TLS1_3:
        return "1.3";
    default:
        return "?";
    }
}

int
tlsio_resumed(const struct tlsio *t)
{
    /* mbedTLS 3.6 has no public "was this resumed" getter; what we know is
     * whether a session was offered. The server-side counts in the tests are
     * the ground truth. */
    return t && t->offered_session;
}

const char *
tlsio_strerror(const struct tlsio *t)
{
    return t && t->err[0] ? t->err : "TLS error";
}

const char *
tlsio_lib_version(void)
{
    static char v[32];
    mbedtls_version_get_string(v);
    return v;
}

static long
days_until(const mbedtls_x509_time *t)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = t->year - 1900;
    tm.tm_mon = t->mon - 1;
    tm.tm_mday = t->day;
    tm.tm_hour = t->hour;
    tm.tm_min = t->min;
    tm.tm_sec = t->sec;
    return (long)((timegm(&tm) - time(NULL)) / 86400);
}

struct tlsio_server_conf *
tlsio_server_conf_new(const char *cert_file, const char *key_file, int min_version, long *days_left,
                      char *err, size_t errlen)
{
    struct tlsio_server_conf *sc;
    char e[160];
    int rc;

    if (tlsio_global_init()) {
        snprintf(err, errlen, "cannot initialise the crypto library");
        return NULL;
    }
    sc = calloc(1, sizeof(*sc));
    if (!sc) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    mbedtls_ssl_config_init(&sc->conf);
    mbedtls_x509_crt_init(&sc->chain);
    mbedtls_pk_init(&sc->key);
    mbedtls_ssl_cache_init(&sc->cache);

    rc = mbedtls_x509_crt_parse_file(&sc->chain, cert_file);
    if (rc != 0 || sc->chain.version == 0) {
        strerr(rc, e, sizeof(e));
        snprintf(err, errlen, "cannot load tls_cert %s: %s (a PEM chain, leaf first)", cert_file,
                 rc ? e : "no certificate");
        goto err;
    }
    rc = mbedtls_pk_parse_keyfile(&sc->key, key_file, NULL, mbedtls_ctr_drbg_random, &drbg);
    if (rc != 0) {
        strerr(rc, e, sizeof(e));
        snprintf(err, errlen, "cannot load tls_key %s: %s (an unencrypted PEM key)", key_file, e);
        goto err;
    }
    if (mbedtls_pk_check_pair(&sc->chain.pk, &sc->key, mbedtls_ctr_drbg_random, &drbg) != 0) {
        snprintf(err, errlen, "tls_key %s does not match the first certificate of tls_cert %s",
                 key_file, cert_file);
        goto err;
    }
    *days_left = days_until(&sc->chain.valid_to);
    rc = mbedtls_ssl_config_defaults(&sc->conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc == 0)
        rc = mbedtls_ssl_conf_own_cert(&sc->conf, &sc->chain, &sc->key);
    if (rc) {
        strerr(rc, e, sizeof(e));
        snprintf(err, errlen, "TLS server configuration: %s", e);
        goto err;
    }
    mbedtls_ssl_conf_rng(&sc->conf, mbedtls_ctr_drbg_random, &drbg);
    mbedtls_ssl_conf_min_tls_version(&sc->conf, min_version == 13 ? MBEDTLS_SSL_VERSION_TLS1_3
                                                                  : MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(&sc->conf, MBEDTLS_SSL_VERSION_TLS1_3);
    mbedtls_ssl_conf_renegotiation(&sc->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    mbedtls_ssl_conf_session_cache(&sc->conf, &sc->cache, mbedtls_ssl_cache_get,
                                   mbedtls_ssl_cache_set);
    return sc;
err:
    tlsio_server_conf_free(sc);
    return NULL;
}

void
tlsio_server_conf_free(struct tlsio_server_conf *sc)
{
    if (!sc)
        return;
    mbedtls_ssl_config_free(&sc->conf);
    mbedtls_ssl_cache_free(&sc->cache);
    mbedtls_x509_crt_free(&sc->chain);
    mbedtls_pk_free(&sc->key);
    free(sc);
}

struct tlsio *
tlsio_server_new(struct tlsio_server_conf *sc, struct iobuf *in, struct bufq *out)
{
    struct tlsio *t = calloc(1, sizeof(*t));

    if (!t)
        return NULL;
    t->in = in;
    t->out = out;
    mbedtls_ssl_init(&t->ssl);
    if (mbedtls_ssl_setup(&t->ssl, &sc->conf) != 0) {
        mbedtls_ssl_free(&t->ssl);
        free(t);
        return NULL;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, on_send, on_recv, NULL);
    return t;
}

static int
e_handshake(void *t)
{
    return tlsio_handshake(t);
}

static int
e_read(void *t, uint8_t *buf, size_t len)
{
    return tlsio_read(t, buf, len);
}

static int
e_write(void *t, const uint8_t *buf, size_t len)
{
    return tlsio_write(t, buf, len);
}

static void
e_close_notify(void *t)
{
    tlsio_close_notify(t);
}

static void
e_free(void *t)
{
    tlsio_free(t);
}

static const char *
e_version(const void *t)
{
    return tlsio_version(t);
}

static const char *
e_strerror(const void *t)
{
    return tlsio_strerror(t);
}

const struct tls_engine tlsio_engine = {
    e_handshake, e_read, e_write, e_close_notify, e_free, e_version, e_strerror,
};
