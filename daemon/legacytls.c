/*
 * legacytls: BearSSL 0.6 TLS 1.0/1.1 server over memory buffers. See
 * legacytls.h for the face and lifetimes.
 *
 * The engine is driven as BearSSL's documentation describes, with the
 * socket replaced by our buffers: while br_ssl_engine_current_state() says
 * SENDREC, records go to OUT (which takes everything); while it says RECVREC
 * and IN holds bytes, they are fed in; RECVAPP/SENDAPP carry plaintext;
 * CLOSED ends it, with br_ssl_engine_last_error() telling a clean close (0)
 * from a failure.
 *
 * Memory per session (measured with sizeof on amd64, Debian's 0.6 build):
 *   br_ssl_server_context                       4,128 bytes
 *   record buffer, BR_SSL_BUFSIZE_BIDI          33,178 bytes
 *     (input 16,384 + 325, output 16,384 + 85)
 *   our own fields                                 262 bytes
 *   struct legacytls, one calloc                37,568 bytes
 * plus, per conf (per certificate): the chain, the key, and a 64 KiB session
 * cache (100 bytes an entry: 655 sessions).
 *
 * The record buffer stays at full size for the life of the session. BearSSL
 * cannot change buffers on a live connection: br_ssl_engine_set_buffer()
 * resets the record layer (back to cleartext, indices to zero), so it is
 * only usable before br_ssl_server_reset(). The input half must hold a full
 * 16 KiB record (a legacy client may send one, and a record is decrypted and
 * MAC-checked whole). The output half could be smaller (BearSSL then cuts
 * responses into smaller records, one MAC and padding each); we keep full
 * 16 KiB records, since legacy clients are few (an app on the same host) and
 * a response body is their bulk. Half-duplex mode (BR_SSL_BUFSIZE_MONO,
 * 16.7 KB) is out: it stalls a client that pipelines requests while we are
 * still sending a response.
 */
#include "legacytls.h"

#include "bufq.h"

#include <bearssl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* 100 bytes per cached session in BearSSL's LRU: 655 sessions. */
#define CACHE_BYTES (64 * 1024)
/* A PEM file larger than this is not a certificate chain or a key. */
#define PEM_MAX (1024 * 1024)
/* Certificates in the chain we send (leaf + intermediates). */
#define CHAIN_MAX 10
/* BearSSL's RSA code takes moduli up to 4096 bits (BR_MAX_RSA_SIZE, which
 * only its private inner.h defines). */
#define RSA_MAX_BITS 4096

/*
 * The session cache shared by every session of one conf. Worker threads
 * share the configuration snapshot, so the LRU (which BearSSL mutates on
 * every save and load) is wrapped in our own cache class that takes a
 * mutex. The wrapper also tells a session whether its handshake found its
 * session ID in the cache (see legacytls_resumed).
 */
struct lt_cache {
    const br_ssl_session_cache_class *vtable; /* first: BearSSL calls through it */
    br_ssl_session_cache_lru lru;
    pthread_mutex_t lock;
    unsigned char *store;
};

struct legacytls_conf {
    br_x509_certificate chain[CHAIN_MAX];
    size_t chain_len;
    br_rsa_private_key key; /* p, q, dp, dq, iq point into key_buf */
    unsigned char *key_buf;
    size_t key_buf_len;
    bool allow_3des;
    struct lt_cache cache;
};

struct legacytls {
    br_ssl_server_context sc; /* first: the cache class maps sc back to us */
    struct legacytls_conf *lc;
    struct iobuf *in;
    struct bufq *out;
    bool handshake_done;
    bool resumed;
    /* Set by the cache wrapper when the ClientHello's session ID was found;
     * BearSSL may still decline to resume (suite or version no longer
     * offered), in which case it picks a fresh random ID. */
    bool cache_hit;
    unsigned char hit_id[32];
    char err[200];
    unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];
};

/* Server preference order (BR_OPT_ENFORCE_SERVER_PREFERENCES): forward
 * secrecy first, AES-128 before AES-256 (same strength class for these
 * clients, cheaper), 3DES last and only for XP/2003, which have no AES. */
static const uint16_t suites_aes[] = {
    BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
    BR_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
    BR_TLS_RSA_WITH_AES_128_CBC_SHA,
    BR_TLS_RSA_WITH_AES_256_CBC_SHA,
};
static const uint16_t suites_3des[] = {
    BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, BR_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
    BR_TLS_RSA_WITH_AES_128_CBC_SHA,       BR_TLS_RSA_WITH_AES_256_CBC_SHA,
    BR_TLS_RSA_WITH_3DES_EDE_CBC_SHA,
};

/* ------------------------------------------------------------------------ */
/* Session cache wrapper */

static struct lt_cache *
cache_of(const br_ssl_session_cache_class **ctx)
{
    return (struct lt_cache *)(void *)((char *)ctx - offsetof(struct lt_cache, vtable));
}

static struct legacytls *
session_of(br_ssl_server_context *sc)
{
    return (struct legacytls *)(void *)((char *)sc - offsetof(struct legacytls, sc));
}

static void
cache_save(const br_ssl_session_cache_class **ctx, br_ssl_server_context *sc,
           const br_ssl_session_parameters *params)
{
    struct lt_cache *c = cache_of(ctx);

    pthread_mutex_lock(&c->lock);
    c->lru.vtable->save(&c->lru.vtable, sc, params);
    pthread_mutex_unlock(&c->lock);
}

static int
cache_load(const br_ssl_session_cache_class **ctx, br_ssl_server_context *sc,
           br_ssl_session_parameters *params)
{
    struct lt_cache *c = cache_of(ctx);
    struct legacytls *t = session_of(sc);
    int found;

    pthread_mutex_lock(&c->lock);
    found = c->lru.vtable->load(&c->lru.vtable, sc, params);
    pthread_mutex_unlock(&c->lock);
    if (found) {
        t->cache_hit = true;
        memcpy(t->hit_id, params->session_id, sizeof(t->hit_id));
    }
    return found;
}

static const br_ssl_session_cache_class cache_class = {
    sizeof(struct lt_cache),
    cache_save,
    cache_load,
};

/* ------------------------------------------------------------------------ */
/* Loading the certificate chain and the key */

/* A growing byte buffer, filled by BearSSL's PEM decoder callback (which
 * cannot fail, hence the sticky oom flag). */
struct dbuf {
    unsigned char *p;
    size_t len, cap;
    bool oom;
};

static void
dbuf_append(void *ctx, const void *src, size_t n)
{
    struct dbuf *b = ctx;

    if (b->oom)
        return;
    if (n > PEM_MAX || b->len > PEM_MAX - n) {
        b->oom = true;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void
dbuf_wipe(struct dbuf *b)
{
    if (b->p)
        explicit_bzero(b->p, b->cap);
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* Read PATH whole, with a newline appended: BearSSL's PEM decoder only
 * ends an object at an end of line, and files often lack the last one. */
static int
read_file(const char *path, struct dbuf *b, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    unsigned char chunk[4096];
    size_t n;

    memset(b, 0, sizeof(*b));
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        dbuf_append(b, chunk, n);
    explicit_bzero(chunk, sizeof(chunk));
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        fclose(f);
        dbuf_wipe(b);
        return -1;
    }
    fclose(f);
    dbuf_append(b, "\n", 1);
    if (b->oom) {
        snprintf(err, errlen, "%s: too large (over %d bytes) or out of memory", path, PEM_MAX);
        dbuf_wipe(b);
        return -1;
    }
    return 0;
}

typedef int (*pem_fn)(void *ctx, const char *name, const unsigned char *der, size_t len, char *err,
                      size_t errlen);

/* Call FN for every PEM object in the file at PATH. */
static int
pem_each(const char *path, pem_fn fn, void *ctx, char *err, size_t errlen)
{
    br_pem_decoder_context pc;
    struct dbuf file, der;
    char name[128] = "";
    bool inobj = false;
    size_t off = 0;
    int rc = -1;

    if (read_file(path, &file, err, errlen))
        return -1;
    memset(&der, 0, sizeof(der));
    br_pem_decoder_init(&pc);
    while (off < file.len) {
        size_t used = br_pem_decoder_push(&pc, file.p + off, file.len - off);
        int ev = br_pem_decoder_event(&pc);

        off += used;
        switch (ev) {
        case BR_PEM_BEGIN_OBJ:
            snprintf(name, sizeof(name), "%s", br_pem_decoder_name(&pc));
            der.len = 0;
            br_pem_decoder_setdest(&pc, dbuf_append, &der);
            inobj = true;
            break;
        case BR_PEM_END_OBJ:
            inobj = false;
            if (der.oom) {
                snprintf(err, errlen, "%s: PEM object too large or out of memory", path);
                goto out;
            }
            if (fn(ctx, name, der.p, der.len, err, errlen))
                goto out;
            break;
        case BR_PEM_ERROR:
            snprintf(err, errlen, "%s: not valid PEM (bad base64 or header line)", path);
            goto out;
        default:
            /* The decoder stops only to report an event: no event and no
             * progress would loop forever, so treat it as corrupt input. */
            if (used == 0) {
                snprintf(err, errlen, "%s: not valid PEM", path);
                goto out;
            }
            break;
        }
    }
    if (inobj) {
        snprintf(err, errlen, "%s: PEM object \"%s\" has no END line", path, name);
        goto out;
    }
    rc = 0;
out:
    dbuf_wipe(&der);
    dbuf_wipe(&file);
    explicit_bzero(&pc, sizeof(pc));
    return rc;
}

struct chain_load {
    struct legacytls_conf *lc;
    const char *path;
};

static int
on_cert_obj(void *ctx, const char *name, const unsigned char *der, size_t len, char *err,
            size_t errlen)
{
    struct chain_load *cl = ctx;
    struct legacytls_conf *lc = cl->lc;
    br_x509_certificate *c;

    if (strcmp(name, "CERTIFICATE") != 0 && strcmp(name, "X509 CERTIFICATE") != 0)
        return 0; /* a key or parameters in the same file: not ours to read here */
    if (lc->chain_len == CHAIN_MAX) {
        snprintf(err, errlen, "%s: more than %d certificates in the chain", cl->path, CHAIN_MAX);
        return -1;
    }
    if (len == 0) {
        snprintf(err, errlen, "%s: empty certificate", cl->path);
        return -1;
    }
    c = &lc->chain[lc->chain_len];
    c->data = malloc(len);
    if (!c->data) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(c->data, der, len);
    c->data_len = len;
    lc->chain_len++;
    return 0;
}

struct key_load {
    struct legacytls_conf *lc;
    const char *path;
    bool found;
};

static int
copy_rsa_key(struct legacytls_conf *lc, const br_rsa_private_key *sk)
{
    size_t total = sk->plen + sk->qlen + sk->dplen + sk->dqlen + sk->iqlen;
    unsigned char *p;

    p = lc->key_buf = malloc(total);
    if (!p)
        return -1;
    lc->key_buf_len = total;
    lc->key.n_bitlen = sk->n_bitlen;
#define COPY_PART(f)                                                                               \
    do {                                                                                           \
        memcpy(p, sk->f, sk->f##len);                                                              \
        lc->key.f = p;                                                                             \
        lc->key.f##len = sk->f##len;                                                               \
        p += sk->f##len;                                                                           \
    } while (0)
    COPY_PART(p);
    COPY_PART(q);
    COPY_PART(dp);
    COPY_PART(dq);
    COPY_PART(iq);
#undef COPY_PART
    return 0;
}

static int
on_key_obj(void *ctx, const char *name, const unsigned char *der, size_t len, char *err,
           size_t errlen)
{
    struct key_load *kl = ctx;
    br_skey_decoder_context kd;
    const br_rsa_private_key *sk;
    int rc = -1;

    if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0) {
        snprintf(err, errlen,
                 "%s: the key is encrypted; give tlslift an unencrypted key file "
                 "readable only by its user",
                 kl->path);
        return -1;
    }
    if (strcmp(name, "RSA PRIVATE KEY") != 0 && strcmp(name, "PRIVATE KEY") != 0 &&
        strcmp(name, "EC PRIVATE KEY") != 0)
        return 0; /* certificates or EC parameters in the same file */
    if (kl->found) {
        snprintf(err, errlen, "%s: more than one private key", kl->path);
        return -1;
    }
    kl->found = true;
    br_skey_decoder_init(&kd);
    br_skey_decoder_push(&kd, der, len);
    if (br_skey_decoder_last_error(&kd) != 0) {
        snprintf(err, errlen, "%s: cannot decode the private key (BearSSL error %d)", kl->path,
                 br_skey_decoder_last_error(&kd));
        goto out;
    }
    if (br_skey_decoder_key_type(&kd) == BR_KEYTYPE_EC) {
        snprintf(err, errlen,
                 "%s: EC key refused: TLS 1.0/1.1 clients (SChannel's suites) need an RSA "
                 "certificate and key; use RSA for a route with tls_min_version below 1.2",
                 kl->path);
        goto out;
    }
    sk = br_skey_decoder_get_rsa(&kd);
    if (!sk) {
        snprintf(err, errlen, "%s: not an RSA private key", kl->path);
        goto out;
    }
    if (sk->n_bitlen > RSA_MAX_BITS) {
        snprintf(err, errlen, "%s: RSA key of %u bits; BearSSL takes at most %d", kl->path,
                 (unsigned)sk->n_bitlen, RSA_MAX_BITS);
        goto out;
    }
    if (copy_rsa_key(kl->lc, sk)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    explicit_bzero(&kd, sizeof(kd));
    return rc;
}

/* Strip leading zero bytes of a big-endian integer. */
static void
strip_zeros(const unsigned char **p, size_t *len)
{
    while (*len > 0 && **p == 0) {
        (*p)++;
        (*len)--;
    }
}

/* The leaf must carry an RSA key, and the one that matches our private key:
 * a mismatch would fail every handshake, so it is caught at load (and -t). */
static int
check_leaf(struct legacytls_conf *lc, const char *cert_file, const char *key_file, char *err,
           size_t errlen)
{
    br_x509_decoder_context *xd;
    const br_x509_pkey *pk;
    br_rsa_compute_modulus compute = br_rsa_compute_modulus_get_default();
    unsigned char *n = NULL;
    const unsigned char *a, *b;
    size_t nlen, alen, blen;
    int rc = -1;

    /* The decoder context is about 1 KiB: keep it off the stack. */
    xd = malloc(sizeof(*xd));
    if (!xd) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < lc->chain_len; i++) {
        br_x509_decoder_init(xd, NULL, NULL);
        br_x509_decoder_push(xd, lc->chain[i].data, lc->chain[i].data_len);
        if (br_x509_decoder_last_error(xd) != 0) {
            snprintf(err, errlen, "%s: certificate %zu cannot be decoded (BearSSL error %d)",
                     cert_file, i + 1, br_x509_decoder_last_error(xd));
            goto out;
        }
        if (i > 0)
            continue;
        pk = br_x509_decoder_get_pkey(xd);
        if (!pk || pk->key_type != BR_KEYTYPE_RSA) {
            snprintf(err, errlen,
                     "%s: the certificate has an EC key: TLS 1.0/1.1 clients need an RSA "
                     "certificate; use RSA for a route with tls_min_version below 1.2",
                     cert_file);
            goto out;
        }
        nlen = compute(NULL, &lc->key);
        n = nlen ? malloc(nlen) : NULL;
        if (!n || compute(n, &lc->key) != nlen) {
            snprintf(err, errlen, "%s: cannot use the RSA key", key_file);
            goto out;
        }
        a = pk->key.rsa.n;
        alen = pk->key.rsa.nlen;
        b = n;
        blen = nlen;
        strip_zeros(&a, &alen);
        strip_zeros(&b, &blen);
        if (alen != blen || memcmp(a, b, alen) != 0) {
            snprintf(err, errlen,
                     "%s does not match the certificate in %s (the first "
                     "certificate must be the leaf for that key)",
                     key_file, cert_file);
            goto out;
        }
    }
    rc = 0;
out:
    free(n);
    free(xd);
    return rc;
}

struct legacytls_conf *
legacytls_conf_new(const char *cert_file, const char *key_file, bool allow_3des, char *err,
                   size_t errlen)
{
    struct legacytls_conf *lc;
    struct chain_load cl;
    struct key_load kl;
    const char *seeder_name = NULL;

    /* Without an OS seeder BearSSL fails every handshake with
     * BR_ERR_NO_RANDOM; say so now, at start-up or -t, rather than then. */
    if (!br_prng_seeder_system(&seeder_name)) {
        snprintf(err, errlen, "BearSSL has no system random source on this platform");
        return NULL;
    }
    lc = calloc(1, sizeof(*lc));
    if (!lc) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    lc->allow_3des = allow_3des;
    if (pthread_mutex_init(&lc->cache.lock, NULL) != 0) {
        free(lc);
        snprintf(err, errlen, "cannot create a mutex");
        return NULL;
    }

    cl.lc = lc;
    cl.path = cert_file;
    if (pem_each(cert_file, on_cert_obj, &cl, err, errlen))
        goto err;
    if (lc->chain_len == 0) {
        snprintf(err, errlen, "%s holds no PEM certificate (BEGIN CERTIFICATE)", cert_file);
        goto err;
    }
    kl.lc = lc;
    kl.path = key_file;
    kl.found = false;
    if (pem_each(key_file, on_key_obj, &kl, err, errlen))
        goto err;
    if (!kl.found) {
        snprintf(err, errlen,
                 "%s holds no PEM private key (BEGIN PRIVATE KEY or BEGIN RSA "
                 "PRIVATE KEY)",
                 key_file);
        goto err;
    }
    if (check_leaf(lc, cert_file, key_file, err, errlen))
        goto err;

    lc->cache.store = malloc(CACHE_BYTES);
    if (!lc->cache.store) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    br_ssl_session_cache_lru_init(&lc->cache.lru, lc->cache.store, CACHE_BYTES);
    lc->cache.vtable = &cache_class;
    return lc;
err:
    legacytls_conf_free(lc);
    return NULL;
}

void
legacytls_conf_free(struct legacytls_conf *lc)
{
    if (!lc)
        return;
    for (size_t i = 0; i < lc->chain_len; i++)
        free(lc->chain[i].data);
    if (lc->key_buf)
        explicit_bzero(lc->key_buf, lc->key_buf_len);
    free(lc->key_buf);
    if (lc->cache.store)
        explicit_bzero(lc->cache.store, CACHE_BYTES); /* master secrets */
    free(lc->cache.store);
    pthread_mutex_destroy(&lc->cache.lock);
    free(lc);
}

/* ------------------------------------------------------------------------ */
/* Sessions */

struct legacytls *
legacytls_new(struct legacytls_conf *lc, int min_version, int max_version, struct iobuf *in,
              struct bufq *out)
{
    struct legacytls *t;
    br_ssl_engine_context *eng;
    unsigned char seed[32];

    if (!lc || !in || !out)
        return NULL;
    /* Only 1.0 and 1.1 live here; TLS 1.2+ clients go to mbedTLS. */
    if (min_version < 10)
        min_version = 10;
    if (max_version > 11)
        max_version = 11;
    if (min_version > max_version)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->lc = lc;
    t->in = in;
    t->out = out;
    eng = &t->sc.eng;

    br_ssl_server_zero(&t->sc);
    br_ssl_engine_set_versions(eng, min_version == 10 ? BR_TLS10 : BR_TLS11,
                               max_version == 10 ? BR_TLS10 : BR_TLS11);
    if (lc->allow_3des)
        br_ssl_engine_set_suites(eng, suites_3des, sizeof(suites_3des) / sizeof(suites_3des[0]));
    else
        br_ssl_engine_set_suites(eng, suites_aes, sizeof(suites_aes) / sizeof(suites_aes[0]));
    /* TLS 1.0/1.1 need MD5 and SHA-1 (PRF, Finished, the MD5+SHA-1 signature
     * on ServerKeyExchange, HMAC-SHA1 records). SHA-256 is for BearSSL's
     * HMAC-DRBG, which prefers it, and so for the session cache's index.
     * SHA-384 would only serve TLS 1.2 suites, which are not offered. */
    br_ssl_engine_set_hash(eng, br_md5_ID, &br_md5_vtable);
    br_ssl_engine_set_hash(eng, br_sha1_ID, &br_sha1_vtable);
    br_ssl_engine_set_hash(eng, br_sha256_ID, &br_sha256_vtable);
    br_ssl_engine_set_prf10(eng, br_tls10_prf);
    br_ssl_engine_set_default_aes_cbc(eng);
    if (lc->allow_3des)
        br_ssl_engine_set_default_des_cbc(eng);
    br_ssl_engine_set_default_ec(eng);
    br_ssl_server_set_single_rsa(&t->sc, lc->chain, lc->chain_len, &lc->key,
                                 BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN, br_rsa_private_get_default(),
                                 br_rsa_pkcs1_sign_get_default());
    br_ssl_engine_set_all_flags(eng, BR_OPT_NO_RENEGOTIATION | BR_OPT_ENFORCE_SERVER_PREFERENCES);
    br_ssl_server_set_cache(&t->sc, &lc->cache.vtable);
    br_ssl_engine_set_buffer(eng, t->iobuf, sizeof(t->iobuf), 1);
    /* Debian's BearSSL seeds from RDRAND alone when the CPU has it; mix in
     * the kernel's pool as well. BearSSL still seeds itself if this fails. */
    if (getrandom(seed, sizeof(seed), 0) == (ssize_t)sizeof(seed))
        br_ssl_engine_inject_entropy(eng, seed, sizeof(seed));
    explicit_bzero(seed, sizeof(seed));
    if (!br_ssl_server_reset(&t->sc)) {
        free(t);
        return NULL;
    }
    return t;
}

void
legacytls_free(struct legacytls *t)
{
    if (!t)
        return;
    /* The context holds the master secret and keys; the buffer plaintext. */
    explicit_bzero(t, sizeof(*t));
    free(t);
}

static const char *
alert_name(int a)
{
    switch (a) {
    case 0:
        return "close_notify";
    case 10:
        return "unexpected_message";
    case 20:
        return "bad_record_mac";
    case 22:
        return "record_overflow";
    case 40:
        return "handshake_failure";
    case 42:
        return "bad_certificate";
    case 43:
        return "unsupported_certificate";
    case 44:
        return "certificate_revoked";
    case 45:
        return "certificate_expired";
    case 46:
        return "certificate_unknown";
    case 47:
        return "illegal_parameter";
    case 48:
        return "unknown_ca";
    case 50:
        return "decode_error";
    case 51:
        return "decrypt_error";
    case 70:
        return "protocol_version";
    case 71:
        return "insufficient_security";
    case 80:
        return "internal_error";
    case 86:
        return "inappropriate_fallback";
    case 90:
        return "user_canceled";
    case 100:
        return "no_renegotiation";
    case 110:
        return "unsupported_extension";
    case 112:
        return "unrecognized_name";
    default:
        return "unknown alert";
    }
}

static const char *
engine_error(int e)
{
    switch (e) {
    case BR_ERR_BAD_PARAM:
        return "bad parameter (internal)";
    case BR_ERR_BAD_STATE:
        return "bad state (internal)";
    case BR_ERR_UNSUPPORTED_VERSION:
        return "unsupported protocol version";
    case BR_ERR_BAD_VERSION:
        return "unexpected protocol version in a record";
    case BR_ERR_BAD_LENGTH:
        return "bad record length";
    case BR_ERR_TOO_LARGE:
        return "record too large";
    case BR_ERR_BAD_MAC:
        return "bad record MAC or padding";
    case BR_ERR_NO_RANDOM:
        return "no random source";
    case BR_ERR_UNKNOWN_TYPE:
        return "unknown record type (not TLS?)";
    case BR_ERR_UNEXPECTED:
        return "unexpected message";
    case BR_ERR_BAD_CCS:
        return "bad ChangeCipherSpec";
    case BR_ERR_BAD_ALERT:
        return "malformed alert";
    case BR_ERR_BAD_HANDSHAKE:
        return "malformed handshake message";
    case BR_ERR_OVERSIZED_ID:
        return "session ID too long";
    case BR_ERR_BAD_CIPHER_SUITE:
        return "bad cipher suite";
    case BR_ERR_BAD_COMPRESSION:
        return "bad compression method";
    case BR_ERR_BAD_FRAGLEN:
        return "bad max_fragment_length";
    case BR_ERR_BAD_SECRENEG:
        return "secure renegotiation check failed";
    case BR_ERR_EXTRA_EXTENSION:
        return "unexpected extension";
    case BR_ERR_BAD_SNI:
        return "bad server name";
    case BR_ERR_BAD_HELLO_DONE:
        return "bad ServerHelloDone";
    case BR_ERR_LIMIT_EXCEEDED:
        return "internal limit exceeded";
    case BR_ERR_BAD_FINISHED:
        return "bad Finished message (wrong key or tampering)";
    case BR_ERR_RESUME_MISMATCH:
        return "session resumption mismatch";
    case BR_ERR_INVALID_ALGORITHM:
        return "unsupported algorithm";
    case BR_ERR_BAD_SIGNATURE:
        return "bad signature";
    case BR_ERR_WRONG_KEY_USAGE:
        return "key usage does not allow this suite";
    case BR_ERR_NO_CLIENT_AUTH:
        return "no client certificate";
    case BR_ERR_IO:
        return "I/O error";
    default:
        return NULL;
    }
}

/* A hint for the operator about the alerts we send most. */
static const char *
alert_hint(int a)
{
    switch (a) {
    case 40:
        return ": no cipher suite in common (XP/2003 need tls_legacy_3des = yes)";
    case 70:
        return ": the client's TLS version is below tls_min_version";
    case 86:
        return ": the client retried with a lower version (TLS_FALLBACK_SCSV)";
    default:
        return "";
    }
}

/* The engine is CLOSED: a clean close, or a failure worth a reason. */
static int
closed_rc(struct legacytls *t)
{
    int e = br_ssl_engine_last_error(&t->sc.eng);
    const char *s;

    if (e == BR_ERR_OK)
        return TLSIO_CLOSED;
    if (e >= BR_ERR_SEND_FATAL_ALERT && e < BR_ERR_SEND_FATAL_ALERT + 256) {
        int a = e - BR_ERR_SEND_FATAL_ALERT;
        snprintf(t->err, sizeof(t->err), "sent fatal alert %d (%s)%s", a, alert_name(a),
                 alert_hint(a));
    } else if (e >= BR_ERR_RECV_FATAL_ALERT && e < BR_ERR_RECV_FATAL_ALERT + 256) {
        int a = e - BR_ERR_RECV_FATAL_ALERT;
        snprintf(t->err, sizeof(t->err), "the client sent fatal alert %d (%s)", a, alert_name(a));
    } else if ((s = engine_error(e)) != NULL) {
        snprintf(t->err, sizeof(t->err), "%s", s);
    } else {
        snprintf(t->err, sizeof(t->err), "TLS error (BearSSL code %d)", e);
    }
    return TLSIO_ERR;
}

/* Move every record the engine has ready into OUT. */
static int
flush_records(struct legacytls *t)
{
    br_ssl_engine_context *eng = &t->sc.eng;

    for (;;) {
        size_t n;
        unsigned char *p = br_ssl_engine_sendrec_buf(eng, &n);
        if (!p || n == 0)
            return TLSIO_OK;
        /* BearSSL 0.6 sends the alert that refuses a client's version
         * (protocol_version, and others raised before the version is
         * chosen) with record version 0x0000, which clients do not read as
         * an alert ("wrong version number" in OpenSSL). Such a record is
         * always in clear, so its header can be mended: 0x0301 is a record
         * version every TLS client accepts before the ServerHello. We take
         * whole chunks, so P is at a record header. */
        uint8_t fixed[16];
        if (n >= 5 && n <= sizeof(fixed) && p[0] == 21 && p[1] == 0 && p[2] == 0) {
            memcpy(fixed, p, n);
            fixed[1] = 3;
            fixed[2] = 1;
            p = fixed;
        }
        if (bufq_push(t->out, p, n)) {
            snprintf(t->err, sizeof(t->err), "out of memory");
            return TLSIO_ERR_NOMEM;
        }
        br_ssl_engine_sendrec_ack(eng, n);
    }
}

/* Give the engine as much received ciphertext as it takes now; true when
 * some went in. */
static bool
feed_records(struct legacytls *t)
{
    br_ssl_engine_context *eng = &t->sc.eng;
    struct iobuf *in = t->in;
    size_t have = in->len > in->off ? in->len - in->off : 0;
    size_t room, n;
    unsigned char *p;

    if (have == 0 || !in->data)
        return false;
    p = br_ssl_engine_recvrec_buf(eng, &room);
    if (!p || room == 0)
        return false;
    n = have < room ? have : room;
    memcpy(p, in->data + in->off, n);
    in->off += n;
    br_ssl_engine_recvrec_ack(eng, n);
    return true;
}

static void
handshake_finished(struct legacytls *t)
{
    const br_ssl_engine_context *eng = &t->sc.eng;

    t->handshake_done = true;
    /* BearSSL keeps the client's session ID when it resumes and draws a new
     * random one for a full handshake (even after a cache hit it then
     * declined), so: resumed = found in the cache, and the ID kept. */
    t->resumed = t->cache_hit && eng->session.session_id_len == sizeof(t->hit_id) &&
                 memcmp(eng->session.session_id, t->hit_id, sizeof(t->hit_id)) == 0;
}

int
legacytls_handshake(struct legacytls *t)
{
    if (t->handshake_done)
        return TLSIO_OK;
    for (;;) {
        int rc = flush_records(t);
        if (rc != TLSIO_OK)
            return rc;
        unsigned st = br_ssl_engine_current_state(&t->sc.eng);
        if (st == BR_SSL_CLOSED) {
            rc = closed_rc(t);
            if (rc == TLSIO_CLOSED) {
                snprintf(t->err, sizeof(t->err), "the client closed during the handshake");
                rc = TLSIO_ERR;
            }
            return rc;
        }
        /* BearSSL accepts application data once the handshake is done. */
        if (st & BR_SSL_SENDAPP) {
            handshake_finished(t);
            return TLSIO_OK;
        }
        if (feed_records(t))
            continue;
        if (st & BR_SSL_RECVREC)
            return TLSIO_WANT;
        snprintf(t->err, sizeof(t->err), "TLS engine stalled in the handshake (state %#x)", st);
        return TLSIO_ERR;
    }
}

int
legacytls_read(struct legacytls *t, uint8_t *buf, size_t len)
{
    br_ssl_engine_context *eng = &t->sc.eng;
    int rc;

    if (!t->handshake_done) {
        rc = legacytls_handshake(t);
        if (rc != TLSIO_OK)
            return rc;
    }
    if (len == 0)
        return TLSIO_WANT; /* no room: nothing to do until the caller has some */
    if (len > INT32_MAX)
        len = INT32_MAX; /* the count is returned as an int */
    for (;;) {
        rc = flush_records(t);
        if (rc != TLSIO_OK)
            return rc;
        unsigned st = br_ssl_engine_current_state(eng);
        if (st == BR_SSL_CLOSED)
            return closed_rc(t);
        if (st & BR_SSL_RECVAPP) {
            size_t n;
            unsigned char *p = br_ssl_engine_recvapp_buf(eng, &n);
            if (n > len)
                n = len;
            memcpy(buf, p, n);
            br_ssl_engine_recvapp_ack(eng, n);
            /* Acknowledging may let the engine answer something (a
             * no_renegotiation warning): send it along. */
            rc = flush_records(t);
            if (rc != TLSIO_OK)
                return rc;
            return (int)n;
        }
        if (!feed_records(t))
            return TLSIO_WANT;
    }
}

int
legacytls_write(struct legacytls *t, const uint8_t *buf, size_t len)
{
    br_ssl_engine_context *eng = &t->sc.eng;
    int rc;

    if (!t->handshake_done) {
        snprintf(t->err, sizeof(t->err), "write before the handshake finished");
        return TLSIO_ERR;
    }
    while (len > 0) {
        rc = flush_records(t);
        if (rc != TLSIO_OK)
            return rc;
        unsigned st = br_ssl_engine_current_state(eng);
        if (st == BR_SSL_CLOSED) {
            rc = closed_rc(t);
            return rc == TLSIO_CLOSED ? TLSIO_ERR : rc;
        }
        size_t n;
        unsigned char *p = br_ssl_engine_sendapp_buf(eng, &n);
        if (!p || n == 0) {
            /* OUT takes every record and renegotiation is refused, so in
             * full-duplex mode the engine always has room once drained;
             * anything else is a state we do not know how to wait for. */
            snprintf(t->err, sizeof(t->err), "TLS engine takes no data (state %#x)", st);
            return TLSIO_ERR;
        }
        if (n > len)
            n = len;
        memcpy(p, buf, n);
        /* A full record is closed and encrypted by the ack itself. */
        br_ssl_engine_sendapp_ack(eng, n);
        buf += n;
        len -= n;
    }
    /* Send the last, partial record now rather than when more data comes. */
    br_ssl_engine_flush(eng, 0);
    return flush_records(t);
}

void
legacytls_close_notify(struct legacytls *t)
{
    if (!t->handshake_done)
        return;
    br_ssl_engine_close(&t->sc.eng);
    (void)flush_records(t);
}

const char *
legacytls_version(const struct legacytls *t)
{
    if (!t || !t->handshake_done)
        return "-";
    switch (br_ssl_engine_get_version(&t->sc.eng)) {
    case BR_TLS10:
        return "1.0";
    case BR_TLS11:
        return "1.1";
    default:
        return "?";
    }
}

const char *
legacytls_suite(const struct legacytls *t)
{
    if (!t || !t->handshake_done)
        return "-";
    switch (t->sc.eng.session.cipher_suite) {
    case BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA:
        return "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA";
    case BR_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA:
        return "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA";
    case BR_TLS_RSA_WITH_AES_128_CBC_SHA:
        return "TLS_RSA_WITH_AES_128_CBC_SHA";
    case BR_TLS_RSA_WITH_AES_256_CBC_SHA:
        return "TLS_RSA_WITH_AES_256_CBC_SHA";
    case BR_TLS_RSA_WITH_3DES_EDE_CBC_SHA:
        return "TLS_RSA_WITH_3DES_EDE_CBC_SHA";
    default:
        return "?";
    }
}

int
legacytls_resumed(const struct legacytls *t)
{
    return t && t->resumed;
}

const char *
legacytls_strerror(const struct legacytls *t)
{
    return t && t->err[0] ? t->err : "TLS error";
}

const char *
legacytls_lib_version(void)
{
    /* BearSSL has no version call or macro; this is the release Debian
     * ships as libbearssl0 0.6 and design.md requires. */
    return "0.6";
}

static int
e_handshake(void *t)
{
    return legacytls_handshake(t);
}

static int
e_read(void *t, uint8_t *buf, size_t len)
{
    return legacytls_read(t, buf, len);
}

static int
e_write(void *t, const uint8_t *buf, size_t len)
{
    return legacytls_write(t, buf, len);
}

static void
e_close_notify(void *t)
{
    legacytls_close_notify(t);
}

static void
e_free(void *t)
{
    legacytls_free(t);
}

static const char *
e_version(const void *t)
{
    return legacytls_version(t);
}

static const char *
e_strerror(const void *t)
{
    return legacytls_strerror(t);
}

const struct tls_engine legacytls_engine = {
    e_handshake, e_read, e_write, e_close_notify, e_free, e_version, e_strerror,
};
