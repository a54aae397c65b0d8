/*
 * Unit tests for hello: ClientHellos built byte by byte for the exact shapes
 * (SChannel's TLS 1.0 hello, TLS 1.3 with supported_versions, GREASE, a
 * hello split over records, every truncation, malformed lengths), and real
 * ones captured at test time from `openssl s_client` connecting to a socket
 * of ours.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hello.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------------------ */
/* A ClientHello builder */

struct opts {
    unsigned legacy;          /* legacy_version, 0x0301 by default */
    unsigned rec_version;     /* record-layer version, 0x0301 by default */
    const char *sni;          /* NULL: no server_name */
    const uint16_t *versions; /* supported_versions, NULL: none */
    size_t nversions;
    bool grease_ext;    /* a GREASE extension first, as Chrome does */
    size_t sid_len;     /* session ID length */
    size_t pad;         /* an extra padding extension of this size */
    size_t split;       /* max record payload, 0: one record */
    bool no_extensions; /* no extensions block at all (XP) */
};

struct buf {
    uint8_t b[3 * HELLO_MAX];
    size_t len;
};

static void
put8(struct buf *b, unsigned v)
{
    assert_true(b->len < sizeof(b->b));
    b->b[b->len++] = (uint8_t)v;
}

static void
put16(struct buf *b, unsigned v)
{
    put8(b, v >> 8);
    put8(b, v & 0xff);
}

static void
put24(struct buf *b, size_t v)
{
    put8(b, (unsigned)(v >> 16) & 0xff);
    put16(b, (unsigned)v & 0xffff);
}

static void
putn(struct buf *b, const void *p, size_t n)
{
    assert_true(b->len + n <= sizeof(b->b));
    memcpy(b->b + b->len, p, n);
    b->len += n;
}

/* The handshake message: header and ClientHello body. */
static void
build_msg(const struct opts *o, struct buf *m)
{
    struct buf *ext = calloc(1, sizeof(*ext));
    uint8_t random[32];
    size_t body_at;

    assert_non_null(ext);
    memset(random, 0x42, sizeof(random));
    m->len = 0;
    put8(m, 1);
    put24(m, 0); /* patched below */
    body_at = m->len;
    put16(m, o->legacy ? o->legacy : 0x0301);
    putn(m, random, sizeof(random));
    put8(m, o->sid_len);
    for (size_t i = 0; i < o->sid_len; i++)
        put8(m, i);
    /* SChannel's order on Windows 7: ECDHE-RSA AES, RSA AES, 3DES, RC4. */
    put16(m, 12);
    put16(m, 0xc013);
    put16(m, 0xc014);
    put16(m, 0x002f);
    put16(m, 0x0035);
    put16(m, 0x000a);
    put16(m, 0x0005);
    put8(m, 1);
    put8(m, 0);

    if (o->grease_ext) {
        put16(ext, 0x3a3a);
        put16(ext, 0);
    }
    if (o->sni) {
        size_t n = strlen(o->sni);
        put16(ext, 0);
        put16(ext, n + 5);
        put16(ext, n + 3);
        put8(ext, 0);
        put16(ext, n);
        putn(ext, o->sni, n);
    }
    /* supported_groups and ec_point_formats, as SChannel sends. */
    put16(ext, 10);
    put16(ext, 8);
    put16(ext, 6);
    put16(ext, 23);
    put16(ext, 24);
    put16(ext, 25);
    put16(ext, 11);
    put16(ext, 2);
    put8(ext, 1);
    put8(ext, 0);
    if (o->versions) {
        put16(ext, 43);
        put16(ext, 1 + 2 * o->nversions);
        put8(ext, 2 * o->nversions);
        for (size_t i = 0; i < o->nversions; i++)
            put16(ext, o->versions[i]);
    }
    if (o->pad) {
        put16(ext, 21);
        put16(ext, o->pad);
        for (size_t i = 0; i < o->pad; i++)
            put8(ext, 0);
    }
    if (!o->no_extensions) {
        put16(m, ext->len);
        putn(m, ext->b, ext->len);
    }
    size_t body = m->len - body_at;
    m->b[1] = (uint8_t)(body >> 16);
    m->b[2] = (uint8_t)(body >> 8);
    m->b[3] = (uint8_t)body;
    free(ext);
}

/* Wrap a handshake message in records of at most SPLIT bytes. */
static void
wrap(const struct opts *o, const struct buf *m, struct buf *out)
{
    size_t split = o->split ? o->split : 16384;

    out->len = 0;
    for (size_t off = 0; off < m->len;) {
        size_t n = m->len - off < split ? m->len - off : split;
        put8(out, 22);
        put16(out, o->rec_version ? o->rec_version : 0x0301);
        put16(out, n);
        putn(out, m->b + off, n);
        off += n;
    }
}

static struct buf *
build(const struct opts *o)
{
    struct buf *m = calloc(1, sizeof(*m)), *r = calloc(1, sizeof(*r));

    assert_non_null(m);
    assert_non_null(r);
    build_msg(o, m);
    wrap(o, m, r);
    free(m);
    return r;
}

/* Every proper prefix is "need more"; the whole is parsed. */
static void
check_prefixes(const uint8_t *p, size_t len)
{
    struct hello h;

    for (size_t i = 0; i < len; i++) {
        enum hello_rc rc = hello_parse(p, i, &h);
        if (rc != HELLO_NEED_MORE)
            fail_msg("prefix of %zu/%zu bytes: %d", i, len, rc);
    }
}

/* ------------------------------------------------------------------------ */
/* Built hellos */

static void
test_tls10_schannel_with_sni(void **state)
{
    struct opts o = {.sni = "API.Raygun.com"};
    struct buf *r = build(&o);
    struct hello h;

    (void)state;
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);
    assert_int_equal(h.max_version, 10);
    assert_int_equal(h.min_version, 10);
    assert_string_equal(h.sni, "api.raygun.com");
    assert_int_equal(h.need, r->len);
    check_prefixes(r->b, r->len);

    /* Application data (or anything) after the hello is not ours to count. */
    memcpy(r->b + r->len, "\x17\x03\x01\x00\x01x", 6);
    assert_int_equal(hello_parse(r->b, r->len + 6, &h), HELLO_TLS);
    assert_int_equal(h.need, r->len);
    free(r);
}

static void
test_xp_no_extensions(void **state)
{
    struct opts o = {.no_extensions = true, .sid_len = 32};
    struct buf *r = build(&o);
    struct hello h;

    (void)state;
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);
    assert_int_equal(h.max_version, 10);
    assert_string_equal(h.sni, "");
    check_prefixes(r->b, r->len);
    free(r);
}

static void
test_legacy_versions(void **state)
{
    static const struct {
        unsigned legacy;
        int max, min;
    } cases[] = {
        {0x0300, 0, 0}, {0x0301, 10, 10}, {0x0302, 11, 10}, {0x0303, 12, 10}, {0x0304, 13, 10},
    };
    struct hello h;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct opts o = {.legacy = cases[i].legacy, .sni = "a"};
        struct buf *r = build(&o);
        assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);
        assert_int_equal(h.max_version, cases[i].max);
        assert_int_equal(h.min_version, cases[i].min);
        free(r);
    }
}

static void
test_tls13_supported_versions(void **state)
{
    static const uint16_t v13[] = {0x0304, 0x0303};
    static const uint16_t grease[] = {0x5a5a, 0x0304, 0x0303, 0x0302, 0x0301, 0x1a1a};
    static const uint16_t only13[] = {0x0304};
    static const uint16_t only_grease[] = {0x7a7a};
    struct opts o = {.legacy = 0x0303,
                     .sni = "example.org",
                     .versions = v13,
                     .nversions = 2,
                     .rec_version = 0x0301,
                     .sid_len = 32};
    struct buf *r = build(&o);
    struct hello h;

    (void)state;
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);
    assert_int_equal(h.max_version, 13);
    assert_int_equal(h.min_version, 12);
    assert_string_equal(h.sni, "example.org");
    free(r);

    o.versions = grease;
    o.nversions = 6;
    o.grease_ext = true;
    r = build(&o);
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);
    assert_int_equal(h.max_version, 13);
    assert_int_equal(h.min_version, 10);
    free(r);

    o.versions = only13;
    o.nversions = 1;
    r = build(&o);
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);
    assert_int_equal(h.max_version, 13);
    assert_int_equal(h.min_version, 13);
    free(r);

    /* Nothing known in the list: fall back on legacy_version. */
    o.versions = only_grease;
    r = build(&o);
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);
    assert_int_equal(h.max_version, 12);
    assert_int_equal(h.min_version, 10);
    free(r);
}

static void
test_split_records(void **state)
{
    static const uint16_t v13[] = {0x0304, 0x0303};
    struct opts o = {.legacy = 0x0303,
                     .sni = "split.example",
                     .versions = v13,
                     .nversions = 2,
                     .pad = 600,
                     .split = 300};
    struct buf *r = build(&o);
    struct hello h;

    (void)state;
    assert_true(r->len > 2 * 305); /* three records or more */
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);
    assert_int_equal(h.need, r->len);
    assert_string_equal(h.sni, "split.example");
    assert_int_equal(h.max_version, 13);
    check_prefixes(r->b, r->len);
    free(r);

    /* The handshake header itself split: one byte per record. */
    o.split = 1;
    o.pad = 0;
    r = build(&o);
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);
    assert_int_equal(h.need, r->len);
    assert_string_equal(h.sni, "split.example");
    free(r);
}

static void
test_big_hello(void **state)
{
    struct opts o = {.sni = "big.example", .split = 16384};
    struct buf *r;
    struct hello h;

    (void)state;
    /* Exactly HELLO_MAX bytes of handshake message (the padding extension
     * makes up the difference): accepted, in one full record. */
    struct buf *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    build_msg(&o, m);
    o.pad = HELLO_MAX - m->len - 4;
    free(m);
    r = build(&o);
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);
    assert_int_equal(h.need, r->len);
    free(r);

    /* One byte more: too big, known as soon as the header is in. */
    o.pad++;
    r = build(&o);
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TOO_BIG);
    assert_int_equal(hello_parse(r->b, 9, &h), HELLO_TOO_BIG);
    free(r);
}

static void
test_sni_rules(void **state)
{
    static const char *const bad[] = {"a b.example", "tab\there", "del\x7fx", "\x80x"};
    struct hello h;
    char name[300];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct opts o = {.sni = bad[i]};
        struct buf *r = build(&o);
        assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_BAD);
        free(r);
    }

    /* 255 bytes fit; 256 do not. */
    memset(name, 'a', sizeof(name));
    name[255] = 0;
    {
        struct opts o = {.sni = name};
        struct buf *r = build(&o);
        assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);
        assert_int_equal(strlen(h.sni), 255);
        free(r);
    }
    name[255] = 'a';
    name[256] = 0;
    {
        struct opts o = {.sni = name};
        struct buf *r = build(&o);
        assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_BAD);
        free(r);
    }
}

/* An embedded NUL, and a list whose first entry is not a host_name. */
static void
test_sni_hand_made(void **state)
{
    struct opts o = {.sni = "abcdefgh"};
    struct buf *r = build(&o);
    struct hello h;
    uint8_t *name;

    (void)state;
    name = memmem(r->b, r->len, "abcdefgh", 8);
    assert_non_null(name);
    name[3] = 0;
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_BAD);
    /* Type 1 (not host_name) before the name would be skipped, but a
     * host_name entry must then follow: turn the only entry into type 1. */
    name[3] = 'd';
    name[-3] = 1;
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);
    assert_string_equal(h.sni, "");
    free(r);
}

/* Flip lengths so they no longer fit: BAD, never a read past the end. */
static void
test_malformed(void **state)
{
    struct opts o = {.sni = "x.example", .sid_len = 4};
    struct buf *r = build(&o);
    struct hello h;
    size_t sid_at = 5 + 4 + 2 + 32; /* record, handshake header, version, random */

    (void)state;
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);

    r->b[sid_at] = 33; /* session ID over 32 */
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_BAD);
    r->b[sid_at] = 4;

    r->b[sid_at + 1 + 4 + 1] = 11; /* odd cipher_suites length */
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_BAD);
    r->b[sid_at + 1 + 4 + 1] = 12;

    r->b[5] = 2; /* ServerHello, not ClientHello */
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_BAD);
    r->b[5] = 1;

    r->b[9] = 2; /* legacy_version major 2 */
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_BAD);
    r->b[9] = 3;

    /* The extensions block one byte longer than the message. */
    size_t ext_at = sid_at + 1 + 4 + 2 + 12 + 2;
    r->b[ext_at + 1]++;
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_BAD);
    r->b[ext_at + 1]--;

    /* The record longer than the handshake message: extra bytes. */
    r->b[4]++;
    r->b[r->len++] = 0;
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_BAD);
    r->len--;
    r->b[4]--;
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_TLS);

    /* Record layer: empty record, oversized record, wrong major version,
     * a second record of another type. */
    {
        static const uint8_t empty[] = {22, 3, 1, 0, 0};
        static const uint8_t huge[] = {22, 3, 1, 0x48, 0x01, 1};
        static const uint8_t major[] = {22, 2};
        assert_int_equal(hello_parse(empty, sizeof(empty), &h), HELLO_BAD);
        assert_int_equal(hello_parse(huge, sizeof(huge), &h), HELLO_BAD);
        assert_int_equal(hello_parse(major, sizeof(major), &h), HELLO_BAD);
    }
    free(r);

    o.split = 50;
    r = build(&o);
    r->b[55] = 23;
    assert_int_equal(hello_parse(r->b, r->len, &h), HELLO_BAD);
    assert_int_equal(hello_parse(r->b, 56, &h), HELLO_BAD);
    free(r);
}

/* Random bytes after a handshake record header never crash and never claim
 * a complete hello that is not one. */
static void
test_garbage(void **state)
{
    uint8_t b[600];
    struct hello h;
    unsigned seed = 12345;

    (void)state;
    for (int round = 0; round < 20000; round++) {
        size_t len = 5 + (size_t)(seed % 300);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245 + 12345;
            b[i] = (uint8_t)(seed >> 16);
        }
        b[0] = 22;
        b[1] = 3;
        b[3] = 0;
        b[4] = (uint8_t)(len - 5);
        enum hello_rc rc = hello_parse(b, len, &h);
        assert_true(rc == HELLO_BAD || rc == HELLO_NEED_MORE || rc == HELLO_TLS ||
                    rc == HELLO_TOO_BIG);
        if (rc == HELLO_TLS)
            assert_true(h.need <= len);
    }
}

static void
test_sslv2_and_plain(void **state)
{
    /* An SSLv2-compatible CLIENT-HELLO offering up to TLS 1.0. */
    static const uint8_t v2[] = {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10};
    static const char get[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
    static const char connect[] = "CONNECT api.raygun.com:443 HTTP/1.1\r\n\r\n";
    struct hello h;

    (void)state;
    assert_int_equal(hello_parse(v2, sizeof(v2), &h), HELLO_SSLV2);
    assert_int_equal(hello_parse(v2, 2, &h), HELLO_NEED_MORE);
    assert_int_equal(hello_parse((const uint8_t *)get, strlen(get), &h), HELLO_PLAIN);
    assert_int_equal(hello_parse((const uint8_t *)get, 1, &h), HELLO_PLAIN);
    assert_int_equal(hello_parse((const uint8_t *)connect, strlen(connect), &h), HELLO_PLAIN);
    assert_int_equal(hello_parse((const uint8_t *)"", 0, &h), HELLO_NEED_MORE);
    /* A high byte that is not an SSLv2 hello is not TLS either. */
    assert_int_equal(hello_parse((const uint8_t *)"\xff\xff\xff\xff", 4, &h), HELLO_PLAIN);
}

/* ------------------------------------------------------------------------ */
/* Real hellos from openssl s_client */

/* Accept one connection from `openssl s_client ARGS` and parse what it
 * sends until hello_parse decides. Returns -1 when openssl cannot run. */
static int
capture(const char *const extra[], struct hello *h, uint8_t *buf, size_t cap, size_t *len)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    char port[32];
    const char *argv[24];
    size_t n = 0;
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int ls, fd = -1, rc = HELLO_NEED_MORE, status;

    ls = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ls >= 0);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ls, 1), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
    snprintf(port, sizeof(port), "127.0.0.1:%u", ntohs(a.sin_port));

    argv[n++] = "openssl";
    argv[n++] = "s_client";
    argv[n++] = "-connect";
    argv[n++] = port;
    for (size_t i = 0; extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid, "openssl", &fa, NULL, (char *const *)argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(ls);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);

    struct pollfd pf = {.fd = ls, .events = POLLIN};
    if (poll(&pf, 1, 10000) == 1)
        fd = accept(ls, NULL, NULL);
    *len = 0;
    while (fd >= 0 && rc == HELLO_NEED_MORE && *len < cap) {
        pf.fd = fd;
        if (poll(&pf, 1, 10000) != 1)
            break;
        ssize_t r = read(fd, buf + *len, cap - *len);
        if (r <= 0)
            break;
        *len += (size_t)r;
        rc = hello_parse(buf, *len, h);
    }
    if (fd >= 0)
        close(fd);
    close(ls);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    return rc;
}

static void
test_openssl_clients(void **state)
{
    static const char *const tls1[] = {"-tls1",       "-cipher",        "DEFAULT:@SECLEVEL=0",
                                       "-servername", "API.Raygun.com", NULL};
    static const char *const tls11[] = {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0",
                                        "-noservername", NULL};
    static const char *const tls12[] = {"-tls1_2", "-servername", "api.raygun.com", NULL};
    static const char *const tls13[] = {"-tls1_3", "-servername", "api.raygun.com", NULL};
    static const char *const any[] = {"-servername", "api.raygun.com", NULL};
    static const struct {
        const char *const *args;
        int max, min;
        const char *sni;
    } cases[] = {
        {tls1, 10, 10, "api.raygun.com"},
        {tls11, 11, 10, ""},
        {tls12, 12, 10, "api.raygun.com"},
        {tls13, 13, 13, "api.raygun.com"},
        /* The lowest version depends on the local openssl.cnf: not checked. */
        {any, 13, -1, "api.raygun.com"},
    };
    static uint8_t buf[HELLO_MAX + 1024];
    struct hello h;
    size_t len = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = capture(cases[i].args, &h, buf, sizeof(buf), &len);
        if (rc == -1)
            skip();
        if (rc != HELLO_TLS)
            fail_msg("openssl s_client %s: hello_parse %d after %zu bytes", cases[i].args[0], rc,
                     len);
        assert_int_equal(h.max_version, cases[i].max);
        if (cases[i].min >= 0)
            assert_int_equal(h.min_version, cases[i].min);
        assert_string_equal(h.sni, cases[i].sni);
        assert_int_equal(h.need, len);
        check_prefixes(buf, len);
        /* Parsing again from scratch (the listener does, on every read)
         * gives the same answer. */
        struct hello h2;
        assert_int_equal(hello_parse(buf, len, &h2), HELLO_TLS);
        assert_memory_equal(&h, &h2, sizeof(h));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls10_schannel_with_sni),
        cmocka_unit_test(test_xp_no_extensions),
        cmocka_unit_test(test_legacy_versions),
        cmocka_unit_test(test_tls13_supported_versions),
        cmocka_unit_test(test_split_records),
        cmocka_unit_test(test_big_hello),
        cmocka_unit_test(test_sni_rules),
        cmocka_unit_test(test_sni_hand_made),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_sslv2_and_plain),
        cmocka_unit_test(test_openssl_clients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
