/*
 * log: the error log and the access log.
 *
 * Both go to stderr unless the access log is sent to a file or turned off.
 * Messages are formatted by the caller; this module adds the time, the level
 * and, for per-connection lines, the connection id. Nothing here knows what a
 * header is: callers must never pass header values or query strings.
 * Single-threaded for now: the event loop thread is the only writer.
 */
#ifndef TLSLIFT_LOG_H
#define TLSLIFT_LOG_H

#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Look at the environment once: when stderr is the journal
 * ($JOURNAL_STREAM names it), lines get <N> syslog priority prefixes. */
void log_init(void);

/* Parse "error|warn|info|debug"; returns -1 for anything else. */
int log_level_parse(const char *s);
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

/* Open PATH (append) as the access log; "stderr" and "off" are special.
 * Returns 0 or a negative errno. */
int log_access_open(const char *path);

/* cid 0 means "not about one connection". */
void log_msg(enum log_level level, uint64_t cid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One access-log line; the caller formats the fields after the time stamp. */
void log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_error(cid, ...) log_msg(LOG_ERROR, (cid), __VA_ARGS__)
#define log_warn(cid, ...)  log_msg(LOG_WARN, (cid), __VA_ARGS__)
#define log_info(cid, ...)  log_msg(LOG_INFO, (cid), __VA_ARGS__)
#define log_debug(cid, ...)                                                                        \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_msg(LOG_DEBUG, (cid), __VA_ARGS__);                                                \
    } while (0)

#endif
