/*
 * sdnotify: sd_notify, watchdog and socket activation without libsystemd.
 * See sdnotify.h.
 */
#include "sdnotify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int
sdnotify_send(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t plen;
    int fd, rc = 0;

    if (!path || !*path)
        return 0;
    plen = strlen(path);
    if (plen >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
        return -EINVAL;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@')
        sa.sun_path[0] = 0; /* abstract namespace */
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen)) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

int
sdnotify_sendf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return -EINVAL;
    return sdnotify_send(buf);
}

static int
env_is_our_pid(const char *name)
{
    const char *v = getenv(name);
    char *end;

    if (!v)
        return 0;
    errno = 0;
    long pid = strtol(v, &end, 10);
    return !errno && !*end && pid == (long)getpid();
}

uint64_t
sdnotify_watchdog_usec(void)
{
    const char *v = getenv("WATCHDOG_USEC");
    char *end;

    if (!v || (getenv("WATCHDOG_PID") && !env_is_our_pid("WATCHDOG_PID")))
        return 0;
    errno = 0;
    unsigned long long us = strtoull(v, &end, 10);
    return errno || *end ? 0 : (uint64_t)us;
}

size_t
sdnotify_listen_fds(struct sd_listen_fd *fds, size_t max)
{
    const char *nfds = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    char *end;
    size_t n = 0;

    if (!nfds || !env_is_our_pid("LISTEN_PID"))
        return 0;
    errno = 0;
    long count = strtol(nfds, &end, 10);
    if (errno || *end || count <= 0 || count > 64)
        return 0;
    for (long i = 0; i < count && n < max; i++) {
        int fd = 3 + (int)i;
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
            continue;
        fds[n].fd = fd;
        fds[n].name[0] = 0;
        if (names) {
            /* The i-th colon-separated name. */
            const char *s = names;
            for (long k = 0; k < i && s; k++) {
                s = strchr(s, ':');
                if (s)
                    s++;
            }
            if (s) {
                size_t l = strcspn(s, ":");
                if (l >= sizeof(fds[n].name))
                    l = sizeof(fds[n].name) - 1;
                memcpy(fds[n].name, s, l);
                fds[n].name[l] = 0;
            }
        }
        n++;
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return n;
}
