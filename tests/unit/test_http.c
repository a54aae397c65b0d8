/* Unit tests for http: head collection, limits, smuggling shapes, rewrite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http.h"

#include <stdio.h>
#include <string.h>

struct sink {
    struct sbuf out; /* the rebuilt request head */
    char body[256];
    size_t body_len;
    int heads, dones;
};

static int
on_head(void *user, struct http_head *h)
{
    struct sink *s = user;
    s->heads++;
    return http_build_request(h, "api.example.com", false, &s->out) ? -1 : 0;
}

static int
on_body(void *user, const uint8_t *p, size_t n)
{
    struct sink *s = user;
    assert_true(s->body_len + n <= sizeof(s->body));
    memcpy(s->body + s->body_len, p, n);
    s->body_len += n;
    return 0;
}

static int
on_done(void *user)
{
    ((struct sink *)user)->dones++;
    return 0;
}

static const struct http_cb cb = {on_head, on_body, on_done};
static const struct http_limits lim = {.max_line = 64, .max_head = 512, .max_headers = 8};

/* Parse one request; return the status of the error (0 when it parsed). */
static int
parse(const char *req, struct sink *s)
{
    struct http_parser *hp = http_parser_new(HTTP_KIND_REQUEST, &lim, &cb, s);
    size_t used;
    const char *reason;
    int rc, st = 0;

    memset(s, 0, sizeof(*s));
    rc = http_feed(hp, (const uint8_t *)req, strlen(req), &used);
    if (rc == HTTP_ERROR) {
        st = http_error(hp, &reason);
        sbuf_free(&s->out); /* a head may have been built before the error */
    }
    http_parser_free(hp);
    return st;
}

static void
test_rewrite(void **state)
{
    struct sink s;
    (void)state;
    assert_int_equal(parse("POST /entries?k=v HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                           "X-ApiKey: secret\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n"
                           "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
                           "Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
                           &s),
                     0);
    assert_int_equal(s.heads, 1);
    assert_int_equal(s.dones, 1);
    assert_int_equal(s.body_len, 5);
    assert_string_equal(s.out.p, "POST /entries?k=v HTTP/1.1\r\nHost: api.example.com\r\n"
                                 "X-ApiKey: secret\r\nContent-Length: 5\r\n\r\n");
    sbuf_free(&s.out);
}

static void
test_chunked_reframed(void **state)
{
    struct sink s;
    (void)state;
    assert_int_equal(parse("PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                           &s),
                     0);
    assert_int_equal(s.body_len, 5);
    assert_memory_equal(s.body, "abcde", 5);
    assert_non_null(strstr(s.out.p, "Transfer-Encoding: chunked\r\n"));
    sbuf_free(&s.out);
}

static void
test_absolute_form(void **state)
{
    struct sink s;
    (void)state;
    assert_int_equal(
        parse("GET http://old.example/a/b?c HTTP/1.1\r\nHost: old.example\r\n\r\n", &s), 0);
    assert_true(strncmp(s.out.p, "GET /a/b?c HTTP/1.1\r\nHost: api.example.com\r\n", 44) == 0);
    sbuf_free(&s.out);
}

/* host_header = preserve: the client's Host stays; without one (HTTP/1.0)
 * the upstream's is used. */
static int
preserve_head(void *user, struct http_head *h)
{
    struct sink *s = user;
    s->heads++;
    return http_build_request(h, "api.example.com", true, &s->out) ? -1 : 0;
}

static void
test_preserve_host(void **state)
{
    static const struct http_cb pcb = {preserve_head, on_body, on_done};
    const char *reqs[2] = {"GET / HTTP/1.1\r\nHost: legacy.local:8080\r\n\r\n",
                           "GET / HTTP/1.0\r\n\r\n"};
    const char *want[2] = {"GET / HTTP/1.1\r\nHost: legacy.local:8080\r\n\r\n",
                           "GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n"};
    (void)state;
    for (int i = 0; i < 2; i++) {
        struct sink s;
        size_t used;
        memset(&s, 0, sizeof(s));
        struct http_parser *hp = http_parser_new(HTTP_KIND_REQUEST, &lim, &pcb, &s);
        assert_int_equal(http_feed(hp, (const uint8_t *)reqs[i], strlen(reqs[i]), &used),
                         HTTP_PAUSED);
        assert_string_equal(s.out.p, want[i]);
        sbuf_free(&s.out);
        http_parser_free(hp);
    }
}

static void
test_smuggling(void **state)
{
    struct sink s;
    (void)state;
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                           &s),
                     400);
    assert_int_equal(s.heads, 0);
    assert_int_equal(
        parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n"
              "\r\nabcd",
              &s),
        400);
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "zz\r\n",
                           &s),
                     400);
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n"
                           "\r\n",
                           &s),
                     400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", &s), 400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost : a\r\n\r\n", &s), 400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &s), 400);
    assert_int_equal(parse("GET / HTTP/1.1\r\n\r\n", &s), 400);
    assert_int_equal(parse("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", &s), 405);
}

static void
test_limits(void **state)
{
    struct sink s;
    char req[1024];
    (void)state;
    snprintf(req, sizeof(req), "GET /%0100d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    assert_int_equal(parse(req, &s), 414);
    snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: a\r\nX-Big: %0600d\r\n\r\n", 0);
    assert_int_equal(parse(req, &s), 431);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\n1: a\r\n2: a\r\n3: a\r\n4: a\r\n5: a\r\n"
                           "6: a\r\n7: a\r\n8: a\r\n\r\n",
                           &s),
                     431);
}

static void
test_pipelined_pause(void **state)
{
    struct sink s;
    const char *two = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
    struct http_parser *hp = http_parser_new(HTTP_KIND_REQUEST, &lim, &cb, &s);
    size_t used;
    (void)state;
    memset(&s, 0, sizeof(s));
    assert_int_equal(http_feed(hp, (const uint8_t *)two, strlen(two), &used), HTTP_PAUSED);
    assert_int_equal(used, strlen(two) / 2);
    assert_int_equal(s.dones, 1);
    sbuf_free(&s.out);
    http_resume(hp);
    assert_int_equal(http_feed(hp, (const uint8_t *)two + used, strlen(two) - used, &used),
                     HTTP_PAUSED);
    assert_int_equal(s.dones, 2);
    assert_non_null(strstr(s.out.p, "GET /2 HTTP/1.1"));
    sbuf_free(&s.out);
    http_parser_free(hp);
}

static void
test_log_path(void **state)
{
    struct sink s;
    struct http_parser *hp;
    (void)state;
    (void)s;
    struct http_head h = {0};
    char buf[64];
    h.buf = "/entries?apikey=secret";
    h.url_off = 0;
    h.url_len = (uint32_t)strlen(h.buf);
    http_log_path(&h, buf, sizeof(buf));
    assert_string_equal(buf, "/entries");
    (void)hp;
}

static void
test_error_response(void **state)
{
    struct sbuf b = {0};
    (void)state;
    assert_int_equal(http_build_error(502, "upstream TLS handshake failed", &b), 0);
    assert_non_null(strstr(b.p, "HTTP/1.1 502 Bad Gateway\r\n"));
    assert_non_null(strstr(b.p, "Content-Type: text/plain\r\n"));
    assert_non_null(strstr(b.p, "\r\n\r\ntlslift: upstream TLS handshake failed\n"));
    sbuf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rewrite),         cmocka_unit_test(test_chunked_reframed),
        cmocka_unit_test(test_absolute_form),   cmocka_unit_test(test_preserve_host),
        cmocka_unit_test(test_smuggling),       cmocka_unit_test(test_limits),
        cmocka_unit_test(test_pipelined_pause), cmocka_unit_test(test_log_path),
        cmocka_unit_test(test_error_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
