/*
 * downstream: one client connection and the exchanges relayed over it.
 *
 * A downstream has two halves of one type: the client half (embedded) and,
 * while a request is being relayed, an upstream connection borrowed from the
 * route's pool. Requests are taken one at a time (pipelined ones wait in the
 * client's read buffer); bodies stream both ways with back-pressure: a side
 * stops reading while the other side's queue is over BUFQ_HIGH and resumes
 * from the other side's write callback at BUFQ_LOW.
 * One teardown path: downstream_close(ds, reason); the struct is freed when
 * the client half's last handle has closed.
 */
#ifndef TLSLIFT_DOWNSTREAM_H
#define TLSLIFT_DOWNSTREAM_H

#include <stdint.h>
#include <uv.h>

struct conf;
struct route;

struct downstream_stats {
    uint64_t active, accepted, rejected, requests;
};
extern struct downstream_stats downstream_stats;

/* Take over an accepted client socket (already accepted into TCP, which
 * downstream_new's caller allocated with downstream_alloc). */
struct downstream;
struct downstream *downstream_alloc(uv_loop_t *loop, struct conf *conf, struct route *route);
uv_stream_t *downstream_stream(struct downstream *ds);
/* Start serving. If OVER_LIMIT, answer 503 and close. */
void downstream_start(struct downstream *ds, int over_limit);
/* Free a downstream whose accept failed. */
void downstream_abort(struct downstream *ds);
/* The running snapshot. A keep-alive connection that began on an older one
 * moves to it at its next request (same listen address; else it stays). */
void downstream_set_conf(struct conf *conf);

/* Shutting down: close idle keep-alive connections now, and every other one
 * once its exchange ends. */
void downstream_shutdown(void);

#endif
