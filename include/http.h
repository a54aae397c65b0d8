/*
 * http: the only module that includes llhttp.
 *
 * An http_parser turns the bytes of one direction of a connection into
 * messages: the head is collected (bounded) and handed over whole through
 * on_head, the body is handed over piece by piece through on_body (already
 * de-chunked), and on_done ends the message, after which the parser pauses
 * until http_resume, so pipelined requests are taken one at a time.
 * The builders turn a collected head into the head we send on: hop-by-hop
 * headers dropped (RFC 9110 7.6.1), Host rewritten, framing set by us.
 * Nothing here touches a socket or knows about TLS.
 */
#ifndef TLSLIFT_HTTP_H
#define TLSLIFT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum http_kind { HTTP_KIND_REQUEST, HTTP_KIND_RESPONSE };

struct http_field {
    uint32_t name_off, name_len, val_off, val_len;
};

struct http_head {
    char *buf; /* names, values, URL and reason, as received */
    size_t len, cap;
    struct http_field *fields;
    size_t nfields, fcap;
    uint32_t url_off, url_len; /* request target; for responses: reason phrase */
    int method;                /* llhttp method number (requests) */
    const char *method_name;
    int status; /* responses */
    int major, minor;
    bool chunked;    /* Transfer-Encoding: chunked */
    bool has_length; /* Content-Length */
    uint64_t length; /* its value */
    bool keep_alive; /* llhttp's verdict for the connection */
    bool expect_continue;
    bool upgrade;
};

/* What the owner hears. Each returns 0 to go on, -1 to stop with an error
 * (the owner then answers or closes). on_head may return 1 for a response
 * that has no body whatever its headers say (the answer to HEAD). */
struct http_cb {
    int (*on_head)(void *user, struct http_head *h);
    int (*on_body)(void *user, const uint8_t *p, size_t n);
    int (*on_done)(void *user);
};

struct http_limits {
    size_t max_line;    /* request target bytes (414) */
    size_t max_head;    /* whole head bytes (431) */
    size_t max_headers; /* header lines (431) */
};

enum http_rc { HTTP_OK = 0, HTTP_PAUSED = 1, HTTP_ERROR = -1 };

struct http_parser; /* opaque: llhttp stays in http.c */

struct http_parser *http_parser_new(enum http_kind kind, const struct http_limits *lim,
                                    const struct http_cb *cb, void *user);
void http_parser_free(struct http_parser *hp);
/* Between messages: give the head buffers back (an idle keep-alive
 * connection should hold as little as possible). */
void http_parser_trim(struct http_parser *hp);
/* Start over for a new connection's worth of messages with limits LIM,
 * keeping the allocated head buffers (one parser per client connection
 * serves every response it relays). */
void http_parser_reset(struct http_parser *hp, const struct http_limits *lim);

/* Feed bytes. Returns HTTP_OK (all consumed), HTTP_PAUSED (a message ended;
 * *used bytes were consumed, the rest belong to the next message) or
 * HTTP_ERROR (see http_error). */
int http_feed(struct http_parser *hp, const uint8_t *data, size_t len, size_t *used);
/* Go on after HTTP_PAUSED. */
void http_resume(struct http_parser *hp);
/* The peer closed: ends a close-delimited response. 0 if that was a clean end
 * of message, -1 if the message was cut short. */
int http_finish(struct http_parser *hp);
/* Is a message under way (head or body started, not finished)? */
bool http_in_message(const struct http_parser *hp);
/* Has the head of the current message started arriving? */
bool http_head_started(const struct http_parser *hp);
/* After HTTP_ERROR (or a callback's -1): the status to answer with (400, 414,
 * 431; 502 for responses) and a short reason for the client and the log. */
int http_error(const struct http_parser *hp, const char **reason);
/* The request was HEAD (for the response parser of the same exchange). */
void http_expect_no_body(struct http_parser *hp, bool no_body);

/* A growable output buffer for the builders. */
struct sbuf {
    char *p;
    size_t len, cap;
};
int sbuf_add(struct sbuf *b, const void *p, size_t n);
int sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_free(struct sbuf *b);

/* Request head for the upstream: Host is HOST, or the client's own when
 * PRESERVE and it sent one; HTTP/1.1; our own framing. */
int http_build_request(const struct http_head *h, const char *host, bool preserve,
                       struct sbuf *out);

/* Response framing towards the client. */
enum http_frame { FRAME_NONE, FRAME_LENGTH, FRAME_CHUNKED, FRAME_CLOSE };

/* Response head for the client. FRAME says how we send the body;
 * KEEP_ALIVE whether the client connection stays open. */
int http_build_response(const struct http_head *h, enum http_frame frame, bool keep_alive,
                        bool client_http10, struct sbuf *out);

/* A complete response of our own: status line, text/plain body "tlslift:
 * REASON\n", Connection: close. */
int http_build_error(int status, const char *reason, struct sbuf *out);
const char *http_status_text(int status);

/* For the log of a request refused mid-head: its method and path (without
 * the query string) when they were received, else "-". */
void http_describe(const struct http_parser *hp, char *method, size_t mlen, char *path,
                   size_t plen);

/* The Host header's host part (no port, no brackets): 0, or -1 if none. */
int http_host(const struct http_head *h, const char **host, size_t *len);

/* Method name of a request head, for logs. */
const char *http_method_name(const struct http_head *h);
/* The path of a request target, without the query string, for logs. */
void http_log_path(const struct http_head *h, char *buf, size_t len);

const char *http_lib_version(void);

#endif
