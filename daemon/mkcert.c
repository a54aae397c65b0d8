/*
 * mkcert: a local CA and leaf certificates. See mkcert.h for the face.
 *
 * The style keeps mbedTLS inside tlsio.c; this file is the one other user,
 * on purpose: key generation and the X.509 writer serve only this offline
 * command, so they stay out of the TLS face that every connection goes
 * through. It keeps its own entropy source and DRBG for the same reason, and
 * takes from tlsio only tlsio_global_init() (psa_crypto_init, which signing
 * and the SHA-1 key identifiers go through).
 */
#include "mkcert.h"

#include "tlsio.h"

#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/rsa.h>
#include <mbedtls/x509_crt.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* RSA, not ECDSA: Windows XP/7 SChannel and .NET 3.5 speaking TLS 1.0 offer
 * only RSA-authenticated suites (RSA and ECDHE_RSA key exchange). */
#define RSA_BITS     2048
#define RSA_EXPONENT 65537
#define CA_DAYS      3650
/* Apple platforms refuse a TLS server certificate valid for more than 825
 * days even under a locally trusted root (the 398-day limit is only for
 * publicly trusted ones), and Chromium on macOS goes by the platform verifier.
 * 825 is the longest default every client accepts. */
#define LEAF_DAYS 825
#define MAX_DAYS  36500
/* Certificates start an hour in the past so that a client whose clock lags a
 * little (a Windows VM after resume, say) does not see them as not yet valid. */
#define BACKDATE_SECS (60 * 60)
#define DAY_SECS      ((time_t)24 * 60 * 60)
/* 16 random bytes, the sign bit cleared so the INTEGER stays positive. */
#define SERIAL_LEN 16
/* An RSA 2048 private key in PKCS#1 PEM is about 1.7 KB. */
#define KEY_PEM_MAX 4096
/* RFC 5280's upper bound for a commonName. */
#define CN_MAX        64
#define CA_CN_PREFIX  "tlslift local CA ("
#define DNS_NAME_MAX  253
#define DNS_LABEL_MAX 63

#define PEM_BEGIN_CRT "-----BEGIN CERTIFICATE-----\n"
#define PEM_END_CRT   "-----END CERTIFICATE-----\n"

/* One validated name from the command line. */
struct name {
    char text[DNS_NAME_MAX + 1]; /* lower-cased when a DNS name */
    int is_ip;
    unsigned char ip[16];
    size_t ip_len;
};

struct rng {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
};

/* A file written under a temporary name in its final directory, waiting to
 * be renamed into place. tmp is "" when nothing is pending. */
struct staged {
    char tmp[PATH_MAX];
    char path[PATH_MAX];
};

/* The CA, loaded or just made. */
struct ca {
    mbedtls_pk_context key;
    mbedtls_x509_crt crt;
    char subject[512];
};

/* What a new certificate says; the writer takes string names. */
struct cert_spec {
    mbedtls_pk_context *subject_key, *issuer_key;
    const char *subject, *issuer;
    const char *not_before, *not_after;
    int is_ca;
    const mbedtls_x509_san_list *san; /* leaves only */
    size_t san_bytes;                 /* an upper bound of the SAN's encoding */
};

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: tlslift mkcert --ca DIR                    make a local CA in DIR\n"
            "       tlslift mkcert --ca DIR [--days N] NAME... issue a leaf for NAME...\n"
            "\n"
            "The CA is DIR/ca.key and DIR/ca.crt (RSA 2048, 10 years); an existing\n"
            "ca.key is kept. A leaf is DIR/NAME.key and DIR/NAME.crt (the leaf, then\n"
            "the CA) for the first NAME, valid for every NAME: host names (a leading\n"
            "\"*.\" for a wildcard, written as _wildcard in the file name) or IPv4/IPv6\n"
            "addresses. It is valid for %d days (the most Apple clients accept) unless\n"
            "--days says otherwise, and replaces an earlier leaf of that name.\n"
            "Point tls_cert and tls_key at the leaf's files; have the client trust\n"
            "DIR/ca.crt (Windows: certutil -addstore root ca.crt). Keep ca.key\n"
            "secret: whoever holds it can impersonate any site to those clients.\n",
            LEAF_DAYS);
}

static void
say_mbedtls(FILE *err, const char *what, const char *path, int rc)
{
    char buf[160];

    mbedtls_strerror(rc, buf, sizeof(buf));
    fprintf(err, "tlslift mkcert: %s%s%s: %s\n", what, path ? " " : "", path ? path : "", buf);
}

static int
rng_init(struct rng *r, FILE *err)
{
    static const char pers[] = "tlslift mkcert";
    int rc;

    mbedtls_entropy_init(&r->entropy);
    mbedtls_ctr_drbg_init(&r->drbg);
    rc = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->entropy,
                               (const unsigned char *)pers, sizeof(pers) - 1);
    if (rc != 0) {
        say_mbedtls(err, "cannot seed the random generator", NULL, rc);
        mbedtls_ctr_drbg_free(&r->drbg);
        mbedtls_entropy_free(&r->entropy);
        return -1;
    }
    return 0;
}

static void
rng_free(struct rng *r)
{
    mbedtls_ctr_drbg_free(&r->drbg);
    mbedtls_entropy_free(&r->entropy);
}

/* Check one DNS name: labels of letters, digits and '-' (not at either end),
 * optionally "*." in front of at least two more labels. NULL when it is
 * good, else why not. */
static const char *
dns_name_problem(const char *s)
{
    size_t len = strlen(s), label = 0, labels = 0;
    int digits_only = 1;
    const char *p = s;

    if (len == 0)
        return "is empty";
    if (len > DNS_NAME_MAX)
        return "is longer than 253 characters";
    if (s[len - 1] == '.')
        return "ends with a dot (leave it out)";
    if (p[0] == '*') {
        if (p[1] != '.')
            return "has a wildcard that is not a whole first label (*.example.com)";
        p += 2;
    }
    for (; *p; p++) {
        char c = *p;
        if (c == '.') {
            if (label == 0)
                return "has an empty label";
            if (p[-1] == '-')
                return "has a label ending with '-'";
            label = 0;
            continue;
        }
        if (label == 0) {
            labels++;
            digits_only = 1;
            if (c == '-')
                return "has a label starting with '-'";
        }
        if (++label > DNS_LABEL_MAX)
            return "has a label longer than 63 characters";
        if (c == '*')
            return "has a wildcard that is not a whole first label (*.example.com)";
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return "has a character other than letters, digits, '-' and '.'";
        if (c < '0' || c > '9')
            digits_only = 0;
    }
    if (label == 0)
        return "has an empty label";
    if (p[-1] == '-')
        return "has a label ending with '-'";
    /* "127.1" or "10.0.0.256" is a mistyped address, not a host name. */
    if (digits_only)
        return "looks like an IP address but is not one";
    /* A wildcard for a whole top-level domain is refused by every client. */
    if (s[0] == '*' && labels < 2)
        return "is a wildcard that needs at least two labels after \"*.\"";
    return NULL;
}

/* Fill N from TEXT: an IPv6 or IPv4 literal, else a DNS name. -1 with the
 * reason on ERR when it is neither. */
static int
name_parse(struct name *n, const char *text, FILE *err)
{
    const char *why;
    size_t i;

    memset(n, 0, sizeof(*n));
    if (strchr(text, ':')) {
        if (inet_pton(AF_INET6, text, n->ip) != 1) {
            fprintf(err, "tlslift mkcert: \"%s\" is not an IPv6 address (no brackets, no zone)\n",
                    text);
            return -1;
        }
        n->is_ip = 1;
        n->ip_len = 16;
    } else if (inet_pton(AF_INET, text, n->ip) == 1) {
        n->is_ip = 1;
        n->ip_len = 4;
    } else if ((why = dns_name_problem(text)) != NULL) {
        fprintf(err, "tlslift mkcert: the name \"%s\" %s\n", text, why);
        return -1;
    }
    /* Both kinds fit: an address is at most 45 characters. */
    if (strlen(text) >= sizeof(n->text)) {
        fprintf(err, "tlslift mkcert: the name \"%s\" is too long\n", text);
        return -1;
    }
    for (i = 0; text[i]; i++)
        n->text[i] = (text[i] >= 'A' && text[i] <= 'Z') ? (char)(text[i] - 'A' + 'a') : text[i];
    return 0;
}

static int
name_same(const struct name *a, const struct name *b)
{
    if (a->is_ip != b->is_ip)
        return 0;
    if (a->is_ip)
        return a->ip_len == b->ip_len && memcmp(a->ip, b->ip, a->ip_len) == 0;
    return strcmp(a->text, b->text) == 0;
}

/* The file name stem for a leaf: the first name, with a leading '*' spelled
 * "_wildcard" so that shells do not expand it. */
static int
name_stem(const struct name *n, char *buf, size_t len)
{
    int w = n->text[0] == '*' ? snprintf(buf, len, "_wildcard%s", n->text + 1)
                              : snprintf(buf, len, "%s", n->text);
    return w < 0 || (size_t)w >= len ? -1 : 0;
}

static int
path_join(char *buf, size_t len, const char *dir, const char *prefix, const char *name,
          const char *suffix)
{
    int w = snprintf(buf, len, "%s/%s%s%s", dir, prefix, name, suffix);
    return w < 0 || (size_t)w >= len ? -1 : 0;
}

/* Write DATA to a new temporary file beside DIR/NAME, with MODE. */
static int
stage(struct staged *s, const char *dir, const char *name, const void *data, size_t len,
      mode_t mode, FILE *err)
{
    const unsigned char *p = data;
    int fd, e;

    s->tmp[0] = '\0';
    if (path_join(s->path, sizeof(s->path), dir, "", name, "") != 0 ||
        path_join(s->tmp, sizeof(s->tmp), dir, ".", name, ".XXXXXX") != 0) {
        fprintf(err, "tlslift mkcert: %s/%s: the path is too long\n", dir, name);
        s->tmp[0] = '\0';
        return -1;
    }
    /* mkostemp opens with O_CREAT|O_EXCL and mode 0600, so a key is never
     * readable by anyone else, not even for an instant, and nothing already
     * in DIR (a planted symlink, say) is followed. */
    fd = mkostemp(s->tmp, O_CLOEXEC);
    if (fd < 0) {
        fprintf(err, "tlslift mkcert: cannot create a file in %s: %s\n", dir, strerror(errno));
        s->tmp[0] = '\0';
        return -1;
    }
    if (fchmod(fd, mode) != 0)
        goto fail;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            goto fail;
        }
        p += w;
        len -= (size_t)w;
    }
    /* On disk before the rename, so a crash leaves the old file or the
     * whole new one, never an empty one. */
    if (fsync(fd) != 0)
        goto fail;
    e = close(fd);
    fd = -1;
    if (e != 0)
        goto fail;
    return 0;

fail:
    e = errno;
    fprintf(err, "tlslift mkcert: cannot write %s: %s\n", s->tmp, strerror(e));
    if (fd >= 0)
        close(fd);
    unlink(s->tmp);
    s->tmp[0] = '\0';
    return -1;
}

static void
discard(struct staged *s)
{
    if (s->tmp[0])
        unlink(s->tmp);
    s->tmp[0] = '\0';
}

/* Rename a staged file into place. With NOREPLACE an existing file is kept
 * and the result is 1 (the staged file is discarded). */
static int
commit(struct staged *s, int noreplace, FILE *err)
{
    struct stat st;

    if (noreplace) {
        /* Atomic: an existing CA key survives even a second mkcert racing
         * this one. */
        if (renameat2(AT_FDCWD, s->tmp, AT_FDCWD, s->path, RENAME_NOREPLACE) == 0) {
            s->tmp[0] = '\0';
            return 0;
        }
        if (errno == EEXIST) {
            discard(s);
            return 1;
        }
        if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
            fprintf(err, "tlslift mkcert: cannot rename %s to %s: %s\n", s->tmp, s->path,
                    strerror(errno));
            return -1;
        }
        /* A file system without RENAME_NOREPLACE: check, then rename. */
        if (lstat(s->path, &st) == 0) {
            discard(s);
            return 1;
        }
    }
    if (rename(s->tmp, s->path) != 0) {
        fprintf(err, "tlslift mkcert: cannot rename %s to %s: %s\n", s->tmp, s->path,
                strerror(errno));
        return -1;
    }
    s->tmp[0] = '\0';
    return 0;
}

/* Make the renames in DIR durable. */
static int
sync_dir(const char *dir, FILE *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL)) {
        fprintf(err, "tlslift mkcert: cannot sync %s: %s\n", dir, strerror(errno));
        rc = -1;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Create DIR with mode 0700 unless it exists (as a directory). */
static int
ensure_dir(const char *dir, FILE *err)
{
    struct stat st;

    if (mkdir(dir, 0700) == 0)
        return 0;
    if (errno != EEXIST) {
        fprintf(err, "tlslift mkcert: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(err, "tlslift mkcert: %s exists and is not a directory\n", dir);
        return -1;
    }
    return 0;
}

/* "YYYYMMDDhhmmss" in UTC, as the X.509 writer takes it. */
static int
format_time(time_t t, char out[16])
{
    struct tm tm;

    if (!gmtime_r(&t, &tm) || strftime(out, 16, "%Y%m%d%H%M%S", &tm) != 14)
        return -1;
    return 0;
}

static int
gen_key(mbedtls_pk_context *pk, struct rng *r, FILE *err)
{
    int rc = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA));

    if (rc == 0)
        rc = mbedtls_rsa_gen_key(mbedtls_pk_rsa(*pk), mbedtls_ctr_drbg_random, &r->drbg, RSA_BITS,
                                 RSA_EXPONENT);
    if (rc != 0) {
        say_mbedtls(err, "cannot make an RSA key", NULL, rc);
        return -1;
    }
    return 0;
}

/* Stage PK as PEM, mode 0600; the PEM text is wiped from memory after. */
static int
stage_key(struct staged *s, const char *dir, const char *name, mbedtls_pk_context *pk, FILE *err)
{
    unsigned char pem[KEY_PEM_MAX];
    int rc = mbedtls_pk_write_key_pem(pk, pem, sizeof(pem));

    if (rc != 0)
        say_mbedtls(err, "cannot encode the key for", name, rc);
    else
        rc = stage(s, dir, name, pem, strlen((const char *)pem), 0600, err);
    mbedtls_platform_zeroize(pem, sizeof(pem));
    return rc != 0 ? -1 : 0;
}

/* extKeyUsage = SEQUENCE { id-kp-serverAuth }, written by hand because
 * mbedtls_x509write_crt_set_ext_key_usage marks it critical; public CAs issue
 * it non-critical, the form every old client has been tested against. */
static const unsigned char eku_server_auth[] = {
    0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01,
};

/* The DER of a new certificate in a malloc'd *DER. */
static int
write_cert(const struct cert_spec *cs, struct rng *r, unsigned char **der, size_t *der_len,
           FILE *err)
{
    mbedtls_x509write_cert w;
    unsigned char serial[SERIAL_LEN];
    unsigned char *buf = NULL;
    size_t cap = 4096 + cs->san_bytes;
    const char *what = "cannot make a random serial number";
    int rc;

    mbedtls_x509write_crt_init(&w);
    rc = mbedtls_ctr_drbg_random(&r->drbg, serial, sizeof(serial));
    if (rc != 0)
        goto fail;
    /* Positive, and the first byte non-zero so DER keeps all 16 bytes. */
    serial[0] &= 0x7f;
    if (serial[0] == 0)
        serial[0] = 0x01;

    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, cs->subject_key);
    mbedtls_x509write_crt_set_issuer_key(&w, cs->issuer_key);
    what = "cannot set the certificate's fields";
    if ((rc = mbedtls_x509write_crt_set_serial_raw(&w, serial, sizeof(serial))) != 0 ||
        (rc = mbedtls_x509write_crt_set_subject_name(&w, cs->subject)) != 0 ||
        (rc = mbedtls_x509write_crt_set_issuer_name(&w, cs->issuer)) != 0 ||
        (rc = mbedtls_x509write_crt_set_validity(&w, cs->not_before, cs->not_after)) != 0 ||
        (rc = mbedtls_x509write_crt_set_subject_key_identifier(&w)) != 0 ||
        (rc = mbedtls_x509write_crt_set_authority_key_identifier(&w)) != 0)
        goto fail;
    if (cs->is_ca) {
        /* pathlen 0: this CA signs leaves only, never another CA. */
        if ((rc = mbedtls_x509write_crt_set_basic_constraints(&w, 1, 0)) != 0 ||
            (rc = mbedtls_x509write_crt_set_key_usage(&w, MBEDTLS_X509_KU_KEY_CERT_SIGN |
                                                              MBEDTLS_X509_KU_CRL_SIGN)) != 0)
            goto fail;
    } else {
        /* keyEncipherment: with RSA key exchange, the TLS 1.0 suites that
         * XP/7 SChannel prefer, the client encrypts the premaster secret to
         * this key. digitalSignature: ECDHE_RSA and TLS 1.2/1.3. */
        if ((rc = mbedtls_x509write_crt_set_basic_constraints(&w, 0, -1)) != 0 ||
            (rc = mbedtls_x509write_crt_set_key_usage(
                 &w, MBEDTLS_X509_KU_DIGITAL_SIGNATURE | MBEDTLS_X509_KU_KEY_ENCIPHERMENT)) != 0 ||
            (rc = mbedtls_x509write_crt_set_extension(
                 &w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                 MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, eku_server_auth,
                 sizeof(eku_server_auth))) != 0 ||
            (rc = mbedtls_x509write_crt_set_subject_alternative_name(&w, cs->san)) != 0)
            goto fail;
    }

    what = "cannot sign the certificate";
    buf = malloc(cap);
    if (!buf) {
        rc = MBEDTLS_ERR_X509_ALLOC_FAILED;
        goto fail;
    }
    /* The writer fills the buffer from its end and returns the length. */
    rc = mbedtls_x509write_crt_der(&w, buf, cap, mbedtls_ctr_drbg_random, &r->drbg);
    if (rc <= 0) {
        if (rc == 0)
            rc = MBEDTLS_ERR_X509_INVALID_FORMAT;
        goto fail;
    }
    memmove(buf, buf + cap - (size_t)rc, (size_t)rc);
    *der = buf;
    *der_len = (size_t)rc;
    mbedtls_x509write_crt_free(&w);
    return 0;

fail:
    say_mbedtls(err, what, NULL, rc);
    free(buf);
    mbedtls_x509write_crt_free(&w);
    return -1;
}

/* Append the PEM of DER to BUF at *OFF (BUF has CAP bytes). */
static int
pem_append(unsigned char *buf, size_t cap, size_t *off, const unsigned char *der, size_t der_len,
           FILE *err)
{
    size_t olen = 0;
    int rc = mbedtls_pem_write_buffer(PEM_BEGIN_CRT, PEM_END_CRT, der, der_len, buf + *off,
                                      cap - *off, &olen);

    if (rc != 0) {
        say_mbedtls(err, "cannot encode the certificate", NULL, rc);
        return -1;
    }
    /* olen counts the terminating NUL, which the next PEM overwrites. */
    *off += olen - 1;
    return 0;
}

/* Room for the PEM of LEN bytes of DER: base64, a newline every 64
 * characters, the armour lines and a NUL. */
static size_t
pem_size(size_t len)
{
    size_t b64 = (len + 2) / 3 * 4;
    return b64 + b64 / 64 + 1 + sizeof(PEM_BEGIN_CRT) + sizeof(PEM_END_CRT) + 1;
}

/* "CN=tlslift local CA (HOST)", HOST cut and reduced to characters that need
 * no escaping in a DN string, so the name always fits in 64 characters and
 * reads back exactly as written. */
static void
ca_subject(char *buf, size_t len)
{
    char host[CN_MAX + 1] = "";
    size_t room = CN_MAX - (sizeof(CA_CN_PREFIX) - 1) - 1, i;

    if (gethostname(host, sizeof(host)) != 0)
        host[0] = '\0';
    host[sizeof(host) - 1] = '\0';
    if (strlen(host) > room)
        host[room] = '\0';
    for (i = 0; host[i]; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            host[i] = '-';
    }
    snprintf(buf, len, "CN=" CA_CN_PREFIX "%s)", host[0] ? host : "unknown host");
}

static void
ca_init(struct ca *ca)
{
    mbedtls_pk_init(&ca->key);
    mbedtls_x509_crt_init(&ca->crt);
    ca->subject[0] = '\0';
}

static void
ca_free(struct ca *ca)
{
    mbedtls_x509_crt_free(&ca->crt);
    mbedtls_pk_free(&ca->key);
}

/* Make DIR/ca.key and DIR/ca.crt. 0 when made (paths printed on OUT), 1 when
 * a ca.key appeared meanwhile (nothing written), -1 on error. */
static int
ca_make(const char *dir, struct rng *r, FILE *out, FILE *err)
{
    struct staged key_file = {.tmp = ""}, crt_file = {.tmp = ""};
    mbedtls_pk_context key;
    struct cert_spec cs;
    char subject[128], not_before[16], not_after[16], crt_path[PATH_MAX];
    unsigned char *der = NULL, *pem = NULL;
    size_t der_len = 0, pem_len = 0, pem_cap;
    time_t start = time(NULL) - BACKDATE_SECS;
    struct stat st;
    int rc = -1, c;

    mbedtls_pk_init(&key);
    if (gen_key(&key, r, err) != 0)
        goto out;
    ca_subject(subject, sizeof(subject));
    if (format_time(start, not_before) != 0 ||
        format_time(start + CA_DAYS * DAY_SECS, not_after) != 0) {
        fprintf(err, "tlslift mkcert: the system clock is out of range\n");
        goto out;
    }
    memset(&cs, 0, sizeof(cs));
    cs.subject_key = cs.issuer_key = &key;
    cs.subject = cs.issuer = subject;
    cs.not_before = not_before;
    cs.not_after = not_after;
    cs.is_ca = 1;
    if (write_cert(&cs, r, &der, &der_len, err) != 0)
        goto out;
    pem_cap = pem_size(der_len);
    if (!(pem = malloc(pem_cap))) {
        fprintf(err, "tlslift mkcert: out of memory\n");
        goto out;
    }
    if (pem_append(pem, pem_cap, &pem_len, der, der_len, err) != 0)
        goto out;

    /* A ca.crt without its key signs nothing, so replacing it loses nothing;
     * say so, since a client may have been told to trust it. */
    if (path_join(crt_path, sizeof(crt_path), dir, "", "ca.crt", "") == 0 &&
        lstat(crt_path, &st) == 0)
        fprintf(err, "tlslift mkcert: %s has no ca.key beside it; replacing it\n", crt_path);

    if (stage_key(&key_file, dir, "ca.key", &key, err) != 0 ||
        stage(&crt_file, dir, "ca.crt", pem, pem_len, 0644, err) != 0)
        goto out;
    /* The key goes first, without replacing: it is what makes the CA exist. */
    c = commit(&key_file, 1, err);
    if (c != 0) {
        rc = c;
        goto out;
    }
    if (commit(&crt_file, 0, err) != 0 || sync_dir(dir, err) != 0)
        goto out;
    fprintf(out, "%s\n%s\n", key_file.path, crt_file.path);
    rc = 0;

out:
    discard(&crt_file);
    discard(&key_file);
    free(pem);
    free(der);
    mbedtls_pk_free(&key);
    return rc;
}

/* Load DIR/ca.key and DIR/ca.crt into CA and check that they belong
 * together and can still sign. */
static int
ca_load(struct ca *ca, const char *dir, struct rng *r, FILE *err)
{
    char key_path[PATH_MAX], crt_path[PATH_MAX];
    struct stat st;
    int rc;

    if (path_join(key_path, sizeof(key_path), dir, "", "ca.key", "") != 0 ||
        path_join(crt_path, sizeof(crt_path), dir, "", "ca.crt", "") != 0) {
        fprintf(err, "tlslift mkcert: %s: the path is too long\n", dir);
        return -1;
    }
    if (stat(crt_path, &st) != 0) {
        fprintf(err,
                "tlslift mkcert: %s exists but %s does not (%s); restore ca.crt, or make a "
                "new CA in another directory (clients must then trust the new one)\n",
                key_path, crt_path, strerror(errno));
        return -1;
    }
    if (stat(key_path, &st) == 0 && (st.st_mode & 077))
        fprintf(err, "tlslift mkcert: warning: %s is readable by others; chmod 600 it\n", key_path);
    rc = mbedtls_pk_parse_keyfile(&ca->key, key_path, NULL, mbedtls_ctr_drbg_random, &r->drbg);
    if (rc != 0) {
        say_mbedtls(err, "cannot load", key_path, rc);
        return -1;
    }
    rc = mbedtls_x509_crt_parse_file(&ca->crt, crt_path);
    if (rc != 0) {
        if (rc > 0)
            fprintf(err, "tlslift mkcert: cannot load %s: it holds an invalid certificate\n",
                    crt_path);
        else
            say_mbedtls(err, "cannot load", crt_path, rc);
        return -1;
    }
    rc = mbedtls_pk_check_pair(&ca->crt.pk, &ca->key, mbedtls_ctr_drbg_random, &r->drbg);
    if (rc != 0) {
        fprintf(err, "tlslift mkcert: %s is not the certificate of %s\n", crt_path, key_path);
        return -1;
    }
    if (mbedtls_x509_time_is_past(&ca->crt.valid_to)) {
        fprintf(err,
                "tlslift mkcert: %s expired on %04d-%02d-%02d; make a new CA in another "
                "directory\n",
                crt_path, ca->crt.valid_to.year, ca->crt.valid_to.mon, ca->crt.valid_to.day);
        return -1;
    }
    if (mbedtls_x509_dn_gets(ca->subject, sizeof(ca->subject), &ca->crt.subject) < 0) {
        fprintf(err, "tlslift mkcert: cannot read the subject of %s\n", crt_path);
        return -1;
    }
    return 0;
}

/* Before anything is written: the new leaf must chain to the CA (the issuer
 * bytes equal to the CA's subject, which the writer rebuilt from text) and be
 * valid for every name. */
static int
leaf_check(const unsigned char *der, size_t der_len, struct ca *ca, const struct name *names,
           size_t n, FILE *err)
{
    mbedtls_x509_crt leaf;
    char info[256];
    uint32_t flags = 0;
    size_t i;
    int rc = -1, e;

    mbedtls_x509_crt_init(&leaf);
    e = mbedtls_x509_crt_parse_der(&leaf, der, der_len);
    if (e != 0) {
        say_mbedtls(err, "cannot read back the new certificate", NULL, e);
        goto out;
    }
    if (leaf.issuer_raw.len != ca->crt.subject_raw.len ||
        memcmp(leaf.issuer_raw.p, ca->crt.subject_raw.p, leaf.issuer_raw.len) != 0) {
        fprintf(err,
                "tlslift mkcert: the CA's subject \"%s\" does not survive re-encoding; "
                "use a CA made by tlslift mkcert\n",
                ca->subject);
        goto out;
    }
    for (i = 0; i < n; i++) {
        e = mbedtls_x509_crt_verify(&leaf, &ca->crt, NULL, names[i].text, &flags, NULL, NULL);
        if (e != 0) {
            if (mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags) < 0)
                snprintf(info, sizeof(info), "flags 0x%08x\n", (unsigned)flags);
            fprintf(err, "tlslift mkcert: the new certificate does not verify for %s: %s",
                    names[i].text, info);
            goto out;
        }
    }
    rc = 0;

out:
    mbedtls_x509_crt_free(&leaf);
    return rc;
}

/* Issue DIR/STEM.key and DIR/STEM.crt (leaf, then CA) for NAMES. */
static int
leaf_make(const char *dir, const struct name *names, size_t n, int days, struct ca *ca,
          struct rng *r, FILE *out, FILE *err)
{
    struct staged key_file = {.tmp = ""}, crt_file = {.tmp = ""};
    mbedtls_pk_context key;
    mbedtls_x509_san_list *san = NULL;
    struct cert_spec cs;
    char subject[DNS_NAME_MAX + 8], not_before[16], not_after[16], ca_end[16];
    char stem[DNS_NAME_MAX + 16], key_name[DNS_NAME_MAX + 32], crt_name[DNS_NAME_MAX + 32];
    unsigned char *der = NULL, *pem = NULL;
    size_t der_len = 0, pem_len = 0, pem_cap, i;
    time_t start = time(NULL) - BACKDATE_SECS;
    const mbedtls_x509_time *end = &ca->crt.valid_to;
    int rc = -1;

    mbedtls_pk_init(&key);
    if (name_stem(&names[0], stem, sizeof(stem)) != 0 ||
        snprintf(key_name, sizeof(key_name), "%s.key", stem) >= (int)sizeof(key_name) ||
        snprintf(crt_name, sizeof(crt_name), "%s.crt", stem) >= (int)sizeof(crt_name)) {
        fprintf(err, "tlslift mkcert: %s: the name is too long for a file name\n", names[0].text);
        goto out;
    }
    if (format_time(start, not_before) != 0 ||
        format_time(start + (time_t)days * DAY_SECS, not_after) != 0) {
        fprintf(err, "tlslift mkcert: the system clock is out of range\n");
        goto out;
    }
    /* A leaf outliving its CA would be refused after the CA's end anyway;
     * cut it there and say so. */
    snprintf(ca_end, sizeof(ca_end), "%04d%02d%02d%02d%02d%02d", end->year, end->mon, end->day,
             end->hour, end->min, end->sec);
    if (strlen(ca_end) == 14 && strcmp(not_after, ca_end) > 0) {
        fprintf(err, "tlslift mkcert: the CA expires on %04d-%02d-%02d; the leaf ends then too\n",
                end->year, end->mon, end->day);
        memcpy(not_after, ca_end, sizeof(ca_end));
    }

    san = calloc(n, sizeof(*san));
    if (!san) {
        fprintf(err, "tlslift mkcert: out of memory\n");
        goto out;
    }
    memset(&cs, 0, sizeof(cs));
    for (i = 0; i < n; i++) {
        mbedtls_x509_buf *b = &san[i].node.san.unstructured_name;
        san[i].node.type = names[i].is_ip ? MBEDTLS_X509_SAN_IP_ADDRESS : MBEDTLS_X509_SAN_DNS_NAME;
        b->p = names[i].is_ip ? (unsigned char *)names[i].ip : (unsigned char *)names[i].text;
        b->len = names[i].is_ip ? names[i].ip_len : strlen(names[i].text);
        /* Linked backwards: the writer emits the list from its end, so
         * this way the names appear in the order they were given. */
        san[i].next = i > 0 ? &san[i - 1] : NULL;
        cs.san_bytes += b->len + 8;
    }
    /* Clients match the SAN; the CN is for people reading the certificate.
     * A name too long for a CN (64) is left to the SAN alone. */
    if (strlen(names[0].text) <= CN_MAX)
        snprintf(subject, sizeof(subject), "CN=%s", names[0].text);
    else
        snprintf(subject, sizeof(subject), "O=tlslift");

    if (gen_key(&key, r, err) != 0)
        goto out;
    cs.subject_key = &key;
    cs.issuer_key = &ca->key;
    cs.subject = subject;
    cs.issuer = ca->subject;
    cs.not_before = not_before;
    cs.not_after = not_after;
    cs.san = &san[n - 1];
    if (write_cert(&cs, r, &der, &der_len, err) != 0 ||
        leaf_check(der, der_len, ca, names, n, err) != 0)
        goto out;
    pem_cap = pem_size(der_len) + pem_size(ca->crt.raw.len);
    if (!(pem = malloc(pem_cap))) {
        fprintf(err, "tlslift mkcert: out of memory\n");
        goto out;
    }
    /* The chain a server sends: leaf first, then the CA, so clients that
     * were given only the CA's certificate find the path either way. */
    if (pem_append(pem, pem_cap, &pem_len, der, der_len, err) != 0 ||
        pem_append(pem, pem_cap, &pem_len, ca->crt.raw.p, ca->crt.raw.len, err) != 0)
        goto out;

    if (stage_key(&key_file, dir, key_name, &key, err) != 0 ||
        stage(&crt_file, dir, crt_name, pem, pem_len, 0644, err) != 0)
        goto out;
    /* A new leaf replaces an old one of the same name (renewal). */
    if (commit(&key_file, 0, err) != 0 || commit(&crt_file, 0, err) != 0 || sync_dir(dir, err) != 0)
        goto out;
    fprintf(out, "%s\n%s\n", key_file.path, crt_file.path);
    rc = 0;

out:
    discard(&crt_file);
    discard(&key_file);
    free(pem);
    free(der);
    free(san);
    mbedtls_pk_free(&key);
    return rc;
}

/* Parse --days' value: a whole number in [1, MAX_DAYS], else -1. */
static int
parse_days(const char *s)
{
    char *end;
    long v;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > MAX_DAYS)
        return -1;
    return (int)v;
}

int
mkcert_run(int argc, char **argv, FILE *out, FILE *err)
{
    const char *dir = NULL, *days_arg = NULL;
    struct name *names = NULL;
    size_t n = 0, i, j;
    int days = LEAF_DAYS, rc = 2, options = 1, made, have_rng = 0;
    char key_path[PATH_MAX];
    struct stat st;
    struct rng rng;
    struct ca ca;

    ca_init(&ca);
    names = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*names));
    if (!names) {
        fprintf(err, "tlslift mkcert: out of memory\n");
        return 1;
    }
    /* By hand rather than with getopt: main has already run getopt_long on
     * this process, and its state (optind, GNU argv permutation) is global. */
    for (i = 1; i < (size_t)argc; i++) {
        const char *a = argv[i];
        if (options && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            usage(out);
            rc = 0;
            goto done;
        } else if (options && (strcmp(a, "--ca") == 0 || strcmp(a, "--days") == 0)) {
            if (i + 1 >= (size_t)argc) {
                fprintf(err, "tlslift mkcert: %s needs a value\n", a);
                goto usage_error;
            }
            if (strcmp(a, "--ca") == 0)
                dir = argv[++i];
            else
                days_arg = argv[++i];
        } else if (options && strncmp(a, "--ca=", 5) == 0) {
            dir = a + 5;
        } else if (options && strncmp(a, "--days=", 7) == 0) {
            days_arg = a + 7;
        } else if (options && strcmp(a, "--") == 0) {
            options = 0;
        } else if (options && a[0] == '-' && a[1] != '\0') {
            fprintf(err, "tlslift mkcert: unknown option %s\n", a);
            goto usage_error;
        } else {
            if (name_parse(&names[n], a, err) != 0)
                goto bad_arg;
            for (j = 0; j < n && !name_same(&names[j], &names[n]); j++)
                ;
            if (j == n)
                n++;
        }
    }
    if (!dir || !*dir) {
        fprintf(err, "tlslift mkcert: --ca DIR is required\n");
        goto usage_error;
    }
    if (days_arg) {
        if (n == 0) {
            fprintf(err, "tlslift mkcert: --days is for a leaf: name at least one host\n");
            goto usage_error;
        }
        if ((days = parse_days(days_arg)) < 0) {
            fprintf(err, "tlslift mkcert: --days takes a number of days from 1 to %d\n", MAX_DAYS);
            goto usage_error;
        }
        if (days > LEAF_DAYS)
            fprintf(err,
                    "tlslift mkcert: note: Apple clients refuse server certificates valid for "
                    "more than %d days\n",
                    LEAF_DAYS);
    }
    for (i = 0; i < n; i++) {
        if (!names[i].is_ip && strcmp(names[i].text, "ca") == 0) {
            fprintf(err, "tlslift mkcert: the name \"ca\" would overwrite the CA's own files\n");
            goto bad_arg;
        }
    }

    rc = 1;
    if (tlsio_global_init() != 0) {
        fprintf(err, "tlslift mkcert: cannot initialise the crypto library\n");
        goto done;
    }
    if (rng_init(&rng, err) != 0)
        goto done_rng;
    have_rng = 1;
    if (ensure_dir(dir, err) != 0)
        goto done_rng;
    if (path_join(key_path, sizeof(key_path), dir, "", "ca.key", "") != 0) {
        fprintf(err, "tlslift mkcert: %s: the path is too long\n", dir);
        goto done_rng;
    }
    if (lstat(key_path, &st) == 0) {
        made = 1;
    } else if (errno != ENOENT) {
        fprintf(err, "tlslift mkcert: cannot look at %s: %s\n", key_path, strerror(errno));
        goto done_rng;
    } else if ((made = ca_make(dir, &rng, out, err)) < 0) {
        goto done_rng;
    }
    if (made == 1 && n == 0)
        fprintf(err, "tlslift mkcert: %s exists; keeping the existing CA\n", key_path);
    if (n > 0 &&
        (ca_load(&ca, dir, &rng, err) != 0 || leaf_make(dir, names, n, days, &ca, &rng, out, err)))
        goto done_rng;
    rc = 0;

done_rng:
    if (have_rng)
        rng_free(&rng);
done:
    if (fflush(out) != 0 && rc == 0)
        rc = 1;
    ca_free(&ca);
    free(names);
    return rc;

usage_error:
    usage(err);
bad_arg:
    rc = 2;
    goto done;
}

int
mkcert_main(int argc, char **argv)
{
    return mkcert_run(argc, argv, stdout, stderr);
}
