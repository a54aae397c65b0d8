/*
 * hello: a look at the first bytes of a client connection, before any TLS
 * library sees them, to pick the engine (plain HTTP, mbedTLS for TLS >= 1.2,
 * BearSSL for TLS 1.0/1.1) and the route (by SNI).
 *
 * Pure function over a byte buffer; no allocation; every length is checked
 * against the buffer (it runs on hostile input and under a fuzzer).
 */
#ifndef TLSLIFT_HELLO_H
#define TLSLIFT_HELLO_H

#include <stddef.h>
#include <stdint.h>

enum hello_rc {
    HELLO_PLAIN = 0,     /* not TLS: treat as HTTP */
    HELLO_TLS = 1,       /* a complete ClientHello was parsed */
    HELLO_NEED_MORE = 2, /* TLS, but the ClientHello is not complete yet */
    HELLO_BAD = -1,      /* TLS record layer, but not a well-formed ClientHello */
    HELLO_SSLV2 = -2,    /* an SSLv2-format ClientHello: refused */
    HELLO_TOO_BIG = -3,  /* ClientHello longer than HELLO_MAX */
};

/* A ClientHello may span several records; we accept up to this many bytes. */
#define HELLO_MAX 16384

struct hello {
    int max_version; /* highest version offered: 10, 11, 12, 13 (0: SSL 3.0 or older) */
    int min_version; /* lowest version in supported_versions, else = legacy version floor 10 */
    char sni[256];   /* host_name from server_name, lower-cased; "" when absent */
    size_t need;     /* bytes consumed by the ClientHello records (for HELLO_TLS) */
};

/* Look at DATA[0..LEN). */
enum hello_rc hello_parse(const uint8_t *data, size_t len, struct hello *out);

#endif
