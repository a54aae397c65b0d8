/*
 * http: llhttp wrapped for tlslift. See http.h.
 */
#include "http.h"

#include <errno.h>
#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum hp_state { HP_IDLE, HP_HEAD, HP_BODY };

struct http_parser {
    llhttp_t p;
    enum http_kind kind;
    struct http_limits lim;
    const struct http_cb *cb;
    void *user;
    struct http_head head;
    enum hp_state state;
    size_t head_bytes;
    bool field_open; /* a header line is being collected */
    bool no_body;    /* the response answers HEAD */
    bool paused;
    int err_status;
    const char *err_reason;
};

static int
head_add(struct http_parser *hp, const char *at, size_t n)
{
    struct http_head *h = &hp->head;

    hp->head_bytes += n;
    if (hp->head_bytes > hp->lim.max_head) {
        hp->err_status = hp->kind == HTTP_KIND_REQUEST ? 431 : 502;
        hp->err_reason = hp->kind == HTTP_KIND_REQUEST ? "request header fields too large"
                                                       : "upstream response head too large";
        return -1;
    }
    if (h->len + n > h->cap) {
        size_t cap = h->cap ? h->cap : 1024;
        while (cap < h->len + n)
            cap *= 2;
        char *b = realloc(h->buf, cap);
        if (!b) {
            hp->err_status = hp->kind == HTTP_KIND_REQUEST ? 503 : 502;
            hp->err_reason = "out of memory";
            return -1;
        }
        h->buf = b;
        h->cap = cap;
    }
    memcpy(h->buf + h->len, at, n);
    h->len += n;
    return 0;
}

static struct http_parser *
hp_of(llhttp_t *p)
{
    return p->data;
}

static int
on_message_begin(llhttp_t *p)
{
    struct http_parser *hp = hp_of(p);
    struct http_head *h = &hp->head;

    h->len = 0;
    h->nfields = 0;
    h->url_off = h->url_len = 0;
    h->chunked = h->has_length = h->keep_alive = h->expect_continue = h->upgrade = false;
    h->length = 0;
    hp->head_bytes = 0;
    hp->field_open = false;
    hp->state = HP_HEAD;
    return 0;
}

static int
on_url(llhttp_t *p, const char *at, size_t n)
{
    struct http_parser *hp = hp_of(p);
    struct http_head *h = &hp->head;

    if (h->url_len == 0)
        h->url_off = (uint32_t)h->len;
    if (h->url_len + n > hp->lim.max_line) {
        hp->err_status = 414;
        hp->err_reason = "request line too long";
        return -1;
    }
    h->url_len += (uint32_t)n;
    return head_add(hp, at, n);
}

static int
on_status(llhttp_t *p, const char *at, size_t n)
{
    struct http_parser *hp = hp_of(p);
    struct http_head *h = &hp->head;

    if (h->url_len == 0)
        h->url_off = (uint32_t)h->len;
    h->url_len += (uint32_t)n;
    return head_add(hp, at, n);
}

static int
on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct http_parser *hp = hp_of(p);
    struct http_head *h = &hp->head;

    if (!hp->field_open) {
        if (h->nfields >= hp->lim.max_headers) {
            hp->err_status = hp->kind == HTTP_KIND_REQUEST ? 431 : 502;
            hp->err_reason = hp->kind == HTTP_KIND_REQUEST ? "too many header fields"
                                                           : "upstream sent too many header fields";
            return -1;
        }
        if (h->nfields == h->fcap) {
            size_t cap = h->fcap ? h->fcap * 2 : 16;
            struct http_field *f = realloc(h->fields, cap * sizeof(*f));
            if (!f) {
                hp->err_status = 503;
                hp->err_reason = "out of memory";
                return -1;
            }
            h->fields = f;
            h->fcap = cap;
        }
        struct http_field *f = &h->fields[h->nfields++];
        f->name_off = (uint32_t)h->len;
        f->name_len = 0;
        f->val_off = 0;
        f->val_len = 0;
        hp->field_open = true;
        hp->head_bytes += 4; /* ": " and CRLF count against the limit too */
    }
    h->fields[h->nfields - 1].name_len += (uint32_t)n;
    return head_add(hp, at, n);
}

static int
on_header_field_complete(llhttp_t *p)
{
    struct http_parser *hp = hp_of(p);
    struct http_head *h = &hp->head;

    h->fields[h->nfields - 1].val_off = (uint32_t)h->len;
    return 0;
}

static int
on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct http_parser *hp = hp_of(p);

    hp->head.fields[hp->head.nfields - 1].val_len += (uint32_t)n;
    return head_add(hp, at, n);
}

static int
on_header_value_complete(llhttp_t *p)
{
    hp_of(p)->field_open = false;
    return 0;
}

static bool
field_is(const struct http_head *h, const struct http_field *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(h->buf + f->name_off, name, n) == 0;
}

static int
on_headers_complete(llhttp_t *p)
{
    struct http_parser *hp = hp_of(p);
    struct http_head *h = &hp->head;
    int hosts = 0, rc;

    h->major = p->http_major;
    h->minor = p->http_minor;
    h->method = p->method;
    h->method_name = llhttp_method_name(p->method);
    h->status = p->status_code;
    h->chunked = (p->flags & F_CHUNKED) != 0;
    h->has_length = (p->flags & F_CONTENT_LENGTH) != 0;
    h->length = p->content_length;
    h->keep_alive = llhttp_should_keep_alive(p) != 0;
    h->upgrade = p->upgrade != 0;
    for (size_t i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        if (field_is(h, f, "host"))
            hosts++;
        else if (field_is(h, f, "expect") && f->val_len == 12 &&
                 strncasecmp(h->buf + f->val_off, "100-continue", 12) == 0)
            h->expect_continue = true;
    }
    if (hp->kind == HTTP_KIND_REQUEST) {
        /* RFC 9112 3.2: exactly one Host in HTTP/1.1; at most one in 1.0. */
        if (hosts > 1 || (hosts == 0 && h->minor >= 1)) {
            hp->err_status = 400;
            hp->err_reason = hosts ? "more than one Host header" : "missing Host header";
            return -1;
        }
        if (p->method == HTTP_CONNECT) {
            hp->err_status = 405;
            hp->err_reason = "CONNECT is not supported here (proxy mode is not enabled)";
            return -1;
        }
    }
    hp->state = HP_BODY;
    rc = hp->cb->on_head(hp->user, h);
    if (rc < 0) {
        if (!hp->err_status) {
            hp->err_status = 502;
            hp->err_reason = "cannot forward";
        }
        return -1;
    }
    if (hp->kind == HTTP_KIND_RESPONSE && (rc == 1 || hp->no_body))
        return 1; /* llhttp: no body follows */
    return 0;
}

static int
on_body(llhttp_t *p, const char *at, size_t n)
{
    struct http_parser *hp = hp_of(p);

    if (hp->cb->on_body(hp->user, (const uint8_t *)at, n) < 0) {
        if (!hp->err_status) {
            hp->err_status = 502;
            hp->err_reason = "cannot forward the body";
        }
        return -1;
    }
    return 0;
}

static int
on_message_complete(llhttp_t *p)
{
    struct http_parser *hp = hp_of(p);

    hp->state = HP_IDLE;
    if (hp->cb->on_done(hp->user) < 0) {
        if (!hp->err_status) {
            hp->err_status = 502;
            hp->err_reason = "cannot forward";
        }
        return -1;
    }
    /* One message at a time: the owner resumes when it is ready for the next. */
    hp->paused = true;
    return HPE_PAUSED;
}

static llhttp_settings_t settings;
static bool settings_ready;

struct http_parser *
http_parser_new(enum http_kind kind, const struct http_limits *lim, const struct http_cb *cb,
                void *user)
{
    struct http_parser *hp;

    if (!settings_ready) {
        llhttp_settings_init(&settings);
        settings.on_message_begin = on_message_begin;
        settings.on_url = on_url;
        settings.on_status = on_status;
        settings.on_header_field = on_header_field;
        settings.on_header_field_complete = on_header_field_complete;
        settings.on_header_value = on_header_value;
        settings.on_header_value_complete = on_header_value_complete;
        settings.on_headers_complete = on_headers_complete;
        settings.on_body = on_body;
        settings.on_message_complete = on_message_complete;
        settings_ready = true;
    }
    hp = calloc(1, sizeof(*hp));
    if (!hp)
        return NULL;
    /* Strict mode: llhttp's lenient flags all stay off. */
    llhttp_init(&hp->p, kind == HTTP_KIND_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
    hp->p.data = hp;
    hp->kind = kind;
    hp->lim = *lim;
    hp->cb = cb;
    hp->user = user;
    return hp;
}

void
http_parser_reset(struct http_parser *hp, const struct http_limits *lim)
{
    llhttp_init(&hp->p, hp->kind == HTTP_KIND_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
    hp->p.data = hp;
    hp->lim = *lim;
    hp->state = HP_IDLE;
    hp->head_bytes = 0;
    hp->field_open = hp->no_body = hp->paused = false;
    hp->err_status = 0;
    hp->err_reason = NULL;
    hp->head.len = hp->head.nfields = 0;
}

void
http_parser_trim(struct http_parser *hp)
{
    if (!hp || hp->state != HP_IDLE)
        return;
    free(hp->head.buf);
    free(hp->head.fields);
    hp->head.buf = NULL;
    hp->head.fields = NULL;
    hp->head.len = hp->head.cap = 0;
    hp->head.nfields = hp->head.fcap = 0;
}

void
http_parser_free(struct http_parser *hp)
{
    if (!hp)
        return;
    free(hp->head.buf);
    free(hp->head.fields);
    free(hp);
}

static void
set_parse_error(struct http_parser *hp, llhttp_errno_t e)
{
    if (hp->err_status)
        return;
    hp->err_status = hp->kind == HTTP_KIND_REQUEST ? 400 : 502;
    switch (e) {
    case HPE_UNEXPECTED_CONTENT_LENGTH: {
        /* llhttp uses this code for two shapes; its own text tells them
         * apart. */
        const char *why = llhttp_get_error_reason(&hp->p);
        hp->err_reason = why && strstr(why, "Duplicate")
                             ? "duplicate Content-Length"
                             : "Content-Length together with Transfer-Encoding";
        break;
    }
    case HPE_INVALID_CONTENT_LENGTH:
        hp->err_reason = "bad Content-Length";
        break;
    case HPE_INVALID_TRANSFER_ENCODING:
        hp->err_reason = "bad Transfer-Encoding";
        break;
    case HPE_INVALID_CHUNK_SIZE:
        hp->err_reason = "bad chunk size";
        break;
    case HPE_INVALID_METHOD:
        hp->err_reason = "bad method";
        break;
    case HPE_INVALID_VERSION:
        hp->err_reason = "bad HTTP version";
        break;
    case HPE_INVALID_HEADER_TOKEN:
        hp->err_reason = "bad header field";
        break;
    default:
        hp->err_reason =
            hp->kind == HTTP_KIND_REQUEST ? "malformed request" : "malformed upstream response";
    }
}

int
http_feed(struct http_parser *hp, const uint8_t *data, size_t len, size_t *used)
{
    llhttp_errno_t e;

    *used = 0;
    if (hp->paused || hp->err_status)
        return hp->err_status ? HTTP_ERROR : HTTP_PAUSED;
    if (len == 0)
        return HTTP_OK;
    e = llhttp_execute(&hp->p, (const char *)data, len);
    if (e == HPE_OK) {
        *used = len;
        return HTTP_OK;
    }
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        const char *pos = llhttp_get_error_pos(&hp->p);
        *used = pos ? (size_t)((const uint8_t *)pos - data) : len;
        hp->paused = true;
        return HTTP_PAUSED;
    }
    /* Report how far it got, for the byte counts in the access log. */
    const char *pos = llhttp_get_error_pos(&hp->p);
    if (pos && (const uint8_t *)pos >= data && (const uint8_t *)pos <= data + len)
        *used = (size_t)((const uint8_t *)pos - data);
    set_parse_error(hp, e);
    return HTTP_ERROR;
}

void
http_resume(struct http_parser *hp)
{
    if (!hp->paused)
        return;
    hp->paused = false;
    if (llhttp_get_errno(&hp->p) == HPE_PAUSED_UPGRADE)
        llhttp_resume_after_upgrade(&hp->p);
    else
        llhttp_resume(&hp->p);
}

int
http_finish(struct http_parser *hp)
{
    if (hp->err_status)
        return -1;
    if (hp->state == HP_IDLE)
        return 0;
    llhttp_errno_t e = llhttp_finish(&hp->p);
    if ((e == HPE_OK || e == HPE_PAUSED) && hp->state == HP_IDLE)
        return 0;
    set_parse_error(hp, e == HPE_OK ? HPE_INVALID_EOF_STATE : e);
    return -1;
}

bool
http_in_message(const struct http_parser *hp)
{
    return hp->state != HP_IDLE;
}

bool
http_head_started(const struct http_parser *hp)
{
    return hp->state == HP_HEAD;
}

int
http_error(const struct http_parser *hp, const char **reason)
{
    *reason = hp->err_reason ? hp->err_reason : "malformed message";
    return hp->err_status ? hp->err_status : 400;
}

void
http_expect_no_body(struct http_parser *hp, bool no_body)
{
    hp->no_body = no_body;
}

int
sbuf_add(struct sbuf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return -ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int
sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -EINVAL;
    return sbuf_add(b, tmp, (size_t)n);
}

void
sbuf_free(struct sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Hop-by-hop fields (RFC 9110 7.6.1) and the ones we frame ourselves. */
static const char *const hop_by_hop[] = {
    "connection", "keep-alive",        "proxy-connection",   "te",     "trailer",
    "upgrade",    "transfer-encoding", "proxy-authenticate", "expect", "proxy-authorization",
};

static bool
token_listed(const char *list, size_t len, const char *name, size_t nlen)
{
    size_t i = 0;

    while (i < len) {
        while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            i++;
        size_t s = i;
        while (i < len && list[i] != ',' && list[i] != ' ' && list[i] != '\t')
            i++;
        if (i - s == nlen && strncasecmp(list + s, name, nlen) == 0)
            return true;
    }
    return false;
}

/* Should field F be dropped when forwarding H? */
static bool
drop_field(const struct http_head *h, const struct http_field *f)
{
    for (size_t i = 0; i < sizeof(hop_by_hop) / sizeof(hop_by_hop[0]); i++)
        if (field_is(h, f, hop_by_hop[i]))
            return true;
    /* Fields named by Connection are hop-by-hop too. */
    for (size_t i = 0; i < h->nfields; i++) {
        const struct http_field *c = &h->fields[i];
        if (field_is(h, c, "connection") &&
            token_listed(h->buf + c->val_off, c->val_len, h->buf + f->name_off, f->name_len))
            return true;
    }
    return false;
}

static int
add_fields(const struct http_head *h, struct sbuf *out, bool skip_host)
{
    for (size_t i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        if (drop_field(h, f) || (skip_host && field_is(h, f, "host")))
            continue;
        if (sbuf_add(out, h->buf + f->name_off, f->name_len) || sbuf_add(out, ": ", 2) ||
            sbuf_add(out, h->buf + f->val_off, f->val_len) || sbuf_add(out, "\r\n", 2))
            return -ENOMEM;
    }
    return 0;
}

/* Absolute-form (RFC 9112 3.2.2, "http://host/path") to origin-form
 * ("/path"): the route, not the client, decides where a request goes. */
static void
origin_form(const char **url, size_t *len)
{
    const char *u = *url;
    size_t n = *len;

    if (n <= 7 || (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0))
        return;
    const char *s = memchr(u, '/', n); /* the scheme's "//" */
    s = s ? memchr(s + 2, '/', n - (size_t)(s + 2 - u)) : NULL;
    if (s) {
        *len = n - (size_t)(s - u);
        *url = s;
    } else {
        *url = "/";
        *len = 1;
    }
}

int
http_build_request(const struct http_head *h, const char *host, bool preserve, struct sbuf *out)
{
    const char *url = h->buf + h->url_off;
    size_t ulen = h->url_len;
    bool keep_host = false;

    origin_form(&url, &ulen);
    if (preserve)
        for (size_t i = 0; i < h->nfields && !keep_host; i++)
            keep_host = field_is(h, &h->fields[i], "host");
    if (sbuf_add(out, h->method_name, strlen(h->method_name)) || sbuf_add(out, " ", 1) ||
        sbuf_add(out, url, ulen) || sbuf_add(out, " HTTP/1.1\r\n", 11))
        return -ENOMEM;
    /* Host first; the client's own, when preserved, comes with its fields. */
    if (!keep_host && sbuf_printf(out, "Host: %s\r\n", host))
        return -ENOMEM;
    if (add_fields(h, out, !keep_host))
        return -ENOMEM;
    if (h->chunked && sbuf_add(out, "Transfer-Encoding: chunked\r\n", 28))
        return -ENOMEM;
    return sbuf_add(out, "\r\n", 2);
}

int
http_build_response(const struct http_head *h, enum http_frame frame, bool keep_alive,
                    bool client_http10, struct sbuf *out)
{
    if (sbuf_printf(out, "HTTP/1.1 %d ", h->status) ||
        sbuf_add(out, h->buf + h->url_off, h->url_len) || sbuf_add(out, "\r\n", 2))
        return -ENOMEM;
    if (add_fields(h, out, false))
        return -ENOMEM;
    if (frame == FRAME_CHUNKED && sbuf_add(out, "Transfer-Encoding: chunked\r\n", 28))
        return -ENOMEM;
    if (!keep_alive) {
        if (sbuf_add(out, "Connection: close\r\n", 19))
            return -ENOMEM;
    } else if (client_http10) {
        if (sbuf_add(out, "Connection: keep-alive\r\n", 24))
            return -ENOMEM;
    }
    return sbuf_add(out, "\r\n", 2);
}

const char *
http_status_text(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

int
http_build_error(int status, const char *reason, struct sbuf *out)
{
    return sbuf_printf(out,
                       "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\ntlslift: %s\n",
                       status, http_status_text(status), strlen(reason) + 10, reason);
}

const char *
http_method_name(const struct http_head *h)
{
    return h->method_name ? h->method_name : "-";
}

void
http_log_path(const struct http_head *h, char *buf, size_t len)
{
    const char *u = h->buf ? h->buf + h->url_off : "";
    size_t n = h->url_len, i, o = 0;

    if (h->buf)
        origin_form(&u, &n);
    /* The query string may carry secrets (API keys): never log it. */
    for (i = 0; i < n && u[i] != '?' && u[i] != '#' && o + 1 < len; i++) {
        unsigned char c = (unsigned char)u[i];
        buf[o++] = (c > 0x20 && c < 0x7f && c != '"') ? (char)c : '_';
    }
    if (o == 0 && len > 1)
        buf[o++] = '-';
    buf[o] = 0;
}

const char *
http_lib_version(void)
{
    static char v[32];
    snprintf(v, sizeof(v), "%d.%d.%d", LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR,
             LLHTTP_VERSION_PATCH);
    return v;
}

void
http_describe(const struct http_parser *hp, char *method, size_t mlen, char *path, size_t plen)
{
    /* The method is known once the target started: llhttp parsed it first. */
    if (hp->state != HP_IDLE && hp->head.url_len > 0) {
        snprintf(method, mlen, "%s", llhttp_method_name(hp->p.method));
        http_log_path(&hp->head, path, plen);
    } else {
        snprintf(method, mlen, "-");
        snprintf(path, plen, "-");
    }
}

int
http_host(const struct http_head *h, const char **host, size_t *len)
{
    for (size_t i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        if (!field_is(h, f, "host"))
            continue;
        const char *v = h->buf + f->val_off;
        size_t n = f->val_len;
        if (n > 0 && v[0] == '[') {
            const char *rb = memchr(v, ']', n);
            if (!rb)
                return -1;
            *host = v + 1;
            *len = (size_t)(rb - v - 1);
            return 0;
        }
        const char *colon = memchr(v, ':', n);
        *host = v;
        *len = colon ? (size_t)(colon - v) : n;
        return 0;
    }
    return -1;
}
