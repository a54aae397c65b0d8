#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level cur_level = LOG_INFO;
static int access_fd = STDERR_FILENO; /* -1: off */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int syslog_prio[] = {3, 4, 6, 7}; /* err, warning, info, debug */
static int journal;

void
log_init(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
              (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int
log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void
log_set_level(enum log_level level)
{
    cur_level = level;
}

int
log_enabled(enum log_level level)
{
    return level <= cur_level;
}

int
log_access_open(const char *path)
{
    int fd;

    if (strcmp(path, "off") == 0) {
        fd = -1;
    } else if (strcmp(path, "stderr") == 0) {
        fd = STDERR_FILENO;
    } else {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            return -errno;
    }
    if (access_fd > STDERR_FILENO)
        close(access_fd);
    access_fd = fd;
    return 0;
}

static size_t
stamp(char *buf, size_t len, int prio)
{
    struct timeval tv;
    struct tm tm;
    size_t p = 0;

    if (journal) {
        int m = snprintf(buf, len, "<%d>", prio);
        p = m > 0 ? (size_t)m : 0;
        buf += p;
        len -= p;
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(buf + n, len - n, ".%03ldZ ", (long)(tv.tv_usec / 1000));
    return p + n + (size_t)(m > 0 ? m : 0);
}

/* One write(2) per line, so lines from concurrent writers never interleave. */
static void
emit(int fd, char *buf, size_t n, size_t cap)
{
    if (n >= cap - 1)
        n = cap - 2;
    buf[n++] = '\n';
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        buf += w;
        n -= (size_t)w;
    }
}

void
log_msg(enum log_level level, uint64_t cid, const char *fmt, ...)
{
    char buf[2048];
    size_t n;
    int m;
    va_list ap;

    if (level > cur_level)
        return;
    n = stamp(buf, sizeof(buf), syslog_prio[level]);
    if (cid)
        m = snprintf(buf + n, sizeof(buf) - n, "%s [c%llu] ", level_names[level],
                     (unsigned long long)cid);
    else
        m = snprintf(buf + n, sizeof(buf) - n, "%s ", level_names[level]);
    if (m > 0)
        n += (size_t)m;
    va_start(ap, fmt);
    m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    va_end(ap);
    if (m > 0)
        n += (size_t)m;
    emit(STDERR_FILENO, buf, n, sizeof(buf));
}

void
log_access(const char *fmt, ...)
{
    char buf[2048];
    size_t n;
    int m;
    va_list ap;

    if (access_fd < 0)
        return;
    /* The priority prefix is for the journal only, not for an access file. */
    int was = journal;
    journal = journal && access_fd == STDERR_FILENO;
    n = stamp(buf, sizeof(buf), 6);
    journal = was;
    m = snprintf(buf + n, sizeof(buf) - n, "access ");
    if (m > 0)
        n += (size_t)m;
    va_start(ap, fmt);
    m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    va_end(ap);
    if (m > 0)
        n += (size_t)m;
    emit(access_fd, buf, n, sizeof(buf));
}
