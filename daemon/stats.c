/*
 * stats: counters and their Prometheus rendering. See stats.h.
 */
#include "stats.h"

#include "downstream.h"
#include "http.h"
#include "upstream.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define MAX_ROUTES  256
#define MAX_REASONS 64

static const double bounds[STATS_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,   0.25,   0.5,   1,    2.5,   10};

static struct route_stats routes[MAX_ROUTES];
static size_t nroutes;

static struct {
    const char *reason; /* string literals: compared by content */
    uint64_t n;
} reasons[MAX_REASONS];
static size_t nreasons;

static uint64_t tls_versions[2][5]; /* plain, 1.0, 1.1, 1.2, 1.3 */

struct global_stats global_stats = {.last_reload_ok = 1};

struct route_stats *
stats_route(const char *name)
{
    for (size_t i = 0; i < nroutes; i++)
        if (strcmp(routes[i].name, name) == 0)
            return &routes[i];
    if (nroutes == MAX_ROUTES)
        return NULL;
    struct route_stats *r = &routes[nroutes++];
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->cert_days_left = LONG_MIN;
    return r;
}

void
stats_observe(struct stats_hist *h, double seconds)
{
    h->count++;
    h->sum += seconds;
    for (int i = 0; i < STATS_BUCKETS; i++)
        if (seconds <= bounds[i])
            h->buckets[i]++;
}

void
stats_error(const char *reason)
{
    if (!reason)
        return;
    for (size_t i = 0; i < nreasons; i++) {
        if (strcmp(reasons[i].reason, reason) == 0) {
            reasons[i].n++;
            return;
        }
    }
    if (nreasons < MAX_REASONS) {
        reasons[nreasons].reason = reason;
        reasons[nreasons++].n = 1;
    }
}

void
stats_tls_version(int side, int version)
{
    int i = version >= 10 && version <= 13 ? version - 9 : 0;
    tls_versions[side ? 1 : 0][i]++;
}

static int
hist(struct sbuf *o, const char *name, const char *route, const struct stats_hist *h)
{
    for (int i = 0; i < STATS_BUCKETS; i++)
        if (sbuf_printf(o, "%s_bucket{route=\"%s\",le=\"%g\"} %llu\n", name, route, bounds[i],
                        (unsigned long long)h->buckets[i]))
            return -1;
    return sbuf_printf(o,
                       "%s_bucket{route=\"%s\",le=\"+Inf\"} %llu\n%s_sum{route=\"%s\"} %.6f\n"
                       "%s_count{route=\"%s\"} %llu\n",
                       name, route, (unsigned long long)h->count, name, route, h->sum, name, route,
                       (unsigned long long)h->count);
}

#define P(...)                                                                                     \
    do {                                                                                           \
        if (sbuf_printf(o, __VA_ARGS__))                                                           \
            return -1;                                                                             \
    } while (0)

int
stats_render(struct sbuf *o)
{
    static const char *const vnames[5] = {"plain", "1.0", "1.1", "1.2", "1.3"};

    P("# HELP tlslift_requests_total Requests answered, by route and status class.\n"
      "# TYPE tlslift_requests_total counter\n");
    for (size_t i = 0; i < nroutes; i++)
        for (int c = 1; c <= 5; c++)
            P("tlslift_requests_total{route=\"%s\",code=\"%dxx\"} %llu\n", routes[i].name, c,
              (unsigned long long)routes[i].requests[c]);
    P("# HELP tlslift_bytes_total Bytes read from (in) and written to (out) clients.\n"
      "# TYPE tlslift_bytes_total counter\n");
    for (size_t i = 0; i < nroutes; i++)
        P("tlslift_bytes_total{route=\"%s\",direction=\"in\"} %llu\n"
          "tlslift_bytes_total{route=\"%s\",direction=\"out\"} %llu\n",
          routes[i].name, (unsigned long long)routes[i].bytes_in, routes[i].name,
          (unsigned long long)routes[i].bytes_out);
    P("# HELP tlslift_client_connections Client connections open now.\n"
      "# TYPE tlslift_client_connections gauge\ntlslift_client_connections %llu\n"
      "# HELP tlslift_client_connections_total Client connections accepted (rejected: over "
      "max_connections).\n# TYPE tlslift_client_connections_total counter\n"
      "tlslift_client_connections_total{result=\"accepted\"} %llu\n"
      "tlslift_client_connections_total{result=\"rejected\"} %llu\n",
      (unsigned long long)downstream_stats.active, (unsigned long long)downstream_stats.accepted,
      (unsigned long long)downstream_stats.rejected);
    P("# HELP tlslift_upstream_connections Upstream connections open now (pooled or busy).\n"
      "# TYPE tlslift_upstream_connections gauge\ntlslift_upstream_connections %llu\n",
      (unsigned long long)upstream_stats.active);
    P("# HELP tlslift_pool_total Upstream connections lent from the pool (hit) or opened (miss).\n"
      "# TYPE tlslift_pool_total counter\ntlslift_pool_total{result=\"hit\"} %llu\n"
      "tlslift_pool_total{result=\"miss\"} %llu\n",
      (unsigned long long)upstream_stats.pool_hits, (unsigned long long)upstream_stats.pool_misses);
    P("# HELP tlslift_upstream_handshakes_total Upstream TLS handshakes: full, or offering a saved "
      "session (mbedTLS 3.6 does not say whether the server took it).\n"
      "# TYPE tlslift_upstream_handshakes_total counter\n"
      "tlslift_upstream_handshakes_total{kind=\"full\"} %llu\n"
      "tlslift_upstream_handshakes_total{kind=\"resumption_offered\"} %llu\n",
      (unsigned long long)(upstream_stats.handshakes - upstream_stats.handshakes_resumed_offered),
      (unsigned long long)upstream_stats.handshakes_resumed_offered);
    P("# HELP tlslift_upstream_connect_failures_total Upstream connections that failed (DNS, "
      "connect, TLS).\n# TYPE tlslift_upstream_connect_failures_total counter\n"
      "tlslift_upstream_connect_failures_total %llu\n",
      (unsigned long long)upstream_stats.connect_failures);
    P("# HELP tlslift_tls_connections_total Connections by side and TLS version.\n"
      "# TYPE tlslift_tls_connections_total counter\n");
    for (int s = 0; s < 2; s++)
        for (int v = 0; v < 5; v++)
            if (s == 0 || v >= 3)
                P("tlslift_tls_connections_total{side=\"%s\",version=\"%s\"} %llu\n",
                  s ? "upstream" : "client", vnames[v], (unsigned long long)tls_versions[s][v]);
    P("# HELP tlslift_upstream_seconds From handing a request to the upstream to its response "
      "head.\n# TYPE tlslift_upstream_seconds histogram\n");
    for (size_t i = 0; i < nroutes; i++)
        if (hist(o, "tlslift_upstream_seconds", routes[i].name, &routes[i].upstream))
            return -1;
    P("# HELP tlslift_request_seconds From the first byte of a request to its last response "
      "byte queued.\n# TYPE tlslift_request_seconds histogram\n");
    for (size_t i = 0; i < nroutes; i++)
        if (hist(o, "tlslift_request_seconds", routes[i].name, &routes[i].total))
            return -1;
    P("# HELP tlslift_errors_total Requests tlslift answered or closed by itself, by reason.\n"
      "# TYPE tlslift_errors_total counter\n");
    for (size_t i = 0; i < nreasons; i++) {
        char tok[96];
        size_t k = 0;
        for (const char *s = reasons[i].reason; *s && k + 1 < sizeof(tok); s++)
            tok[k++] = (*s == '"' || *s == '\\') ? '_' : *s;
        tok[k] = 0;
        P("tlslift_errors_total{reason=\"%s\"} %llu\n", tok, (unsigned long long)reasons[i].n);
    }
    P("# HELP tlslift_certificate_expiry_days Days until each route's tls_cert expires.\n"
      "# TYPE tlslift_certificate_expiry_days gauge\n");
    for (size_t i = 0; i < nroutes; i++)
        if (routes[i].has_cert)
            P("tlslift_certificate_expiry_days{route=\"%s\"} %ld\n", routes[i].name,
              routes[i].cert_days_left);
    P("# HELP tlslift_config_reloads_total Configuration reloads (failed: kept the old one).\n"
      "# TYPE tlslift_config_reloads_total counter\n"
      "tlslift_config_reloads_total{result=\"ok\"} %llu\n"
      "tlslift_config_reloads_total{result=\"failed\"} %llu\n"
      "# HELP tlslift_config_last_reload_successful 1 if the last reload (or the start) worked.\n"
      "# TYPE tlslift_config_last_reload_successful gauge\n"
      "tlslift_config_last_reload_successful %d\n",
      (unsigned long long)(global_stats.reloads - global_stats.reload_failures),
      (unsigned long long)global_stats.reload_failures, global_stats.last_reload_ok);
    return 0;
}
