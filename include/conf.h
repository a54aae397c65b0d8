/*
 * conf: the configuration, from an INI file (or the quick-mode flags) to an
 * immutable, validated, reference-counted snapshot.
 *
 * conf_load parses and validates everything, including the trust stores, so
 * that a snapshot that loads is one the daemon can run. Errors are reported as
 * "FILE:LINE: reason" (line 0 for checks that span a whole route). A snapshot
 * is never changed after conf_load returns; whoever keeps a pointer takes a
 * reference (conf_ref) and gives it back with conf_unref.
 * The event loop is none of this module's business.
 */
#ifndef TLSLIFT_CONF_H
#define TLSLIFT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct tlsio_client_conf;
struct tlsio_server_conf;
struct legacytls_conf;
struct upstream_pool;

/* Limits and timeouts: settable per route, defaulted from [tlslift]. */
struct limits {
    uint64_t max_request_line;
    uint64_t max_header_size;
    uint64_t max_headers;
    uint64_t client_header_timeout; /* all timeouts in milliseconds */
    uint64_t client_body_timeout;
    uint64_t idle_timeout;
    uint64_t upstream_connect_timeout;
    uint64_t upstream_tls_timeout;
    uint64_t upstream_response_timeout;
    uint64_t upstream_idle_timeout;
    uint64_t upstream_pool_size;
};

enum host_header { HOST_HEADER_UPSTREAM, HOST_HEADER_PRESERVE };

struct route {
    char *name;
    char *listen; /* as written, for logs */
    struct sockaddr_storage listen_addr;
    bool allow_remote;
    char *upstream; /* as written */
    char *up_host;  /* host part, no brackets */
    uint16_t up_port;
    char *up_hostport;  /* Host header value for host_header = upstream */
    int up_min_version; /* 12 or 13 */
    char *up_ca_file;   /* NULL: the global ca_file */
    char *up_sni;       /* NULL: up_host */
    enum host_header host_header;
    /* TLS from clients (legacy apps that keep their https:// URL). */
    char *server_name; /* chosen by SNI, else by Host; NULL: the listener's default */
    char *tls_cert;
    char *tls_key;
    int tls_min_version; /* 10, 11, 12, 13 */
    bool tls_legacy_3des;
    struct limits lim;
    uint32_t lim_set; /* bit i: limit i was set in this route */
    int line;         /* where the section starts */

    /* Built by conf_load from the above; owned by the snapshot. */
    struct tlsio_client_conf *up_tls;
    struct tlsio_server_conf *srv_tls; /* TLS 1.2/1.3 from clients, when tls_cert */
    struct legacytls_conf *legacy_tls; /* TLS 1.0/1.1 from clients, when tls_min_version < 1.2 */
    long cert_days_left;               /* of tls_cert's leaf */
    struct route_stats *stats;         /* survives reloads: keyed by name */
    /* The routes sharing this listen address, this one included, in file
     * order; group[0] serves clients that name no route. Shared by the
     * group, owned by its first route. */
    struct route **group;
    size_t ngroup;
    bool owns_group;
    /* Run-time pool of upstream connections, attached by the daemon after
     * load. The only mutable part of a snapshot; see upstream.h. */
    struct upstream_pool *pool;
};

struct conf {
    int refs;
    char *file; /* NULL in quick mode */
    int log_level;
    char *access_log;
    char *ca_file;
    uint64_t max_connections;
    char *admin_listen; /* NULL: no admin endpoint */
    struct sockaddr_storage admin_addr;
    char *user; /* drop to this user after binding */
    bool run_as_root;
    uint64_t shutdown_timeout; /* ms */
    struct limits lim;         /* defaults for routes */
    struct route *routes;
    size_t nroutes;
};

/* Load and validate FILE. On failure returns NULL and writes "FILE:LINE:
 * reason" into ERR. */
struct conf *conf_load(const char *file, char *err, size_t errlen);

/* The route of GROUP[0]'s group named NAME (SNI or Host, without port,
 * any case), or NULL. */
struct route *conf_route_by_name(struct route *const *group, size_t n, const char *name,
                                 size_t len);

/* Quick mode: one route "quick" from -l ADDR:PORT -u URL [--ca-file PATH]. */
struct conf *conf_quick(const char *listen, const char *upstream, const char *ca_file,
                        int log_level, char *err, size_t errlen);

struct conf *conf_ref(struct conf *c);
void conf_unref(struct conf *c);

/* Parse "ADDR:PORT" / "[V6]:PORT" into SS. Returns 0 or -1. */
int conf_parse_addr(const char *s, struct sockaddr_storage *ss);
/* Is SS a loopback address? */
bool conf_addr_is_loopback(const struct sockaddr_storage *ss);

#endif
