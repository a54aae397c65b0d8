/* Unit tests for mkcert: a CA and leaves that parse back and verify, file
 * modes, idempotence, and names refused before anything is written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mkcert.h"
#include "tlsio.h"

#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include <ftw.h>
#include <sys/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DAY (24 * 60 * 60)

struct fixture {
    char root[64];  /* the mkdtemp directory */
    char dir[128];  /* root/pki: mkcert creates it */
    char out[8192]; /* what the last run printed on stdout */
    char err[8192]; /* and on stderr */
};

/* Key parsing and pair checks want a random source (for blinding); the
 * kernel's is enough for a test. */
static int
test_rng(void *ctx, unsigned char *buf, size_t len)
{
    return getrandom(buf, len, 0) == (ssize_t)len ? 0 : -1;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    strcpy(f->root, "/tmp/tlslift-mkcert-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->dir, sizeof(f->dir), "%s/pki", f->root);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void
slurp(FILE *fp, char *buf, size_t len)
{
    size_t n;

    rewind(fp);
    n = fread(buf, 1, len - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

/* Run `mkcert ARGS...` (NULL-terminated); keep its output in F. */
static int
run(struct fixture *f, ...)
{
    char *argv[32];
    int argc = 0, rc;
    FILE *out = tmpfile(), *err = tmpfile();
    va_list ap;

    assert_non_null(out);
    assert_non_null(err);
    argv[argc++] = "mkcert";
    va_start(ap, f);
    while (argc < 31 && (argv[argc] = va_arg(ap, char *)) != NULL)
        argc++;
    va_end(ap);
    argv[argc] = NULL;
    rc = mkcert_run(argc, argv, out, err);
    slurp(out, f->out, sizeof(f->out));
    slurp(err, f->err, sizeof(f->err));
    return rc;
}

static const char *
path(const struct fixture *f, const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];

    snprintf(p, sizeof(buf[0]), "%s/%s", f->dir, name);
    return p;
}

static mode_t
mode_of(const char *p)
{
    struct stat st;

    assert_int_equal(stat(p, &st), 0);
    return st.st_mode & 07777;
}

static int
exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

static size_t
read_file(const char *p, char *buf, size_t len)
{
    FILE *fp = fopen(p, "rb");
    size_t n;

    assert_non_null(fp);
    n = fread(buf, 1, len, fp);
    fclose(fp);
    return n;
}

static void
expect_info(const mbedtls_x509_crt *c, const char *want)
{
    char info[4096];

    assert_true(mbedtls_x509_crt_info(info, sizeof(info), "", c) > 0);
    if (!strstr(info, want))
        fail_msg("\"%s\" not in:\n%s", want, info);
}

static time_t
x509_seconds(const mbedtls_x509_time *t)
{
    struct tm tm = {0};

    tm.tm_year = t->year - 1900;
    tm.tm_mon = t->mon - 1;
    tm.tm_mday = t->day;
    tm.tm_hour = t->hour;
    tm.tm_min = t->min;
    tm.tm_sec = t->sec;
    return timegm(&tm);
}

static void
expect_rsa2048_key(const char *p, const mbedtls_x509_crt *c)
{
    mbedtls_pk_context pk;

    assert_int_equal(mode_of(p), 0600);
    mbedtls_pk_init(&pk);
    assert_int_equal(mbedtls_pk_parse_keyfile(&pk, p, NULL, test_rng, NULL), 0);
    assert_int_equal(mbedtls_pk_get_type(&pk), MBEDTLS_PK_RSA);
    assert_int_equal(mbedtls_pk_get_bitlen(&pk), 2048);
    if (c)
        assert_int_equal(mbedtls_pk_check_pair(&c->pk, &pk, test_rng, NULL), 0);
    mbedtls_pk_free(&pk);
}

/* Verify the first certificate in LEAF_FILE against ca.crt for NAME. */
static uint32_t
verify_flags(const struct fixture *f, const char *leaf_file, const char *name)
{
    mbedtls_x509_crt leaf, ca;
    uint32_t flags = 0;

    mbedtls_x509_crt_init(&leaf);
    mbedtls_x509_crt_init(&ca);
    assert_int_equal(mbedtls_x509_crt_parse_file(&leaf, path(f, leaf_file)), 0);
    assert_int_equal(mbedtls_x509_crt_parse_file(&ca, path(f, "ca.crt")), 0);
    mbedtls_x509_crt_verify(&leaf, &ca, NULL, name, &flags, NULL, NULL);
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&leaf);
    return flags;
}

static void
test_ca(void **state)
{
    struct fixture *f = *state;
    mbedtls_x509_crt ca;
    uint32_t flags = 0;
    char want[512], key1[8192], key2[8192], crt1[8192], crt2[8192];
    size_t k1, k2, c1, c2;

    assert_int_equal(run(f, "--ca", f->dir, NULL), 0);
    snprintf(want, sizeof(want), "%s\n%s\n", path(f, "ca.key"), path(f, "ca.crt"));
    assert_string_equal(f->out, want);
    assert_int_equal(mode_of(f->dir), 0700);
    assert_int_equal(mode_of(path(f, "ca.crt")) & 0777, 0644);

    mbedtls_x509_crt_init(&ca);
    assert_int_equal(mbedtls_x509_crt_parse_file(&ca, path(f, "ca.crt")), 0);
    assert_null(ca.next);
    expect_rsa2048_key(path(f, "ca.key"), &ca);
    assert_int_equal(mbedtls_x509_crt_verify(&ca, &ca, NULL, NULL, &flags, NULL, NULL), 0);
    expect_info(&ca, "subject name      : CN=tlslift local CA (");
    expect_info(&ca, "basic constraints : CA=true, max_pathlen=0");
    expect_info(&ca, "signed using      : RSA with SHA-256");
    assert_int_equal(mbedtls_x509_crt_check_key_usage(&ca, MBEDTLS_X509_KU_KEY_CERT_SIGN |
                                                               MBEDTLS_X509_KU_CRL_SIGN),
                     0);
    assert_int_equal(ca.serial.len, 16);
    assert_int_equal(ca.serial.p[0] & 0x80, 0);
    assert_true(x509_seconds(&ca.valid_to) - x509_seconds(&ca.valid_from) == 3650L * DAY);
    assert_true(x509_seconds(&ca.valid_from) <= time(NULL));
    mbedtls_x509_crt_free(&ca);

    /* Again: nothing written, nothing changed, and it says why. */
    k1 = read_file(path(f, "ca.key"), key1, sizeof(key1));
    c1 = read_file(path(f, "ca.crt"), crt1, sizeof(crt1));
    assert_int_equal(run(f, "--ca", f->dir, NULL), 0);
    assert_string_equal(f->out, "");
    assert_non_null(strstr(f->err, "keeping the existing CA"));
    k2 = read_file(path(f, "ca.key"), key2, sizeof(key2));
    c2 = read_file(path(f, "ca.crt"), crt2, sizeof(crt2));
    assert_true(k1 == k2 && memcmp(key1, key2, k1) == 0);
    assert_true(c1 == c2 && memcmp(crt1, crt2, c1) == 0);
    /* No temporary files left behind. */
    assert_false(exists(path(f, ".ca.key")));
}

static void
test_leaf(void **state)
{
    struct fixture *f = *state;
    mbedtls_x509_crt chain, ca;
    char want[1024];

    /* No CA yet: it is made first. */
    assert_int_equal(run(f, "--ca", f->dir, "api.raygun.com", "127.0.0.1", NULL), 0);
    snprintf(want, sizeof(want), "%s\n%s\n%s\n%s\n", path(f, "ca.key"), path(f, "ca.crt"),
             path(f, "api.raygun.com.key"), path(f, "api.raygun.com.crt"));
    assert_string_equal(f->out, want);

    mbedtls_x509_crt_init(&chain);
    mbedtls_x509_crt_init(&ca);
    assert_int_equal(mbedtls_x509_crt_parse_file(&chain, path(f, "api.raygun.com.crt")), 0);
    assert_int_equal(mbedtls_x509_crt_parse_file(&ca, path(f, "ca.crt")), 0);
    /* Leaf, then the CA. */
    assert_non_null(chain.next);
    assert_null(chain.next->next);
    assert_int_equal(chain.next->raw.len, ca.raw.len);
    assert_memory_equal(chain.next->raw.p, ca.raw.p, ca.raw.len);
    expect_rsa2048_key(path(f, "api.raygun.com.key"), &chain);
    assert_int_equal(mode_of(path(f, "api.raygun.com.crt")) & 0777, 0644);

    expect_info(&chain, "subject name      : CN=api.raygun.com");
    expect_info(&chain, "signed using      : RSA with SHA-256");
    expect_info(&chain, "dNSName : api.raygun.com");
    expect_info(&chain, "iPAddress : 127.0.0.1");
    expect_info(&chain, "basic constraints : CA=false");
    assert_int_equal(mbedtls_x509_crt_check_key_usage(&chain, MBEDTLS_X509_KU_DIGITAL_SIGNATURE |
                                                                  MBEDTLS_X509_KU_KEY_ENCIPHERMENT),
                     0);
    assert_int_not_equal(mbedtls_x509_crt_check_key_usage(&chain, MBEDTLS_X509_KU_KEY_CERT_SIGN),
                         0);
    assert_int_equal(
        mbedtls_x509_crt_check_extended_key_usage(&chain, MBEDTLS_OID_SERVER_AUTH,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
        0);
    assert_int_not_equal(
        mbedtls_x509_crt_check_extended_key_usage(&chain, MBEDTLS_OID_CLIENT_AUTH,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
        0);
    assert_true(x509_seconds(&chain.valid_to) - x509_seconds(&chain.valid_from) == 825L * DAY);
    assert_int_equal(chain.serial.len, 16);
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&chain);

    assert_int_equal(verify_flags(f, "api.raygun.com.crt", "api.raygun.com"), 0);
    assert_int_equal(verify_flags(f, "api.raygun.com.crt", "API.Raygun.com"), 0);
    assert_int_equal(verify_flags(f, "api.raygun.com.crt", "127.0.0.1"), 0);
    assert_true(verify_flags(f, "api.raygun.com.crt", "raygun.com") &
                MBEDTLS_X509_BADCERT_CN_MISMATCH);
    assert_true(verify_flags(f, "api.raygun.com.crt", "127.0.0.2") &
                MBEDTLS_X509_BADCERT_CN_MISMATCH);
}

/* A leaf from a CA made earlier keeps that CA, and --days sets its life. */
static void
test_leaf_existing_ca(void **state)
{
    struct fixture *f = *state;
    mbedtls_x509_crt leaf;
    char key1[8192], key2[8192], want[512];
    size_t k1, k2;

    assert_int_equal(run(f, "--ca", f->dir, NULL), 0);
    k1 = read_file(path(f, "ca.key"), key1, sizeof(key1));
    assert_int_equal(
        run(f, "--ca", f->dir, "--days", "30", "IP6.example.ORG", "::1", "*.example.org", NULL), 0);
    snprintf(want, sizeof(want), "%s\n%s\n", path(f, "ip6.example.org.key"),
             path(f, "ip6.example.org.crt"));
    assert_string_equal(f->out, want);
    k2 = read_file(path(f, "ca.key"), key2, sizeof(key2));
    assert_true(k1 == k2 && memcmp(key1, key2, k1) == 0);

    mbedtls_x509_crt_init(&leaf);
    assert_int_equal(mbedtls_x509_crt_parse_file(&leaf, path(f, "ip6.example.org.crt")), 0);
    assert_true(x509_seconds(&leaf.valid_to) - x509_seconds(&leaf.valid_from) == 30L * DAY);
    mbedtls_x509_crt_free(&leaf);
    assert_int_equal(verify_flags(f, "ip6.example.org.crt", "ip6.example.org"), 0);
    assert_int_equal(verify_flags(f, "ip6.example.org.crt", "::1"), 0);
    assert_int_equal(verify_flags(f, "ip6.example.org.crt", "api.example.org"), 0);
    assert_true(verify_flags(f, "ip6.example.org.crt", "a.b.example.org") &
                MBEDTLS_X509_BADCERT_CN_MISMATCH);

    /* A wildcard first: the file name spells it out. */
    assert_int_equal(run(f, "--ca", f->dir, "*.example.net", NULL), 0);
    assert_non_null(strstr(f->out, "/_wildcard.example.net.crt\n"));
    assert_int_equal(verify_flags(f, "_wildcard.example.net.crt", "www.example.net"), 0);

    /* Issuing again replaces the leaf (renewal). */
    assert_int_equal(run(f, "--ca", f->dir, "ip6.example.org", NULL), 0);
    assert_true(verify_flags(f, "ip6.example.org.crt", "::1") & MBEDTLS_X509_BADCERT_CN_MISMATCH);
}

/* A leaf never outlives its CA: --days beyond the CA's end is cut there, and
 * a life over 825 days is noted as one Apple clients refuse. */
static void
test_days_beyond_ca(void **state)
{
    struct fixture *f = *state;
    mbedtls_x509_crt leaf, ca;

    assert_int_equal(run(f, "--ca", f->dir, "--days", "5000", "long.example", NULL), 0);
    assert_non_null(strstr(f->err, "more than 825 days"));
    assert_non_null(strstr(f->err, "the CA expires on"));
    mbedtls_x509_crt_init(&leaf);
    mbedtls_x509_crt_init(&ca);
    assert_int_equal(mbedtls_x509_crt_parse_file(&leaf, path(f, "long.example.crt")), 0);
    assert_int_equal(mbedtls_x509_crt_parse_file(&ca, path(f, "ca.crt")), 0);
    assert_true(x509_seconds(&leaf.valid_to) == x509_seconds(&ca.valid_to));
    mbedtls_x509_crt_free(&ca);
    mbedtls_x509_crt_free(&leaf);
    assert_int_equal(verify_flags(f, "long.example.crt", "long.example"), 0);
}

static void
test_bad_names(void **state)
{
    static const char *const bad[] = {
        "",
        "-api.example.com",
        "api-.example.com",
        "api..example.com",
        ".example.com",
        "example.com.",
        "api example.com",
        "api_x.example.com",
        "api.exa;mple.com",
        "m\xc3\xbcnchen.de",
        "*.com",
        "*example.com",
        "api.*.example.com",
        "*",
        "127.1",
        "10.0.0.256",
        "::g",
        "[::1]",
        "fe80::1%eth0",
        "ca",
        "CA",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example.com",
    };
    struct fixture *f = *state;
    char longname[300];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(run(f, "--ca", f->dir, "good.example.com", bad[i], NULL), 2);
        if (!strstr(f->err, "tlslift mkcert:"))
            fail_msg("no error for \"%s\": %s", bad[i], f->err);
        assert_string_equal(f->out, "");
    }
    /* 254 characters in labels of 62. */
    memset(longname, 'a', 254);
    for (i = 62; i < 254; i += 63)
        longname[i] = '.';
    longname[254] = '\0';
    assert_int_equal(run(f, "--ca", f->dir, longname, NULL), 2);
    assert_non_null(strstr(f->err, "longer than 253"));
    assert_int_equal(run(f, "--ca", f->dir, "a_b.example", NULL), 2);
    assert_non_null(strstr(f->err, "the name \"a_b.example\" has a character"));
    /* Nothing was created, not even the directory. */
    assert_false(exists(f->dir));
}

static void
test_usage(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(run(f, "-h", NULL), 0);
    assert_non_null(strstr(f->out, "tlslift mkcert --ca DIR"));
    assert_int_equal(run(f, "--help", NULL), 0);
    assert_int_equal(run(f, NULL), 2);
    assert_non_null(strstr(f->err, "--ca DIR is required"));
    assert_int_equal(run(f, "api.example.com", NULL), 2);
    assert_int_equal(run(f, "--ca", NULL), 2);
    assert_int_equal(run(f, "--ca", f->dir, "--bogus", NULL), 2);
    assert_non_null(strstr(f->err, "unknown option --bogus"));
    assert_int_equal(run(f, "--ca", f->dir, "--days", "0", "a.example", NULL), 2);
    assert_int_equal(run(f, "--ca", f->dir, "--days", "12x", "a.example", NULL), 2);
    assert_int_equal(run(f, "--ca", f->dir, "--days=-5", "a.example", NULL), 2);
    assert_int_equal(run(f, "--ca", f->dir, "--days", "30", NULL), 2);
    assert_false(exists(f->dir));
    /* The = forms work too. */
    assert_int_equal(run(f, "--ca=", NULL), 2);
}

/* A CA directory that is broken is reported, not repaired behind the
 * operator's back. */
static void
test_broken_ca(void **state)
{
    struct fixture *f = *state;
    char other[256];

    assert_int_equal(run(f, "--ca", f->dir, NULL), 0);
    assert_int_equal(unlink(path(f, "ca.crt")), 0);
    assert_int_equal(run(f, "--ca", f->dir, "a.example", NULL), 1);
    assert_non_null(strstr(f->err, "ca.crt does not"));
    assert_false(exists(path(f, "a.example.key")));

    /* A ca.crt from another CA. */
    snprintf(other, sizeof(other), "%s/other", f->root);
    assert_int_equal(run(f, "--ca", other, NULL), 0);
    snprintf(other, sizeof(other), "%s/other/ca.crt", f->root);
    assert_int_equal(rename(other, path(f, "ca.crt")), 0);
    assert_int_equal(run(f, "--ca", f->dir, "a.example", NULL), 1);
    assert_non_null(strstr(f->err, "is not the certificate of"));
    assert_false(exists(path(f, "a.example.key")));

    /* A ca.crt without its key is replaced by a new CA, and it says so. */
    assert_int_equal(unlink(path(f, "ca.key")), 0);
    assert_int_equal(run(f, "--ca", f->dir, NULL), 0);
    assert_non_null(strstr(f->err, "has no ca.key beside it; replacing it"));
    assert_int_equal(run(f, "--ca", f->dir, "a.example", NULL), 0);
    assert_int_equal(verify_flags(f, "a.example.crt", "a.example"), 0);

    /* DIR is a file. */
    snprintf(other, sizeof(other), "%s/other/ca.key", f->root);
    assert_int_equal(run(f, "--ca", other, NULL), 1);
    assert_non_null(strstr(f->err, "not a directory"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaf_existing_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_days_beyond_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_ca, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tlsio_global_free();
    return rc;
}
