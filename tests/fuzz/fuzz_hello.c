/*
 * libFuzzer driver for hello_parse: it must never read past LEN, never
 * crash, and its answers must hold together: a parsed hello fits in the
 * input and parses the same from exactly its records, one byte less is
 * "need more", and what it reports is within range.
 */
#include "hello.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_hello(const struct hello *h, size_t size)
{
    size_t n = strnlen(h->sni, sizeof(h->sni));

    if (h->need < 5 + 4 + 38 || h->need > size)
        abort();
    if (n == sizeof(h->sni))
        abort(); /* not terminated */
    for (size_t i = 0; i < n; i++) {
        char c = h->sni[i];
        if (c <= 0x20 || c >= 0x7f || (c >= 'A' && c <= 'Z'))
            abort();
    }
    if (h->max_version != 0 && (h->max_version < 10 || h->max_version > 13))
        abort();
    if (h->min_version != 0 && (h->min_version < 10 || h->min_version > 13))
        abort();
    if (h->min_version > h->max_version)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hello h, h2;
    enum hello_rc rc = hello_parse(data, size, &h);
    uint8_t *copy;

    switch (rc) {
    case HELLO_TLS:
        check_hello(&h, size);
        /* Exactly the records it consumed, in a buffer of exactly that
         * size so that the sanitizer sees any read past the end. */
        copy = malloc(h.need);
        if (!copy)
            return 0;
        memcpy(copy, data, h.need);
        if (hello_parse(copy, h.need, &h2) != HELLO_TLS || memcmp(&h, &h2, sizeof(h)) != 0)
            abort();
        if (hello_parse(copy, h.need - 1, &h2) != HELLO_NEED_MORE)
            abort();
        free(copy);
        break;
    case HELLO_PLAIN:
        /* Decided on the first byte alone, or on the SSLv2 header shape. */
        if (size == 0)
            abort();
        break;
    case HELLO_NEED_MORE:
    case HELLO_BAD:
    case HELLO_SSLV2:
    case HELLO_TOO_BIG:
        break;
    default:
        abort();
    }
    return 0;
}
