#include "conf.h"

#include "legacytls.h"
#include "log.h"
#include "stats.h"
#include "tlsio.h"
#include "upstream.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

enum sect { S_GLOBAL = 1, S_ROUTE = 2, S_BOTH = 3 };

enum ktype {
    K_LOGLEVEL,
    K_ACCESSLOG,
    K_PATH,
    K_UINT,
    K_DURATION,
    K_BOOL,
    K_LISTEN,
    K_UPSTREAM,
    K_UPVERSION,
    K_NAME,
    K_HOSTHDR,
    K_TLSVER,
};

/* Where a key's value lands. Limits have an index into struct limits. */
enum kdest {
    D_LOG_LEVEL,
    D_ACCESS_LOG,
    D_CA_FILE,
    D_MAX_CONNECTIONS,
    D_ADMIN_LISTEN,
    D_USER,
    D_RUN_AS_ROOT,
    D_SHUTDOWN_TIMEOUT,
    D_LISTEN,
    D_ALLOW_REMOTE,
    D_UPSTREAM,
    D_UP_MIN_VERSION,
    D_UP_CA_FILE,
    D_UP_SNI,
    D_HOST_HEADER,
    D_SERVER_NAME,
    D_TLS_CERT,
    D_TLS_KEY,
    D_TLS_MIN_VERSION,
    D_TLS_3DES,
    D_LIMIT,
};

struct keydef {
    const char *name;
    enum sect sect;
    enum ktype type;
    enum kdest dest;
    uint64_t min, max; /* for K_UINT and K_DURATION (milliseconds) */
    size_t off;        /* D_LIMIT: offset in struct limits */
    uint64_t def;      /* D_LIMIT: default */
};

#define LIM(k, t, lo, hi, d)                                                                       \
    {                                                                                              \
#k, S_BOTH, t, D_LIMIT, lo, hi, offsetof(struct limits, k), d                              \
    }
#define SEC  1000ull
#define MINS (60 * SEC)

/* The one table behind the parser, the defaults and the documentation. */
static const struct keydef keys[] = {
    {"log_level", S_GLOBAL, K_LOGLEVEL, D_LOG_LEVEL, 0, 0, 0, 0},
    {"access_log", S_GLOBAL, K_ACCESSLOG, D_ACCESS_LOG, 0, 0, 0, 0},
    {"ca_file", S_GLOBAL, K_PATH, D_CA_FILE, 0, 0, 0, 0},
    {"max_connections", S_GLOBAL, K_UINT, D_MAX_CONNECTIONS, 1, 1000000, 0, 0},
    {"admin_listen", S_GLOBAL, K_LISTEN, D_ADMIN_LISTEN, 0, 0, 0, 0},
    {"user", S_GLOBAL, K_NAME, D_USER, 0, 0, 0, 0},
    {"run_as_root", S_GLOBAL, K_BOOL, D_RUN_AS_ROOT, 0, 0, 0, 0},
    {"shutdown_timeout", S_GLOBAL, K_DURATION, D_SHUTDOWN_TIMEOUT, 0, 3600 * SEC, 0, 0},
    {"listen", S_ROUTE, K_LISTEN, D_LISTEN, 0, 0, 0, 0},
    {"allow_remote", S_ROUTE, K_BOOL, D_ALLOW_REMOTE, 0, 0, 0, 0},
    {"upstream", S_ROUTE, K_UPSTREAM, D_UPSTREAM, 0, 0, 0, 0},
    {"upstream_min_version", S_ROUTE, K_UPVERSION, D_UP_MIN_VERSION, 0, 0, 0, 0},
    {"upstream_ca_file", S_ROUTE, K_PATH, D_UP_CA_FILE, 0, 0, 0, 0},
    {"upstream_sni", S_ROUTE, K_NAME, D_UP_SNI, 0, 0, 0, 0},
    {"host_header", S_ROUTE, K_HOSTHDR, D_HOST_HEADER, 0, 0, 0, 0},
    {"server_name", S_ROUTE, K_NAME, D_SERVER_NAME, 0, 0, 0, 0},
    {"tls_cert", S_ROUTE, K_PATH, D_TLS_CERT, 0, 0, 0, 0},
    {"tls_key", S_ROUTE, K_PATH, D_TLS_KEY, 0, 0, 0, 0},
    {"tls_min_version", S_ROUTE, K_TLSVER, D_TLS_MIN_VERSION, 0, 0, 0, 0},
    {"tls_legacy_3des", S_ROUTE, K_BOOL, D_TLS_3DES, 0, 0, 0, 0},
    LIM(max_request_line, K_UINT, 64, 1 << 20, 8192),
    LIM(max_header_size, K_UINT, 256, 1 << 20, 16384),
    LIM(max_headers, K_UINT, 1, 10000, 100),
    LIM(client_header_timeout, K_DURATION, 1, 3600 * SEC, 10 * SEC),
    LIM(client_body_timeout, K_DURATION, 1, 3600 * SEC, 60 * SEC),
    LIM(idle_timeout, K_DURATION, 1, 3600 * SEC, 60 * SEC),
    LIM(upstream_connect_timeout, K_DURATION, 1, 600 * SEC, 5 * SEC),
    LIM(upstream_tls_timeout, K_DURATION, 1, 600 * SEC, 10 * SEC),
    LIM(upstream_response_timeout, K_DURATION, 1, 3600 * SEC, 60 * SEC),
    LIM(upstream_idle_timeout, K_DURATION, 1, 3600 * SEC, 30 * SEC),
    LIM(upstream_pool_size, K_UINT, 0, 10000, 16),
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

struct parse {
    struct conf *c;
    const char *file;
    FILE *fp;
    int line;         /* current line, counted by our reader */
    int section_line; /* line of the last [section] header */
    int cur_section_line;
    char *err;
    size_t errlen;
    int failed;
    char cur_section[128];
    int cur_kind;        /* 0 none yet, S_GLOBAL or S_ROUTE */
    struct route *route; /* current route section */
    uint64_t seen;       /* keys seen in the current section */
    bool long_line;
};

static void fail(struct parse *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail(struct parse *p, int line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (p->failed)
        return; /* report the first error only: the rest may follow from it */
    p->failed = 1;
    n = snprintf(p->err, p->errlen, "%s:%d: ", p->file, line);
    if (n < 0 || (size_t)n >= p->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* inih in Debian is built without INI_HANDLER_LINENO: we count lines ourselves
 * in the reader, and catch lines longer than inih's buffer, which it would
 * otherwise split into two lines silently. */
static char *
reader(char *str, int num, void *stream)
{
    struct parse *p = stream;
    char *s = fgets(str, num, p->fp);
    size_t n;

    if (!s)
        return NULL;
    p->line++;
    n = strlen(s);
    if (n == (size_t)num - 1 && s[n - 1] != '\n' && !feof(p->fp)) {
        int ch;
        fail(p, p->line, "line too long (at most %d characters)", num - 2);
        while ((ch = fgetc(p->fp)) != EOF && ch != '\n')
            ;
        p->long_line = true;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '[')
        p->section_line = p->line;
    return str;
}

static int
parse_uint(const char *v, uint64_t *out)
{
    char *end;

    if (!isdigit((unsigned char)*v))
        return -1;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end)
        return -1;
    *out = x;
    return 0;
}

/* "10", "10s", "500ms", "2m" -> milliseconds. */
static int
parse_duration(const char *v, uint64_t *ms)
{
    char *end;

    if (!isdigit((unsigned char)*v))
        return -1;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || x > 1000000000ull)
        return -1;
    if (*end == 0 || strcmp(end, "s") == 0)
        *ms = x * SEC;
    else if (strcmp(end, "ms") == 0)
        *ms = x;
    else if (strcmp(end, "m") == 0)
        *ms = x * MINS;
    else
        return -1;
    return 0;
}

static int
parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(v, no[i]) == 0)
            return *out = false, 0;
    }
    return -1;
}

int
conf_parse_addr(const char *s, struct sockaddr_storage *ss)
{
    char host[64];
    const char *colon;
    uint64_t port;

    memset(ss, 0, sizeof(*ss));
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
            return -1;
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = 0;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host))
            return -1;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
    }
    if (parse_uint(colon + 1, &port) || port == 0 || port > 65535)
        return -1;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return -1;
}

bool
conf_addr_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
    }
    return false;
}

static bool
valid_hostname(const char *h)
{
    size_t n = strlen(h);

    if (n == 0 || n > 253)
        return false;
    for (const char *s = h; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != ':')
            return false;
    return true;
}

/* "https://HOST[:PORT][/]" into the route. Returns NULL or an error message. */
static const char *
parse_upstream(struct route *r, const char *v)
{
    char host[256];
    const char *s, *end, *port_s = NULL;
    uint64_t port = 443;
    size_t hl;

    if (strncasecmp(v, "https://", 8) != 0) {
        if (strncasecmp(v, "http://", 7) == 0)
            return "upstream must be https:// (tlslift exists to add TLS; "
                   "plain http upstreams are refused)";
        return "upstream must look like https://HOST[:PORT]";
    }
    s = v + 8;
    if (strchr(s, '@'))
        return "upstream must not carry user information";
    end = s + strcspn(s, "/?#");
    if (*end && strcmp(end, "/") != 0)
        return "upstream must not have a path, query or fragment (requests keep their own path)";
    if (*s == '[') {
        const char *rb = memchr(s, ']', (size_t)(end - s));
        if (!rb)
            return "upstream: unterminated [IPv6] address";
        hl = (size_t)(rb - s - 1);
        if (hl == 0 || hl >= sizeof(host))
            return "upstream: bad host";
        memcpy(host, s + 1, hl);
        host[hl] = 0;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return "upstream: bad host";
            port_s = rb + 2;
        }
    } else {
        const char *colon = memchr(s, ':', (size_t)(end - s));
        const char *hend = colon ? colon : end;
        hl = (size_t)(hend - s);
        if (hl == 0 || hl >= sizeof(host))
            return "upstream: missing or too long host";
        memcpy(host, s, hl);
        host[hl] = 0;
        if (colon)
            port_s = colon + 1;
    }
    if (!valid_hostname(host))
        return "upstream: bad host name";
    if (port_s) {
        char pbuf[8];
        size_t pl = (size_t)(end - port_s);
        if (pl == 0 || pl >= sizeof(pbuf))
            return "upstream: bad port";
        memcpy(pbuf, port_s, pl);
        pbuf[pl] = 0;
        if (parse_uint(pbuf, &port) || port == 0 || port > 65535)
            return "upstream: bad port";
    }
    char hp[300];
    bool v6 = strchr(host, ':') != NULL;
    if (port == 443)
        snprintf(hp, sizeof(hp), v6 ? "[%s]" : "%s", host);
    else
        snprintf(hp, sizeof(hp), v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
    free(r->upstream);
    free(r->up_host);
    free(r->up_hostport);
    r->upstream = strdup(v);
    r->up_host = strdup(host);
    r->up_hostport = strdup(hp);
    r->up_port = (uint16_t)port;
    if (!r->upstream || !r->up_host || !r->up_hostport)
        return "out of memory";
    return NULL;
}

static void
route_init(struct route *r)
{
    memset(r, 0, sizeof(*r));
    r->up_min_version = 12;
    r->tls_min_version = 12;
    r->host_header = HOST_HEADER_UPSTREAM;
}

static void
limits_defaults(struct limits *l)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].dest == D_LIMIT)
            *(uint64_t *)((char *)l + keys[i].off) = keys[i].def;
}

static struct conf *
conf_new(void)
{
    struct conf *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->refs = 1;
    c->log_level = LOG_INFO;
    c->max_connections = 1024;
    c->shutdown_timeout = 10 * SEC;
    c->access_log = strdup("stderr");
    c->ca_file = strdup(DEFAULT_CA_FILE);
    limits_defaults(&c->lim);
    if (!c->access_log || !c->ca_file) {
        conf_unref(c);
        return NULL;
    }
    return c;
}

static struct route *
add_route(struct conf *c)
{
    struct route *r = realloc(c->routes, (c->nroutes + 1) * sizeof(*r));

    if (!r)
        return NULL;
    c->routes = r;
    route_init(&r[c->nroutes]);
    return &r[c->nroutes++];
}

static bool
valid_route_name(const char *n)
{
    if (!*n || strlen(n) > 64)
        return false;
    for (; *n; n++)
        if (!isalnum((unsigned char)*n) && *n != '-' && *n != '_' && *n != '.')
            return false;
    return true;
}

static int
set_string(char **dst, const char *v)
{
    char *s = strdup(v);

    if (!s)
        return -1;
    free(*dst);
    *dst = s;
    return 0;
}

/* Apply one key to the global section (r == NULL) or a route. Returns NULL or
 * an error message. */
static const char *
apply(struct conf *c, struct route *r, const struct keydef *k, const char *v, char *msg,
      size_t msglen)
{
    uint64_t u;
    bool b;
    int lvl;

    switch (k->dest) {
    case D_LOG_LEVEL:
        if ((lvl = log_level_parse(v)) < 0)
            return "log_level must be error, warn, info or debug";
        c->log_level = lvl;
        return NULL;
    case D_ACCESS_LOG:
        if (!*v)
            return "access_log must be stderr, off or a file path";
        return set_string(&c->access_log, v) ? "out of memory" : NULL;
    case D_CA_FILE:
    case D_UP_CA_FILE:
        if (!*v)
            return "empty path";
        return set_string(k->dest == D_CA_FILE ? &c->ca_file : &r->up_ca_file, v) ? "out of memory"
                                                                                  : NULL;
    case D_MAX_CONNECTIONS:
        if (parse_uint(v, &u) || u < k->min || u > k->max) {
            snprintf(msg, msglen, "%s must be a number from %llu to %llu", k->name,
                     (unsigned long long)k->min, (unsigned long long)k->max);
            return msg;
        }
        c->max_connections = u;
        return NULL;
    case D_ADMIN_LISTEN:
        if (conf_parse_addr(v, &c->admin_addr))
            return "admin_listen must be ADDR:PORT or [IPv6]:PORT with a numeric address";
        if (!conf_addr_is_loopback(&c->admin_addr))
            return "admin_listen must be a loopback address (the endpoint has no authentication)";
        return set_string(&c->admin_listen, v) ? "out of memory" : NULL;
    case D_USER:
        if (!*v || strlen(v) > 32)
            return "user must be a user name";
        return set_string(&c->user, v) ? "out of memory" : NULL;
    case D_RUN_AS_ROOT:
        if (parse_bool(v, &b))
            return "run_as_root must be yes or no";
        c->run_as_root = b;
        return NULL;
    case D_SHUTDOWN_TIMEOUT:
        if (parse_duration(v, &u) || u > k->max)
            return "shutdown_timeout must be a duration up to 3600s (e.g. 10, 10s, 500ms, 2m)";
        c->shutdown_timeout = u;
        return NULL;
    case D_LISTEN:
        if (conf_parse_addr(v, &r->listen_addr))
            return "listen must be ADDR:PORT or [IPv6]:PORT with a numeric address";
        return set_string(&r->listen, v) ? "out of memory" : NULL;
    case D_ALLOW_REMOTE:
        if (parse_bool(v, &b))
            return "allow_remote must be yes or no";
        r->allow_remote = b;
        return NULL;
    case D_UPSTREAM:
        return parse_upstream(r, v);
    case D_UP_MIN_VERSION:
        if (strcmp(v, "1.2") == 0)
            r->up_min_version = 12;
        else if (strcmp(v, "1.3") == 0)
            r->up_min_version = 13;
        else
            return "upstream_min_version must be 1.2 or 1.3 (older versions are never used "
                   "upstream)";
        return NULL;
    case D_UP_SNI:
        if (!valid_hostname(v) || strchr(v, ':'))
            return "upstream_sni must be a DNS name";
        return set_string(&r->up_sni, v) ? "out of memory" : NULL;
    case D_HOST_HEADER:
        if (strcmp(v, "upstream") == 0)
            r->host_header = HOST_HEADER_UPSTREAM;
        else if (strcmp(v, "preserve") == 0)
            r->host_header = HOST_HEADER_PRESERVE;
        else
            return "host_header must be upstream or preserve";
        return NULL;
    case D_SERVER_NAME:
        if (!valid_hostname(v) || strchr(v, ':'))
            return "server_name must be a DNS name";
        if (set_string(&r->server_name, v))
            return "out of memory";
        for (char *q = r->server_name; *q; q++)
            *q = (char)tolower((unsigned char)*q);
        return NULL;
    case D_TLS_CERT:
    case D_TLS_KEY:
        if (!*v)
            return "empty path";
        return set_string(k->dest == D_TLS_CERT ? &r->tls_cert : &r->tls_key, v) ? "out of memory"
                                                                                 : NULL;
    case D_TLS_MIN_VERSION:
        if (strcmp(v, "1.0") == 0)
            r->tls_min_version = 10;
        else if (strcmp(v, "1.1") == 0)
            r->tls_min_version = 11;
        else if (strcmp(v, "1.2") == 0)
            r->tls_min_version = 12;
        else if (strcmp(v, "1.3") == 0)
            r->tls_min_version = 13;
        else
            return "tls_min_version must be 1.0, 1.1, 1.2 or 1.3";
        return NULL;
    case D_TLS_3DES:
        if (parse_bool(v, &b))
            return "tls_legacy_3des must be yes or no";
        r->tls_legacy_3des = b;
        return NULL;
    case D_LIMIT: {
        struct limits *l = r ? &r->lim : &c->lim;
        int bad = k->type == K_DURATION ? parse_duration(v, &u) : parse_uint(v, &u);
        if (bad || u < k->min || u > k->max) {
            if (k->type == K_DURATION)
                snprintf(msg, msglen,
                         "%s must be a duration from %llums to %llus (e.g. 10, 10s, 500ms, 2m)",
                         k->name, (unsigned long long)k->min, (unsigned long long)k->max / SEC);
            else
                snprintf(msg, msglen, "%s must be a number from %llu to %llu", k->name,
                         (unsigned long long)k->min, (unsigned long long)k->max);
            return msg;
        }
        *(uint64_t *)((char *)l + k->off) = u;
        if (r)
            r->lim_set |= 1u << (unsigned)(k - keys);
        return NULL;
    }
    }
    return "internal error";
}

static int
handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    char msg[256];
    const char *e;

    if (p->failed)
        return 0;
    if (!*section) {
        fail(p, p->line, "\"%s\" is outside any section (put it under [tlslift] or [route NAME])",
             name);
        return 0;
    }
    if (strcmp(section, p->cur_section) != 0 || p->cur_kind == 0 ||
        p->section_line != p->cur_section_line) {
        /* A new section starts. inih tells us only through the name; our
         * reader saw the header line, which catches a repeated name too. */
        p->cur_section_line = p->section_line;
        snprintf(p->cur_section, sizeof(p->cur_section), "%s", section);
        p->seen = 0;
        p->route = NULL;
        if (strcmp(section, "tlslift") == 0) {
            p->cur_kind = S_GLOBAL;
        } else if (strncmp(section, "route ", 6) == 0) {
            const char *rn = section + 6;
            while (*rn == ' ')
                rn++;
            if (!valid_route_name(rn)) {
                fail(p, p->section_line, "bad route name \"%s\" (letters, digits, - _ . only)", rn);
                return 0;
            }
            for (size_t i = 0; i < p->c->nroutes; i++) {
                if (strcmp(p->c->routes[i].name, rn) == 0) {
                    fail(p, p->section_line, "route \"%s\" is defined twice", rn);
                    return 0;
                }
            }
            p->route = add_route(p->c);
            if (!p->route || !(p->route->name = strdup(rn))) {
                fail(p, p->line, "out of memory");
                return 0;
            }
            p->route->line = p->section_line;
            p->cur_kind = S_ROUTE;
        } else {
            fail(p, p->section_line, "unknown section [%s] (expected [tlslift] or [route NAME])",
                 section);
            return 0;
        }
    } else if (p->cur_kind == S_ROUTE) {
        p->route = &p->c->routes[p->c->nroutes - 1];
    }

    const struct keydef *k = NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].name, name) == 0 && (keys[i].sect & p->cur_kind)) {
            k = &keys[i];
            break;
        }
    }
    if (!k) {
        fail(p, p->line, "unknown key \"%s\" in [%s]", name, section);
        return 0;
    }
    uint64_t bit = 1ull << (unsigned)(k - keys);
    if (p->seen & bit) {
        fail(p, p->line, "duplicate key \"%s\" in [%s]", name, section);
        return 0;
    }
    p->seen |= bit;
    e = apply(p->c, p->cur_kind == S_ROUTE ? p->route : NULL, k, value, msg, sizeof(msg));
    if (e) {
        fail(p, p->line, "%s", e);
        return 0;
    }
    return 1;
}

static int make_groups(struct conf *c);

/* Checks that span keys, and building what the snapshot owns. */
static int
finish(struct conf *c, const char *file, char *err, size_t errlen)
{
    char lerr[512];

    if (c->nroutes == 0) {
        snprintf(err, errlen, "%s:0: no [route NAME] section: nothing to do", file);
        return -1;
    }
    for (size_t i = 0; i < c->nroutes; i++) {
        struct route *r = &c->routes[i];

        for (size_t j = 0; j < NKEYS; j++) {
            if (keys[j].dest == D_LIMIT && !(r->lim_set & (1u << j)))
                *(uint64_t *)((char *)&r->lim + keys[j].off) =
                    *(uint64_t *)((char *)&c->lim + keys[j].off);
        }
        if (!r->listen) {
            snprintf(err, errlen, "%s:%d: route %s: missing listen = ADDR:PORT", file, r->line,
                     r->name);
            return -1;
        }
        if (!r->upstream) {
            snprintf(err, errlen, "%s:%d: route %s: missing upstream = https://HOST[:PORT]", file,
                     r->line, r->name);
            return -1;
        }
        if (r->tls_min_version < 12 && !r->allow_remote &&
            !conf_addr_is_loopback(&r->listen_addr)) {
            snprintf(err, errlen,
                     "%s:%d: route %s: TLS %s is only served on loopback; set allow_remote = yes "
                     "to accept it on %s",
                     file, r->line, r->name, r->tls_min_version == 10 ? "1.0" : "1.1", r->listen);
            return -1;
        }
        if (!r->allow_remote && !conf_addr_is_loopback(&r->listen_addr)) {
            snprintf(err, errlen,
                     "%s:%d: route %s: listen %s is not a loopback address; set allow_remote = yes "
                     "to expose it",
                     file, r->line, r->name, r->listen);
            return -1;
        }
        if (!r->tls_cert != !r->tls_key) {
            snprintf(err, errlen, "%s:%d: route %s: tls_cert and tls_key go together", file,
                     r->line, r->name);
            return -1;
        }
        if (!r->tls_cert && (r->tls_min_version != 12 || r->tls_legacy_3des)) {
            snprintf(err, errlen,
                     "%s:%d: route %s: tls_min_version and tls_legacy_3des need tls_cert/tls_key",
                     file, r->line, r->name);
            return -1;
        }
        if (r->tls_legacy_3des && r->tls_min_version > 11) {
            snprintf(err, errlen,
                     "%s:%d: route %s: tls_legacy_3des needs tls_min_version = 1.0 or 1.1", file,
                     r->line, r->name);
            return -1;
        }
        /* Routes may share a listen address: chosen by SNI (TLS) or Host
         * (plain HTTP); the first one serves clients that name none. */
        for (size_t j = 0; j < i; j++) {
            struct route *o = &c->routes[j];
            if (memcmp(&o->listen_addr, &r->listen_addr, sizeof(r->listen_addr)) != 0)
                continue;
            if (!r->server_name) {
                snprintf(err, errlen,
                         "%s:%d: route %s: listen %s is shared with route %s: set server_name "
                         "(only the first route on an address may go without)",
                         file, r->line, r->name, r->listen, o->name);
                return -1;
            }
            if (o->server_name && strcmp(o->server_name, r->server_name) == 0) {
                snprintf(err, errlen, "%s:%d: route %s: server_name %s is already used by route %s",
                         file, r->line, r->name, r->server_name, o->name);
                return -1;
            }
            if (!o->tls_cert != !r->tls_cert) {
                snprintf(err, errlen,
                         "%s:%d: route %s: routes sharing listen %s must all have tls_cert, or "
                         "none",
                         file, r->line, r->name, r->listen);
                return -1;
            }
        }
        if (r->tls_cert) {
            r->srv_tls =
                tlsio_server_conf_new(r->tls_cert, r->tls_key, r->tls_min_version > 12 ? 13 : 12,
                                      &r->cert_days_left, lerr, sizeof(lerr));
            if (!r->srv_tls) {
                snprintf(err, errlen, "%s:%d: route %s: %s", file, r->line, r->name, lerr);
                return -1;
            }
            if (r->tls_min_version < 12) {
                r->legacy_tls = legacytls_conf_new(r->tls_cert, r->tls_key, r->tls_legacy_3des,
                                                   lerr, sizeof(lerr));
                if (!r->legacy_tls) {
                    snprintf(err, errlen, "%s:%d: route %s: %s", file, r->line, r->name, lerr);
                    return -1;
                }
            }
        }
        r->stats = stats_route(r->name);
        if (r->stats && r->tls_cert) {
            r->stats->has_cert = 1;
            r->stats->cert_days_left = r->cert_days_left;
        }
        const char *ca = r->up_ca_file ? r->up_ca_file : c->ca_file;
        r->up_tls = tlsio_client_conf_new(ca, r->up_min_version, lerr, sizeof(lerr));
        if (!r->up_tls) {
            snprintf(err, errlen, "%s:%d: route %s: %s", file, r->line, r->name, lerr);
            return -1;
        }
    }
    if (make_groups(c)) {
        snprintf(err, errlen, "%s:0: out of memory", file);
        return -1;
    }
    return 0;
}

struct conf *
conf_load(const char *file, char *err, size_t errlen)
{
    struct parse p;
    int rc;

    memset(&p, 0, sizeof(p));
    p.file = file;
    p.err = err;
    p.errlen = errlen;
    p.fp = fopen(file, "r");
    if (!p.fp) {
        snprintf(err, errlen, "%s:0: cannot open: %s", file, strerror(errno));
        return NULL;
    }
    p.c = conf_new();
    if (!p.c) {
        fclose(p.fp);
        snprintf(err, errlen, "%s:0: out of memory", file);
        return NULL;
    }
    rc = ini_parse_stream(reader, &p, handler, &p);
    fclose(p.fp);
    if (rc != 0 && !p.failed)
        fail(&p, rc > 0 ? rc : 0, "syntax error (expected [section], key = value or a comment)");
    if (p.failed)
        goto err;
    if (!(p.c->file = strdup(file))) {
        snprintf(err, errlen, "%s:0: out of memory", file);
        goto err;
    }
    if (finish(p.c, file, err, errlen))
        goto err;
    return p.c;
err:
    conf_unref(p.c);
    return NULL;
}

struct conf *
conf_quick(const char *listen, const char *upstream, const char *ca_file, int log_level, char *err,
           size_t errlen)
{
    struct conf *c = conf_new();
    struct route *r;
    const char *e;
    char msg[64];

    if (!c || !(r = add_route(c)) || !(r->name = strdup("quick"))) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    c->log_level = log_level;
    if (ca_file && set_string(&c->ca_file, ca_file)) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].dest == D_LISTEN && (e = apply(c, r, &keys[i], listen, msg, sizeof(msg)))) {
            snprintf(err, errlen, "-l %s: %s", listen, e);
            goto err;
        }
    }
    if ((e = parse_upstream(r, upstream))) {
        snprintf(err, errlen, "-u %s: %s", upstream, e);
        goto err;
    }
    if (finish(c, "(command line)", err, errlen))
        goto err;
    return c;
err:
    conf_unref(c);
    return NULL;
}

struct conf *
conf_ref(struct conf *c)
{
    c->refs++;
    return c;
}

void
conf_unref(struct conf *c)
{
    if (!c || --c->refs > 0)
        return;
    for (size_t i = 0; i < c->nroutes; i++) {
        struct route *r = &c->routes[i];
        free(r->name);
        free(r->listen);
        free(r->upstream);
        free(r->up_host);
        free(r->up_hostport);
        free(r->up_ca_file);
        free(r->up_sni);
        free(r->server_name);
        free(r->tls_cert);
        free(r->tls_key);
        upstream_pool_free(r->pool);
        tlsio_client_conf_free(r->up_tls);
        tlsio_server_conf_free(r->srv_tls);
        legacytls_conf_free(r->legacy_tls);
        if (r->owns_group)
            free(r->group);
    }
    free(c->routes);
    free(c->file);
    free(c->admin_listen);
    free(c->user);
    free(c->access_log);
    free(c->ca_file);
    free(c);
}

struct route *
conf_route_by_name(struct route *const *group, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        const char *sn = group[i]->server_name;
        if (sn && strlen(sn) == len && strncasecmp(sn, name, len) == 0)
            return group[i];
    }
    return NULL;
}

/* Give every route its group (see conf.h). */
static int
make_groups(struct conf *c)
{
    for (size_t i = 0; i < c->nroutes; i++) {
        struct route *r = &c->routes[i];
        if (r->group)
            continue;
        size_t n = 0;
        for (size_t j = i; j < c->nroutes; j++)
            n += memcmp(&c->routes[j].listen_addr, &r->listen_addr, sizeof(r->listen_addr)) == 0;
        struct route **g = calloc(n, sizeof(*g));
        if (!g)
            return -1;
        n = 0;
        for (size_t j = i; j < c->nroutes; j++) {
            struct route *o = &c->routes[j];
            if (memcmp(&o->listen_addr, &r->listen_addr, sizeof(r->listen_addr)) == 0) {
                g[n++] = o;
                o->group = g;
            }
        }
        for (size_t j = 0; j < n; j++)
            g[j]->ngroup = n;
        r->owns_group = true;
    }
    return 0;
}
