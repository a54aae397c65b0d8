/*
 * Unit tests for legacytls: a BearSSL client (the library's own client
 * engine, limited to TLS 1.0/1.1 as an old SChannel would be) wired to a
 * legacytls server through memory, as half.c wires a socket.
 *
 * The test PKI (a CA, an RSA leaf for localhost signed by it, an EC key and
 * certificate, a second RSA key) is made at test time with the openssl
 * command in a temporary directory, so no key is ever committed and nothing
 * in the build needs to know about it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bufq.h"
#include "legacytls.h"

#include <bearssl.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char dir[64];
static char path_chain[128], path_leaf_crt[128], path_key8[128], path_key1[128];
static char path_ec_key[128], path_ec_crt[128], path_other_key[128], path_garbage[128];

/* The trust anchor for the client: the test CA. */
static br_x509_trust_anchor anchor;
static unsigned char anchor_dn[1024];
static unsigned char anchor_n[1024], anchor_e[8];

static struct legacytls_conf *conf_aes, *conf_3des, *conf_aes2;

/* ------------------------------------------------------------------------ */
/* Test PKI */

static int
run(const char *const argv[])
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return 0;
}

static void
path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

static int
write_file(const char *name, const char *text)
{
    char p[128];
    FILE *f;

    path(p, sizeof(p), name);
    f = fopen(p, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static unsigned char *
read_all(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    unsigned char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return buf;
}

static const char openssl_cnf[] = "[req]\n"
                                  "distinguished_name = dn\n"
                                  "prompt = no\n"
                                  "[dn]\n"
                                  "CN = tlslift test CA\n"
                                  "[v3_ca]\n"
                                  "basicConstraints = critical, CA:true\n"
                                  "keyUsage = critical, keyCertSign, cRLSign\n"
                                  "subjectKeyIdentifier = hash\n"
                                  "[v3_leaf]\n"
                                  "basicConstraints = critical, CA:false\n"
                                  "keyUsage = critical, digitalSignature, keyEncipherment\n"
                                  "extendedKeyUsage = serverAuth\n"
                                  "subjectAltName = DNS:localhost\n";

static void
dn_append(void *ctx, const void *buf, size_t len)
{
    size_t *dn_len = ctx;

    assert_true(*dn_len + len <= sizeof(anchor_dn));
    memcpy(anchor_dn + *dn_len, buf, len);
    *dn_len += len;
}

/* Build the client's trust anchor from the CA certificate (DER). */
static int
load_anchor(void)
{
    char p[128];
    size_t len = 0, dn_len = 0;
    unsigned char *der;
    br_x509_decoder_context xd;
    const br_x509_pkey *pk;

    path(p, sizeof(p), "ca.der");
    der = read_all(p, &len);
    if (!der)
        return -1;
    br_x509_decoder_init(&xd, dn_append, &dn_len);
    br_x509_decoder_push(&xd, der, len);
    free(der);
    pk = br_x509_decoder_get_pkey(&xd);
    if (!pk || pk->key_type != BR_KEYTYPE_RSA || pk->key.rsa.nlen > sizeof(anchor_n) ||
        pk->key.rsa.elen > sizeof(anchor_e))
        return -1;
    memcpy(anchor_n, pk->key.rsa.n, pk->key.rsa.nlen);
    memcpy(anchor_e, pk->key.rsa.e, pk->key.rsa.elen);
    anchor.dn.data = anchor_dn;
    anchor.dn.len = dn_len;
    anchor.flags = BR_X509_TA_CA;
    anchor.pkey.key_type = BR_KEYTYPE_RSA;
    anchor.pkey.key.rsa.n = anchor_n;
    anchor.pkey.key.rsa.nlen = pk->key.rsa.nlen;
    anchor.pkey.key.rsa.e = anchor_e;
    anchor.pkey.key.rsa.elen = pk->key.rsa.elen;
    return 0;
}

static int
make_pki(void)
{
    char cnf[128], ca_key[128], ca_crt[128], ca_der[128], csr[128];
    size_t a = 0, b = 0;
    unsigned char *leaf, *ca;
    FILE *f;

    path(cnf, sizeof(cnf), "openssl.cnf");
    path(ca_key, sizeof(ca_key), "ca.key");
    path(ca_crt, sizeof(ca_crt), "ca.crt");
    path(ca_der, sizeof(ca_der), "ca.der");
    path(csr, sizeof(csr), "leaf.csr");
    path(path_key8, sizeof(path_key8), "leaf.key");
    path(path_key1, sizeof(path_key1), "leaf-rsa.key");
    path(path_leaf_crt, sizeof(path_leaf_crt), "leaf.crt");
    path(path_chain, sizeof(path_chain), "chain.pem");
    path(path_ec_key, sizeof(path_ec_key), "ec.key");
    path(path_ec_crt, sizeof(path_ec_crt), "ec.crt");
    path(path_other_key, sizeof(path_other_key), "other.key");
    path(path_garbage, sizeof(path_garbage), "garbage.pem");
    if (write_file("openssl.cnf", openssl_cnf))
        return -1;
    if (write_file("garbage.pem", "-----BEGIN CERTIFICATE-----\n@@@@not base64@@@@\n"
                                  "-----END CERTIFICATE-----\n"))
        return -1;

    const char *const cmds[][20] = {
        {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out",
         ca_crt, "-days", "2", "-config", cnf, "-extensions", "v3_ca", NULL},
        {"openssl", "x509", "-in", ca_crt, "-outform", "DER", "-out", ca_der, NULL},
        {"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
         path_key8, NULL},
        {"openssl", "rsa", "-in", path_key8, "-traditional", "-out", path_key1, NULL},
        {"openssl", "req", "-new", "-key", path_key8, "-subj", "/CN=localhost", "-config", cnf,
         "-out", csr, NULL},
        {"openssl", "x509",        "-req",        "-in",  csr,           "-CA", ca_crt,
         "-CAkey",  ca_key,        "-set_serial", "2",    "-days",       "2",   "-extfile",
         cnf,       "-extensions", "v3_leaf",     "-out", path_leaf_crt, NULL},
        {"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
         path_ec_key, NULL},
        {"openssl", "req", "-x509", "-key", path_ec_key, "-subj", "/CN=localhost", "-days", "2",
         "-config", cnf, "-extensions", "v3_leaf", "-out", path_ec_crt, NULL},
        {"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out",
         path_other_key, NULL},
    };
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (run(cmds[i])) {
            fprintf(stderr, "# test PKI: %s %s failed\n", cmds[i][0], cmds[i][1]);
            return -1;
        }
    }
    /* The chain file: leaf first, then the CA, as operators give it. */
    leaf = read_all(path_leaf_crt, &a);
    ca = read_all(ca_crt, &b);
    if (!leaf || !ca) {
        free(leaf);
        free(ca);
        return -1;
    }
    f = fopen(path_chain, "wb");
    if (!f || fwrite(leaf, 1, a, f) != a || fwrite(ca, 1, b, f) != b) {
        if (f)
            fclose(f);
        free(leaf);
        free(ca);
        return -1;
    }
    free(leaf);
    free(ca);
    if (fclose(f))
        return -1;
    return load_anchor();
}

static int
group_setup(void **state)
{
    char err[256];

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tlslift-legacytls-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    if (make_pki())
        return -1;
    conf_aes = legacytls_conf_new(path_chain, path_key8, false, err, sizeof(err));
    conf_3des = legacytls_conf_new(path_chain, path_key1, true, err, sizeof(err));
    conf_aes2 = legacytls_conf_new(path_chain, path_key8, false, err, sizeof(err));
    if (!conf_aes || !conf_3des || !conf_aes2) {
        fprintf(stderr, "# legacytls_conf_new: %s\n", err);
        return -1;
    }
    return 0;
}

static int
group_teardown(void **state)
{
    static const char *const names[] = {
        "openssl.cnf", "ca.key",    "ca.crt", "ca.der", "leaf.csr",  "leaf.key",    "leaf-rsa.key",
        "leaf.crt",    "chain.pem", "ec.key", "ec.crt", "other.key", "garbage.pem",
    };
    char p[128];

    (void)state;
    legacytls_conf_free(conf_aes);
    legacytls_conf_free(conf_3des);
    legacytls_conf_free(conf_aes2);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        path(p, sizeof(p), names[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* A client and a server, wired through memory */

#define SIN_CAP (512 * 1024)

struct pair {
    struct legacytls *srv;
    struct iobuf sin; /* client -> server ciphertext */
    struct bufq sout; /* server -> client ciphertext */
    br_ssl_client_context cc;
    br_x509_minimal_context xc;
    unsigned char cbuf[BR_SSL_BUFSIZE_BIDI];
    int srv_hs;     /* last legacytls_handshake result */
    size_t trickle; /* when > 0, at most this many bytes per hop */
};

static struct pair *
pair_new(struct legacytls_conf *lc, int smin, int smax, unsigned cmin, unsigned cmax,
         const uint16_t *suites, size_t nsuites, const br_ssl_session_parameters *resume)
{
    struct pair *p = calloc(1, sizeof(*p));

    assert_non_null(p);
    p->sin.data = malloc(SIN_CAP);
    assert_non_null(p->sin.data);
    p->sin.cap = SIN_CAP;
    bufq_init(&p->sout);
    p->srv = legacytls_new(lc, smin, smax, &p->sin, &p->sout);
    assert_non_null(p->srv);
    p->srv_hs = TLSIO_WANT;

    br_ssl_client_init_full(&p->cc, &p->xc, &anchor, 1);
    br_ssl_engine_set_versions(&p->cc.eng, cmin, cmax);
    if (suites)
        br_ssl_engine_set_suites(&p->cc.eng, suites, nsuites);
    br_ssl_engine_set_buffer(&p->cc.eng, p->cbuf, sizeof(p->cbuf), 1);
    if (resume)
        br_ssl_engine_set_session_parameters(&p->cc.eng, resume);
    assert_int_equal(br_ssl_client_reset(&p->cc, "localhost", resume != NULL), 1);
    return p;
}

static void
pair_free(struct pair *p)
{
    legacytls_free(p->srv);
    bufq_clear(&p->sout);
    free(p->sin.data);
    free(p);
}

/* Client records -> server input. */
static size_t
client_to_server(struct pair *p)
{
    size_t moved = 0, n;
    unsigned char *buf;

    while ((buf = br_ssl_engine_sendrec_buf(&p->cc.eng, &n)) != NULL) {
        if (p->sin.off == p->sin.len)
            p->sin.off = p->sin.len = 0;
        if (p->trickle && n > p->trickle)
            n = p->trickle;
        assert_true(p->sin.len + n <= p->sin.cap);
        memcpy(p->sin.data + p->sin.len, buf, n);
        p->sin.len += n;
        br_ssl_engine_sendrec_ack(&p->cc.eng, n);
        moved += n;
        if (p->trickle)
            break;
    }
    return moved;
}

/* Server records -> client engine. */
static size_t
server_to_client(struct pair *p)
{
    size_t moved = 0;

    while (bufq_len(&p->sout) > 0) {
        struct iovec iov[1];
        size_t room, n;
        unsigned char *buf = br_ssl_engine_recvrec_buf(&p->cc.eng, &room);

        if (!buf)
            break;
        bufq_peek(&p->sout, iov, 1);
        n = iov[0].iov_len < room ? iov[0].iov_len : room;
        if (p->trickle && n > p->trickle)
            n = p->trickle;
        memcpy(buf, iov[0].iov_base, n);
        bufq_consume(&p->sout, n);
        br_ssl_engine_recvrec_ack(&p->cc.eng, n);
        moved += n;
        if (p->trickle)
            break;
    }
    return moved;
}

/* Move bytes both ways and run the server's handshake until nothing moves. */
static void
pump(struct pair *p)
{
    for (int i = 0; i < 1000000; i++) {
        size_t moved = client_to_server(p);
        size_t before = p->sin.off;
        if (p->srv_hs == TLSIO_WANT)
            p->srv_hs = legacytls_handshake(p->srv);
        moved += p->sin.off - before;
        moved += server_to_client(p);
        if (moved == 0)
            return;
    }
    fail_msg("pump did not settle");
}

static bool
client_ready(struct pair *p)
{
    return (br_ssl_engine_current_state(&p->cc.eng) & BR_SSL_SENDAPP) != 0;
}

static int
client_error(struct pair *p)
{
    return br_ssl_engine_last_error(&p->cc.eng);
}

/* Write all of BUF from the client, pumping as its buffer fills. */
static void
client_write(struct pair *p, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        size_t n;
        unsigned char *dst = br_ssl_engine_sendapp_buf(&p->cc.eng, &n);
        if (!dst) {
            assert_true(client_to_server(p) > 0);
            continue;
        }
        if (n > len)
            n = len;
        memcpy(dst, buf, n);
        br_ssl_engine_sendapp_ack(&p->cc.eng, n);
        buf += n;
        len -= n;
    }
    br_ssl_engine_flush(&p->cc.eng, 0);
    client_to_server(p);
}

/* Read up to LEN bytes of application data at the client. */
static size_t
client_read(struct pair *p, unsigned char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        size_t n;
        unsigned char *src = br_ssl_engine_recvapp_buf(&p->cc.eng, &n);
        if (!src) {
            if (server_to_client(p) == 0)
                break;
            continue;
        }
        if (n > len - got)
            n = len - got;
        memcpy(buf + got, src, n);
        br_ssl_engine_recvapp_ack(&p->cc.eng, n);
        got += n;
    }
    return got;
}

/* Handshake a client limited to one suite; check what was negotiated. */
static void
handshake_with(struct legacytls_conf *lc, uint16_t suite, const char *name)
{
    struct pair *p = pair_new(lc, 10, 11, BR_TLS10, BR_TLS10, &suite, 1, NULL);

    assert_string_equal(legacytls_version(p->srv), "-");
    pump(p);
    assert_int_equal(p->srv_hs, TLSIO_OK);
    assert_true(client_ready(p));
    assert_string_equal(legacytls_version(p->srv), "1.0");
    assert_string_equal(legacytls_suite(p->srv), name);
    assert_int_equal(p->cc.eng.session.cipher_suite, suite);
    assert_int_equal(legacytls_resumed(p->srv), 0);
    pair_free(p);
}

/* ------------------------------------------------------------------------ */
/* Tests */

static void
test_suites(void **state)
{
    (void)state;
    handshake_with(conf_aes, BR_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
                   "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA");
    handshake_with(conf_aes, BR_TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
                   "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA");
    handshake_with(conf_aes, BR_TLS_RSA_WITH_AES_128_CBC_SHA, "TLS_RSA_WITH_AES_128_CBC_SHA");
    handshake_with(conf_aes, BR_TLS_RSA_WITH_AES_256_CBC_SHA, "TLS_RSA_WITH_AES_256_CBC_SHA");
}

/* A client offering everything gets our first choice: ECDHE, AES-128. */
static void
test_server_preference(void **state)
{
    struct pair *p = pair_new(conf_3des, 10, 11, BR_TLS10, BR_TLS10, NULL, 0, NULL);

    (void)state;
    pump(p);
    assert_int_equal(p->srv_hs, TLSIO_OK);
    assert_string_equal(legacytls_suite(p->srv), "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA");
    pair_free(p);
}

static void
test_3des_refused_unless_allowed(void **state)
{
    static const uint16_t des = BR_TLS_RSA_WITH_3DES_EDE_CBC_SHA;
    struct pair *p;

    (void)state;
    p = pair_new(conf_aes, 10, 11, BR_TLS10, BR_TLS10, &des, 1, NULL);
    pump(p);
    assert_int_equal(p->srv_hs, TLSIO_ERR);
    assert_non_null(strstr(legacytls_strerror(p->srv), "handshake_failure"));
    /* The client got the alert, not just a closed connection. */
    assert_int_equal(client_error(p), BR_ERR_RECV_FATAL_ALERT + 40);
    pair_free(p);

    handshake_with(conf_3des, des, "TLS_RSA_WITH_3DES_EDE_CBC_SHA");
}

static void
test_tls11(void **state)
{
    struct pair *p = pair_new(conf_aes, 10, 11, BR_TLS10, BR_TLS11, NULL, 0, NULL);

    (void)state;
    pump(p);
    assert_int_equal(p->srv_hs, TLSIO_OK);
    assert_string_equal(legacytls_version(p->srv), "1.1");
    assert_int_equal(br_ssl_engine_get_version(&p->cc.eng), BR_TLS11);
    pair_free(p);

    /* Capped at 1.0 by the caller: a 1.1 client gets 1.0. */
    p = pair_new(conf_aes, 10, 10, BR_TLS10, BR_TLS11, NULL, 0, NULL);
    pump(p);
    assert_int_equal(p->srv_hs, TLSIO_OK);
    assert_string_equal(legacytls_version(p->srv), "1.0");
    pair_free(p);
}

/* tls_min_version = 1.1: a TLS 1.0 client gets a protocol_version alert. */
static void
test_below_min_version(void **state)
{
    struct pair *p = pair_new(conf_aes, 11, 11, BR_TLS10, BR_TLS10, NULL, 0, NULL);

    (void)state;
    /* The alert record carries a real version (BearSSL 0.6 writes 0x0000
     * there, which clients do not take for an alert; legacytls mends it). */
    client_to_server(p);
    assert_int_equal(legacytls_handshake(p->srv), TLSIO_ERR);
    {
        struct iovec iov[1];
        static const uint8_t alert[] = {21, 3, 1, 0, 2, 2, 70};
        assert_int_equal(bufq_peek(&p->sout, iov, 1), 1);
        assert_int_equal(iov[0].iov_len, sizeof(alert));
        assert_memory_equal(iov[0].iov_base, alert, sizeof(alert));
    }
    p->srv_hs = TLSIO_ERR;
    pump(p);
    assert_non_null(strstr(legacytls_strerror(p->srv), "protocol_version"));
    assert_int_equal(client_error(p), BR_ERR_RECV_FATAL_ALERT + 70);
    pair_free(p);
}

/* A client that speaks only TLS 1.2 cannot be served here (it belongs to
 * mbedTLS): the handshake fails on both sides. */
static void
test_tls12_only_client_refused(void **state)
{
    struct pair *p = pair_new(conf_aes, 10, 11, BR_TLS12, BR_TLS12, NULL, 0, NULL);

    (void)state;
    pump(p);
    assert_int_not_equal(p->srv_hs, TLSIO_OK);
    assert_false(client_ready(p));
    assert_int_not_equal(client_error(p), 0);
    pair_free(p);
}

static void
test_resumption(void **state)
{
    br_ssl_session_parameters sp;
    struct pair *p;

    (void)state;
    p = pair_new(conf_aes, 10, 11, BR_TLS10, BR_TLS10, NULL, 0, NULL);
    pump(p);
    assert_int_equal(p->srv_hs, TLSIO_OK);
    assert_int_equal(legacytls_resumed(p->srv), 0);
    br_ssl_engine_get_session_parameters(&p->cc.eng, &sp);
    pair_free(p);

    /* Same conf, so same cache: the session is resumed. */
    p = pair_new(conf_aes, 10, 11, BR_TLS10, BR_TLS10, NULL, 0, &sp);
    pump(p);
    assert_int_equal(p->srv_hs, TLSIO_OK);
    assert_int_equal(legacytls_resumed(p->srv), 1);
    assert_string_equal(legacytls_suite(p->srv), "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA");
    pair_free(p);

    /* Another conf has its own cache: a full handshake. */
    p = pair_new(conf_aes2, 10, 11, BR_TLS10, BR_TLS10, NULL, 0, &sp);
    pump(p);
    assert_int_equal(p->srv_hs, TLSIO_OK);
    assert_int_equal(legacytls_resumed(p->srv), 0);
    pair_free(p);

    /* Found in the cache, but the client no longer offers the suite: BearSSL
     * declines to resume, and we must not report it as resumed. */
    {
        static const uint16_t other = BR_TLS_RSA_WITH_AES_256_CBC_SHA;
        p = pair_new(conf_aes, 10, 11, BR_TLS10, BR_TLS10, &other, 1, &sp);
        pump(p);
        assert_int_equal(p->srv_hs, TLSIO_OK);
        assert_int_equal(legacytls_resumed(p->srv), 0);
        assert_string_equal(legacytls_suite(p->srv), "TLS_RSA_WITH_AES_256_CBC_SHA");
        pair_free(p);
    }
}

#define BIG (100 * 1024)

static void
fill(unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)((i * 131 + seed + (i >> 8)) & 0xff);
}

/* Read BIG bytes at the server, pumping client records in as needed. */
static void
server_read_all(struct pair *p, unsigned char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        int n = legacytls_read(p->srv, buf + got, len - got);
        if (n == TLSIO_WANT) {
            assert_true(client_to_server(p) > 0);
            continue;
        }
        assert_true(n > 0);
        got += (size_t)n;
    }
}

static void
test_app_data_both_ways(void **state)
{
    unsigned char *up = malloc(BIG), *down = malloc(BIG), *got = malloc(BIG);
    struct pair *p;
    size_t n;

    (void)state;
    assert_non_null(up);
    assert_non_null(down);
    assert_non_null(got);
    fill(up, BIG, 1);
    fill(down, BIG, 7);
    p = pair_new(conf_aes, 10, 11, BR_TLS10, BR_TLS10, NULL, 0, NULL);
    pump(p);
    assert_int_equal(p->srv_hs, TLSIO_OK);

    /* Client -> server, 100 KiB. */
    client_write(p, up, BIG);
    memset(got, 0, BIG);
    server_read_all(p, got, BIG);
    assert_memory_equal(got, up, BIG);

    /* Server -> client, 100 KiB in one call: OUT takes it all. */
    assert_int_equal(legacytls_write(p->srv, down, BIG), TLSIO_OK);
    assert_true(bufq_len(&p->sout) > BIG);
    memset(got, 0, BIG);
    n = client_read(p, got, BIG);
    assert_int_equal(n, BIG);
    assert_memory_equal(got, down, BIG);

    /* Nothing more to read: WANT, not an error. */
    assert_int_equal(legacytls_read(p->srv, got, BIG), TLSIO_WANT);

    /* The client closes: the server sees a clean close. */
    br_ssl_engine_close(&p->cc.eng);
    client_to_server(p);
    assert_int_equal(legacytls_read(p->srv, got, BIG), TLSIO_CLOSED);
    pair_free(p);
    free(up);
    free(down);
    free(got);
}

/* Requests that arrive while a response is being written (pipelining), and
 * one byte at a time: both directions keep going. */
static void
test_interleaved_and_trickled(void **state)
{
    unsigned char a[3000], b[5000], got[5000];
    struct pair *p;

    (void)state;
    fill(a, sizeof(a), 3);
    fill(b, sizeof(b), 5);
    p = pair_new(conf_aes, 10, 11, BR_TLS10, BR_TLS11, NULL, 0, NULL);
    p->trickle = 1;
    pump(p);
    assert_int_equal(p->srv_hs, TLSIO_OK);
    p->trickle = 0;

    client_write(p, a, sizeof(a));
    assert_int_equal(legacytls_write(p->srv, b, sizeof(b)), TLSIO_OK);
    client_write(p, a, sizeof(a));
    server_read_all(p, got, sizeof(a));
    assert_memory_equal(got, a, sizeof(a));
    server_read_all(p, got, sizeof(a));
    assert_memory_equal(got, a, sizeof(a));
    assert_int_equal(client_read(p, got, sizeof(b)), sizeof(b));
    assert_memory_equal(got, b, sizeof(b));

    /* The server closes: the client sees close_notify. */
    legacytls_close_notify(p->srv);
    server_to_client(p);
    client_to_server(p);
    assert_int_equal(br_ssl_engine_current_state(&p->cc.eng), BR_SSL_CLOSED);
    assert_int_equal(client_error(p), 0);
    pair_free(p);
}

static void
test_garbage(void **state)
{
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    unsigned char buf[64];
    struct pair *p;

    (void)state;
    /* Plain HTTP instead of a ClientHello. */
    p = pair_new(conf_aes, 10, 11, BR_TLS10, BR_TLS10, NULL, 0, NULL);
    memcpy(p->sin.data, http, sizeof(http) - 1);
    p->sin.len = sizeof(http) - 1;
    assert_int_equal(legacytls_handshake(p->srv), TLSIO_ERR);
    assert_string_not_equal(legacytls_strerror(p->srv), "TLS error");
    pair_free(p);

    /* A forged application-data record after the handshake: bad MAC. */
    p = pair_new(conf_aes, 10, 11, BR_TLS10, BR_TLS10, NULL, 0, NULL);
    pump(p);
    assert_int_equal(p->srv_hs, TLSIO_OK);
    {
        unsigned char rec[5 + 48];
        rec[0] = 23;
        rec[1] = 3;
        rec[2] = 1;
        rec[3] = 0;
        rec[4] = 48;
        memset(rec + 5, 0x5a, 48);
        p->sin.off = p->sin.len = 0;
        memcpy(p->sin.data, rec, sizeof(rec));
        p->sin.len = sizeof(rec);
    }
    assert_int_equal(legacytls_read(p->srv, buf, sizeof(buf)), TLSIO_ERR);
    assert_non_null(strstr(legacytls_strerror(p->srv), "MAC"));
    /* Sticky: the session stays failed. */
    assert_int_equal(legacytls_read(p->srv, buf, sizeof(buf)), TLSIO_ERR);
    assert_int_equal(legacytls_write(p->srv, buf, 1), TLSIO_ERR);
    pair_free(p);
}

static void
test_api_edges(void **state)
{
    struct iobuf in = {0};
    struct bufq out;

    (void)state;
    bufq_init(&out);
    assert_null(legacytls_new(conf_aes, 11, 10, &in, &out));
    assert_null(legacytls_new(NULL, 10, 11, &in, &out));
    assert_string_equal(legacytls_lib_version(), "0.6");
    assert_string_equal(legacytls_version(NULL), "-");
    assert_int_equal(legacytls_resumed(NULL), 0);
    legacytls_free(NULL);
    legacytls_conf_free(NULL);

    /* An empty input: WANT, with nothing queued. And no write before the
     * handshake. */
    struct legacytls *t = legacytls_new(conf_aes, 10, 12, &in, &out);
    assert_non_null(t);
    assert_int_equal(legacytls_handshake(t), TLSIO_WANT);
    assert_int_equal(bufq_len(&out), 0);
    assert_int_equal(legacytls_write(t, (const uint8_t *)"x", 1), TLSIO_ERR);
    legacytls_close_notify(t); /* before the handshake: nothing to do */
    assert_int_equal(bufq_len(&out), 0);
    legacytls_free(t);
}

static void
expect_conf_error(const char *cert, const char *key, const char *needle)
{
    char err[256] = "";
    struct legacytls_conf *lc = legacytls_conf_new(cert, key, false, err, sizeof(err));

    if (lc)
        legacytls_conf_free(lc);
    assert_null(lc);
    if (!strstr(err, needle))
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

static void
test_conf_errors(void **state)
{
    char missing[160];
    struct legacytls_conf *lc;
    char err[256];

    (void)state;
    /* The leaf alone, and a traditional (PKCS#1) key, are fine too. */
    lc = legacytls_conf_new(path_leaf_crt, path_key1, false, err, sizeof(err));
    assert_non_null(lc);
    legacytls_conf_free(lc);

    snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
    expect_conf_error(missing, path_key8, "cannot open");
    expect_conf_error(path_chain, missing, "cannot open");
    expect_conf_error(path_key8, path_key8, "no PEM certificate");
    expect_conf_error(path_chain, path_chain, "no PEM private key");
    expect_conf_error(path_chain, path_ec_key, "EC key refused");
    expect_conf_error(path_ec_crt, path_key8, "EC key");
    expect_conf_error(path_chain, path_other_key, "does not match");
    expect_conf_error(path_garbage, path_key8, "not valid PEM");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suites),
        cmocka_unit_test(test_server_preference),
        cmocka_unit_test(test_3des_refused_unless_allowed),
        cmocka_unit_test(test_tls11),
        cmocka_unit_test(test_below_min_version),
        cmocka_unit_test(test_tls12_only_client_refused),
        cmocka_unit_test(test_resumption),
        cmocka_unit_test(test_app_data_both_ways),
        cmocka_unit_test(test_interleaved_and_trickled),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_api_edges),
        cmocka_unit_test(test_conf_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
