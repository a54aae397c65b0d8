/*
 * sdnotify: the systemd side of the house, spoken without libsystemd.
 *
 * - sd_notify messages (READY=1, RELOADING=1 + MONOTONIC_USEC, STOPPING=1,
 *   STATUS=..., WATCHDOG=1) to $NOTIFY_SOCKET, a datagram socket (path, or
 *   abstract when it starts with '@'); silently nothing when unset.
 * - the watchdog interval from $WATCHDOG_USEC (when $WATCHDOG_PID is ours).
 * - socket activation: the descriptors passed in $LISTEN_FDS (from 3), with
 *   their $LISTEN_FDNAMES, when $LISTEN_PID is ours.
 */
#ifndef TLSLIFT_SDNOTIFY_H
#define TLSLIFT_SDNOTIFY_H

#include <stddef.h>
#include <stdint.h>

/* Send MSG (lines "KEY=VALUE" separated by newlines). 0, or < 0 on error;
 * 0 when there is no $NOTIFY_SOCKET. */
int sdnotify_send(const char *msg);
/* printf-style convenience. */
int sdnotify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Microseconds between WATCHDOG=1 pings systemd expects, 0 when off. */
uint64_t sdnotify_watchdog_usec(void);

struct sd_listen_fd {
    int fd;
    char name[64];
};
/* Take the passed descriptors (marked close-on-exec; the environment
 * variables are removed). Returns how many (<= max) went into FDS. */
size_t sdnotify_listen_fds(struct sd_listen_fd *fds, size_t max);

#endif
