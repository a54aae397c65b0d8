/*
 * hello: ClientHello peek. See hello.h.
 *
 * The input is hostile and may be cut anywhere, so parsing works on a
 * cursor that knows its end: every read checks the bytes left first, and a
 * short message is "need more" only while the records themselves are short;
 * once a whole handshake message is in, any length that does not fit is
 * HELLO_BAD. Records are reassembled into a bounded stack buffer, never the
 * heap.
 */
#include "hello.h"

#include <stdbool.h>
#include <string.h>

#define REC_HDR        5
#define HS_HDR         4
#define REC_TYPE_HS    22
#define HS_CLIENTHELLO 1
/* RFC 5246 6.2.3: a record's ciphertext may be 2048 bytes over 2^14; no
 * honest ClientHello record is, but the limit is the protocol's. */
#define REC_MAX (16384 + 2048)

#define EXT_SERVER_NAME        0
#define EXT_SUPPORTED_VERSIONS 43
#define SNI_HOST_NAME          0

struct cur {
    const uint8_t *p, *end;
};

static size_t
left(const struct cur *c)
{
    return (size_t)(c->end - c->p);
}

static bool
get8(struct cur *c, unsigned *v)
{
    if (left(c) < 1)
        return false;
    *v = c->p[0];
    c->p += 1;
    return true;
}

static bool
get16(struct cur *c, unsigned *v)
{
    if (left(c) < 2)
        return false;
    *v = (unsigned)c->p[0] << 8 | c->p[1];
    c->p += 2;
    return true;
}

static bool
skip(struct cur *c, size_t n)
{
    if (left(c) < n)
        return false;
    c->p += n;
    return true;
}

/* Split off the next N bytes of C as their own cursor. */
static bool
sub(struct cur *c, size_t n, struct cur *out)
{
    if (left(c) < n)
        return false;
    out->p = c->p;
    out->end = c->p + n;
    c->p += n;
    return true;
}

/* 0x0300 (SSL 3.0) -> 0, 0x0301 -> 10, ... 0x0304 -> 13; -1 for anything
 * that is not an SSL/TLS version we know (drafts, DTLS, GREASE). */
static int
version_number(unsigned v)
{
    switch (v) {
    case 0x0300:
        return 0;
    case 0x0301:
        return 10;
    case 0x0302:
        return 11;
    case 0x0303:
        return 12;
    case 0x0304:
        return 13;
    default:
        return -1;
    }
}

/* RFC 8701: GREASE values are 0x?A?A with both bytes equal. */
static bool
is_grease(unsigned v)
{
    return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff);
}

/* server_name (RFC 6066 3): take the first host_name, lower-cased. Host
 * names are ASCII (IDNs travel as A-labels) without spaces, so any other
 * byte, NUL and control characters above all, makes the hello HELLO_BAD:
 * the name picks a route and reaches logs. */
static bool
parse_sni(struct cur ext, struct hello *h)
{
    struct cur list;
    unsigned list_len;

    if (!get16(&ext, &list_len) || list_len != left(&ext) || list_len == 0)
        return false;
    list = ext;
    while (left(&list) > 0) {
        unsigned type, len;
        struct cur name;

        if (!get8(&list, &type) || !get16(&list, &len) || !sub(&list, len, &name))
            return false;
        if (type != SNI_HOST_NAME || h->sni[0])
            continue;
        if (len == 0 || len > sizeof(h->sni) - 1)
            return false;
        for (size_t i = 0; i < len; i++) {
            uint8_t ch = name.p[i];
            if (ch <= 0x20 || ch >= 0x7f)
                return false;
            h->sni[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch);
        }
        h->sni[len] = 0;
    }
    return true;
}

/* supported_versions (RFC 8446 4.2.1), ClientHello form: a list of 2-byte
 * versions. Sets *lo and *hi from the versions we know; both stay -1 when
 * there is none (only GREASE or drafts), and the caller then falls back to
 * legacy_version. */
static bool
parse_versions(struct cur ext, int *lo, int *hi)
{
    unsigned len;

    if (!get8(&ext, &len) || len != left(&ext) || len < 2 || len % 2)
        return false;
    while (left(&ext) > 0) {
        unsigned v;
        int n;

        if (!get16(&ext, &v))
            return false;
        if (is_grease(v) || (n = version_number(v)) < 0)
            continue;
        if (*hi < 0 || n > *hi)
            *hi = n;
        if (*lo < 0 || n < *lo)
            *lo = n;
    }
    return true;
}

/* The ClientHello body (after the 4-byte handshake header). */
static enum hello_rc
parse_client_hello(struct cur c, struct hello *h)
{
    unsigned legacy, sid_len, cs_len, comp_len, ext_len;
    int legacy_n, lo = -1, hi = -1;
    bool seen_sni = false, seen_versions = false;
    struct cur exts;

    if (!get16(&c, &legacy) || (legacy >> 8) != 3)
        return HELLO_BAD;
    /* 0x0305 and later are not versions yet; a client that means them also
     * lists 0x0304 in supported_versions, so read them as 1.3. */
    legacy_n = (legacy & 0xff) >= 4 ? 13 : version_number(legacy);
    if (!skip(&c, 32)) /* random */
        return HELLO_BAD;
    if (!get8(&c, &sid_len) || sid_len > 32 || !skip(&c, sid_len))
        return HELLO_BAD;
    if (!get16(&c, &cs_len) || cs_len < 2 || cs_len % 2 || !skip(&c, cs_len))
        return HELLO_BAD;
    if (!get8(&c, &comp_len) || comp_len < 1 || !skip(&c, comp_len))
        return HELLO_BAD;
    if (left(&c) > 0) {
        /* Extensions are optional (SSL 3.0, XP's SChannel), but when the
         * block is there it must fill the rest of the message exactly. */
        if (!get16(&c, &ext_len) || ext_len != left(&c))
            return HELLO_BAD;
        exts = c;
        while (left(&exts) > 0) {
            unsigned type, len;
            struct cur ext;

            if (!get16(&exts, &type) || !get16(&exts, &len) || !sub(&exts, len, &ext))
                return HELLO_BAD;
            if (type == EXT_SERVER_NAME) {
                if (seen_sni || !parse_sni(ext, h))
                    return HELLO_BAD;
                seen_sni = true;
            } else if (type == EXT_SUPPORTED_VERSIONS) {
                if (seen_versions || !parse_versions(ext, &lo, &hi))
                    return HELLO_BAD;
                seen_versions = true;
            }
        }
    }
    if (hi >= 0) {
        h->max_version = hi;
        h->min_version = lo;
    } else {
        /* Before 1.3 a client offers every version up to legacy_version;
         * TLS 1.0 is the floor we count from (SSL 3.0 only for an SSL 3.0
         * client, which then offers nothing above it). */
        h->max_version = legacy_n;
        h->min_version = legacy_n < 10 ? legacy_n : 10;
    }
    return HELLO_TLS;
}

/* An SSLv2-format CLIENT-HELLO: 2-byte header with the top bit set, then
 * message type 1 and a version 0x0002 or 0x03xx. */
static enum hello_rc
check_sslv2(const uint8_t *data, size_t len)
{
    if (len < 3)
        return HELLO_NEED_MORE;
    if (data[2] != 1)
        return HELLO_PLAIN;
    if (len < 4)
        return HELLO_NEED_MORE;
    if (data[3] != 0x00 && data[3] != 0x03)
        return HELLO_PLAIN;
    return HELLO_SSLV2;
}

enum hello_rc
hello_parse(const uint8_t *data, size_t len, struct hello *out)
{
    uint8_t msg[HELLO_MAX];
    size_t have = 0;  /* handshake bytes gathered in msg */
    size_t total = 0; /* handshake message length, header included; 0 until known */
    size_t off = 0;   /* records consumed from data */
    struct cur body;
    enum hello_rc rc;

    memset(out, 0, sizeof(*out));
    if (len == 0)
        return HELLO_NEED_MORE;
    if (data[0] & 0x80)
        return check_sslv2(data, len);
    if (data[0] != REC_TYPE_HS)
        return HELLO_PLAIN;

    for (;;) {
        size_t rlen, avail, take;

        /* Judge a record header by what has arrived of it, so that garbage
         * is refused without waiting for bytes that may never come. */
        if (len - off >= 1 && data[off] != REC_TYPE_HS)
            return HELLO_BAD;
        if (len - off >= 2 && data[off + 1] != 3)
            return HELLO_BAD;
        if (len - off < REC_HDR)
            return HELLO_NEED_MORE;
        rlen = (size_t)data[off + 3] << 8 | data[off + 4];
        if (rlen == 0 || rlen > REC_MAX)
            return HELLO_BAD; /* RFC 5246 6.2.1: no empty handshake records */
        avail = len - off - REC_HDR;
        if (avail > rlen)
            avail = rlen;

        /* Gather this record's bytes, as far as the message needs them. */
        take = avail;
        if (total && take > total - have)
            take = total - have;
        if (take > sizeof(msg) - have)
            take = sizeof(msg) - have;
        memcpy(msg + have, data + off + REC_HDR, take);
        have += take;

        if (!total && have >= HS_HDR) {
            if (msg[0] != HS_CLIENTHELLO)
                return HELLO_BAD;
            total = HS_HDR + ((size_t)msg[1] << 16 | (size_t)msg[2] << 8 | msg[3]);
            if (total > HELLO_MAX)
                return HELLO_TOO_BIG;
            if (have > total) {
                /* The first record held more than the message. */
                return HELLO_BAD;
            }
        }
        if (total && have == total) {
            /* A client sends nothing else before our answer, so the message
             * must end its record. */
            if (take != rlen)
                return HELLO_BAD;
            off += REC_HDR + rlen;
            break;
        }
        if (avail < rlen)
            return HELLO_NEED_MORE;
        off += REC_HDR + rlen;
    }

    body.p = msg + HS_HDR;
    body.end = msg + total;
    rc = parse_client_hello(body, out);
    if (rc != HELLO_TLS) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->need = off;
    return HELLO_TLS;
}
