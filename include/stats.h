/*
 * stats: counters for /metrics. Plain integers, written from the event loop
 * thread only (one worker today); when workers come, each gets its own block
 * and /metrics sums them, so no counter is ever shared between threads.
 *
 * Per-route counters live in a registry keyed by route name, so they survive
 * configuration reloads (Prometheus expects counters to only go up).
 */
#ifndef TLSLIFT_STATS_H
#define TLSLIFT_STATS_H

#include <stdint.h>

#define STATS_BUCKETS 12 /* latency histogram: see stats.c for the bounds */

struct stats_hist {
    uint64_t count;
    double sum; /* seconds */
    uint64_t buckets[STATS_BUCKETS];
};

struct route_stats {
    char name[65];
    uint64_t requests[6]; /* by status class: [1] 1xx ... [5] 5xx, [0] none */
    uint64_t bytes_in, bytes_out;
    struct stats_hist upstream, total;
    long cert_days_left; /* tls_cert; LONG_MIN when there is none */
    int has_cert;
};

/* The counters of route NAME, created on first use; NULL past 256 routes. */
struct route_stats *stats_route(const char *name);

void stats_observe(struct stats_hist *h, double seconds);

/* Counters by reason (a short, fixed set of strings: the reasons tlslift
 * answers or closes with). REASON must be a string literal: the pointer is
 * kept. */
void stats_error(const char *reason);

/* TLS versions seen: SIDE 0 = from clients, 1 = to upstreams; VERSION 0 for
 * plain, 10..13. */
void stats_tls_version(int side, int version);

struct global_stats {
    uint64_t reloads, reload_failures;
    int last_reload_ok; /* 1 after a good reload (and at start) */
    double last_reload_time;
};
extern struct global_stats global_stats;

struct sbuf;
/* The Prometheus text exposition of everything. */
int stats_render(struct sbuf *out);

#endif
