/*
 * main: the command line, start-up, privileges, signals, reload and the run
 * loop. One worker thread today; see docs/design.md for workers = N.
 */
#include "admin.h"
#include "bufq.h"
#include "conf.h"
#include "downstream.h"
#include "http.h"
#include "legacytls.h"
#include "listener.h"
#include "log.h"
#include "mkcert.h"
#include "sdnotify.h"
#include "stats.h"
#include "tlsio.h"
#include "upstream.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define MAX_LISTENERS 256

static struct {
    uv_loop_t *loop;
    struct conf *conf; /* the running snapshot */
    const char *file;  /* NULL in quick mode */
    struct listener *listeners[MAX_LISTENERS];
    size_t nlisteners;
    struct admin *admin;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t drain, watchdog;
    uint64_t drain_deadline;
    bool stopping;
    struct sd_listen_fd fds[64]; /* from systemd, until matched to a route */
    size_t nfds;
} g;

static void
usage(FILE *f)
{
    fprintf(f, "usage: tlslift -c FILE          run with the configuration FILE\n"
               "       tlslift -t -c FILE       check FILE (and its certificates) and exit\n"
               "       tlslift -l ADDR:PORT -u https://HOST[:PORT] [--ca-file PATH] [-L LEVEL]\n"
               "               [--user NAME]    quick mode: one route, no file (as root: drops to\n"
               "                                NAME, default nobody)\n"
               "       tlslift mkcert --ca DIR [HOSTNAME...]\n"
               "                                make a local CA, or a certificate from it\n"
               "       tlslift --version\n"
               "See tlslift(8) and tlslift.ini(5).\n");
}

static void
version(void)
{
    printf("tlslift %s\nmbedTLS %s\nlibuv %s\nllhttp %s\nBearSSL %s\n", TLSLIFT_VERSION,
           tlsio_lib_version(), uv_version_string(), http_lib_version(), legacytls_lib_version());
}

static const char *
version_name(int v)
{
    return v == 10 ? "1.0" : v == 11 ? "1.1" : v == 12 ? "1.2" : "1.3";
}

/* Enough descriptors for max_connections clients and as many upstreams. */
static void
raise_nofile(uint64_t max_conn)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < max_conn * 2 + 64)
        log_warn(0,
                 "the open-file limit (%llu) is below 2 x max_connections + 64; raise "
                 "LimitNOFILE or lower max_connections",
                 (unsigned long long)rl.rlim_cur);
}

static bool
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

/* A descriptor systemd passed for ROUTE: by name (FileDescriptorName= the
 * route's name), else by the address it is bound to. -1 when none. */
static int
take_passed_fd(const struct route *r)
{
    for (size_t i = 0; i < g.nfds; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        bool match = strcmp(g.fds[i].name, r->name) == 0;
        if (!match) {
            memset(&ss, 0, sizeof(ss));
            match = getsockname(g.fds[i].fd, (struct sockaddr *)&ss, &len) == 0 &&
                    same_addr(&ss, &r->listen_addr);
        }
        if (match) {
            int fd = g.fds[i].fd;
            g.fds[i] = g.fds[--g.nfds];
            return fd;
        }
    }
    return -1;
}

/* Listeners for CONF. Existing ones whose address stays are kept (their
 * socket never closes, so no connection is refused during a reload); new
 * addresses are bound first, so a failure leaves everything as it was. */
static int
apply_listeners(struct conf *conf, char *err, size_t errlen)
{
    struct listener *next[MAX_LISTENERS];
    bool kept[MAX_LISTENERS] = {false};
    size_t n = 0;

    for (size_t i = 0; i < conf->nroutes; i++) {
        struct route *r = &conf->routes[i];
        struct listener *l = NULL;
        if (r->group[0] != r)
            continue;
        if (n == MAX_LISTENERS) {
            snprintf(err, errlen, "more than %d listen addresses", MAX_LISTENERS);
            goto undo;
        }
        for (size_t j = 0; j < g.nlisteners; j++) {
            if (!kept[j] && same_addr(listener_addr(g.listeners[j]), &r->listen_addr)) {
                l = g.listeners[j];
                kept[j] = true;
                break;
            }
        }
        if (!l) {
            int fd = take_passed_fd(r);
            l = fd >= 0 ? listener_new_fd(g.loop, conf, r, fd, err, errlen)
                        : listener_new(g.loop, conf, r, err, errlen);
            if (!l)
                goto undo;
            if (fd >= 0)
                log_info(0, "route %s: using the socket systemd passed (fd %d)", r->name, fd);
        }
        next[n++] = l;
    }
    /* Commit: kept ones serve the new snapshot, the rest close. */
    for (size_t i = 0; i < n; i++) {
        bool was_old = false;
        for (size_t j = 0; j < g.nlisteners; j++)
            was_old |= next[i] == g.listeners[j];
        if (was_old) {
            struct route *r = NULL;
            for (size_t k = 0; k < conf->nroutes && !r; k++)
                if (same_addr(&conf->routes[k].listen_addr, listener_addr(next[i])))
                    r = conf->routes[k].group[0];
            listener_update(next[i], conf, r);
        }
    }
    for (size_t j = 0; j < g.nlisteners; j++)
        if (!kept[j])
            listener_free(g.listeners[j]);
    memcpy(g.listeners, next, n * sizeof(next[0]));
    g.nlisteners = n;
    return 0;
undo:
    for (size_t i = 0; i < n; i++) {
        bool was_old = false;
        for (size_t j = 0; j < g.nlisteners; j++)
            was_old |= next[i] == g.listeners[j];
        if (!was_old)
            listener_free(next[i]);
    }
    return -1;
}

static void
close_listeners(void)
{
    for (size_t i = 0; i < g.nlisteners; i++)
        listener_free(g.listeners[i]);
    g.nlisteners = 0;
}

static int
make_pools(struct conf *conf)
{
    for (size_t i = 0; i < conf->nroutes; i++) {
        struct route *r = &conf->routes[i];
        r->pool = upstream_pool_new(g.loop, conf, r);
        if (!r->pool)
            return -1;
    }
    return 0;
}

static void
retire_pools(struct conf *conf)
{
    for (size_t i = 0; i < conf->nroutes; i++)
        upstream_pool_retire(conf->routes[i].pool);
}

static void
describe_routes(const struct conf *conf)
{
    for (size_t i = 0; i < conf->nroutes; i++) {
        const struct route *r = &conf->routes[i];
        if (r->tls_cert && r->tls_min_version < 12)
            log_warn(0,
                     "route %s: accepts TLS %s from clients on %s; old TLS is weak: keep it on "
                     "loopback and raise tls_min_version once the application can",
                     r->name, version_name(r->tls_min_version), r->listen);
        if (r->tls_cert && r->cert_days_left < 30)
            log_warn(0, "route %s: tls_cert %s %s (%ld days); renew it (tlslift mkcert issues one)",
                     r->name, r->tls_cert,
                     r->cert_days_left < 0 ? "has expired" : "expires within 30 days",
                     r->cert_days_left);
        log_info(0, "route %s: listening on %s%s%s%s%s, forwarding to %s (TLS >= %s, verified)",
                 r->name, r->listen, r->server_name ? " for " : "",
                 r->server_name ? r->server_name : "",
                 r->tls_cert ? " (plain HTTP and TLS >= " : "",
                 r->tls_cert ? version_name(r->tls_min_version) : "", r->upstream,
                 version_name(r->up_min_version));
        if (r->tls_cert)
            log_info(0, "route %s: tls_cert expires in %ld days", r->name, r->cert_days_left);
    }
}

static int
apply_admin(struct conf *old, struct conf *conf, char *err, size_t errlen)
{
    bool same = old && ((!old->admin_listen && !conf->admin_listen) ||
                        (old->admin_listen && conf->admin_listen &&
                         same_addr(&old->admin_addr, &conf->admin_addr)));
    if (same)
        return 0;
    struct admin *a = NULL;
    if (conf->admin_listen && !(a = admin_new(g.loop, &conf->admin_addr, err, errlen)))
        return -1;
    admin_free(g.admin);
    g.admin = a;
    if (a)
        log_info(0, "admin endpoint on %s: /healthz, /metrics", conf->admin_listen);
    return 0;
}

static uint64_t
monotonic_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
reload(void)
{
    char err[1024];
    struct conf *conf, *old = g.conf;

    if (!g.file) {
        log_warn(0, "SIGHUP: quick mode has no configuration file to reload");
        return;
    }
    sdnotify_sendf("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
                   (unsigned long long)monotonic_usec(), g.file);
    global_stats.reloads++;
    conf = conf_load(g.file, err, sizeof(err));
    if (conf && make_pools(conf) != 0)
        snprintf(err, sizeof(err), "%s:0: out of memory", g.file);
    if (conf && conf->routes[0].pool && apply_admin(old, conf, err, sizeof(err)) == 0 &&
        apply_listeners(conf, err, sizeof(err)) == 0) {
        if (log_access_open(conf->access_log) != 0)
            log_error(0, "cannot open access_log %s; access lines go where they went before",
                      conf->access_log);
        log_set_level(conf->log_level);
        retire_pools(old);
        g.conf = conf;
        downstream_set_conf(conf);
        conf_unref(old);
        global_stats.last_reload_ok = 1;
        log_info(0, "configuration reloaded from %s", g.file);
        describe_routes(conf);
        sdnotify_send("READY=1\nSTATUS=serving (configuration reloaded)");
        return;
    }
    global_stats.reload_failures++;
    global_stats.last_reload_ok = 0;
    log_error(0, "reload failed: %s; still running the previous configuration", err);
    if (conf) {
        retire_pools(conf);
        conf_unref(conf);
    }
    sdnotify_send("READY=1\nSTATUS=serving; last reload failed, see the log");
}

static void
finish(void)
{
    retire_pools(g.conf);
    admin_free(g.admin);
    g.admin = NULL;
    uv_close((uv_handle_t *)&g.drain, NULL);
    uv_close((uv_handle_t *)&g.watchdog, NULL);
    uv_close((uv_handle_t *)&g.sigint, NULL);
    uv_close((uv_handle_t *)&g.sigterm, NULL);
    uv_close((uv_handle_t *)&g.sighup, NULL);
}

static void
on_drain_tick(uv_timer_t *t)
{
    if (downstream_stats.active == 0) {
        uv_timer_stop(t);
        finish();
        return;
    }
    if (uv_now(g.loop) >= g.drain_deadline) {
        log_warn(0, "%llu connections still busy after shutdown_timeout (%llums); exiting anyway",
                 (unsigned long long)downstream_stats.active,
                 (unsigned long long)g.conf->shutdown_timeout);
        exit(0);
    }
}

static void
on_watchdog(uv_timer_t *t)
{
    (void)t;
    sdnotify_send("WATCHDOG=1");
}

static void
on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    if (signum == SIGHUP) {
        if (!g.stopping)
            reload();
        return;
    }
    if (g.stopping) {
        log_warn(0, "second signal: exiting now");
        exit(0);
    }
    g.stopping = true;
    admin_set_healthy(false);
    sdnotify_send("STOPPING=1\nSTATUS=stopping");
    log_info(0, "%s: stopping: no new connections, finishing %llu open ones (up to %llums)",
             signum == SIGTERM ? "SIGTERM" : "SIGINT", (unsigned long long)downstream_stats.active,
             (unsigned long long)g.conf->shutdown_timeout);
    close_listeners();
    downstream_shutdown();
    g.drain_deadline = uv_now(g.loop) + g.conf->shutdown_timeout;
    uv_timer_start(&g.drain, on_drain_tick, 0, 50);
}

/* Bind first, then drop root: to conf->user, or refuse unless run_as_root. */
static int
drop_privileges(const struct conf *conf, const char *user)
{
    const char *name = conf->user ? conf->user : user;
    struct passwd *pw;

    if (geteuid() != 0) {
        if (name)
            log_info(0, "not started as root: user = %s has nothing to do", name);
        return 0;
    }
    if (!name) {
        if (conf->run_as_root) {
            log_warn(0, "running as root (run_as_root = yes)");
            return 0;
        }
        log_error(0, "refusing to run as root: set user = NAME in [tlslift] (tlslift binds, then "
                     "drops to it) or run_as_root = yes");
        return -1;
    }
    errno = 0;
    pw = getpwnam(name);
    if (!pw) {
        log_error(0, "user %s: %s", name, errno ? strerror(errno) : "no such user");
        return -1;
    }
    if (setgroups(1, &pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        log_error(0, "cannot drop privileges to %s: %s", name, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) {
        log_error(0, "privileges were not dropped (setuid(0) still works): stopping");
        return -1;
    }
    log_info(0, "running as %s (uid %d, gid %d)", name, (int)pw->pw_uid, (int)pw->pw_gid);
    return 0;
}

static int
run(struct conf *conf, const char *quick_user)
{
    char err[1024];
    uint64_t wd;
    int rc = 1;

    g.loop = uv_default_loop();
    g.conf = conf;
    downstream_set_conf(conf);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(conf->max_connections);
    g.nfds = sdnotify_listen_fds(g.fds, sizeof(g.fds) / sizeof(g.fds[0]));
    if (log_access_open(conf->access_log) != 0) {
        log_error(0, "cannot open access_log %s; check the path and its directory's permissions",
                  conf->access_log);
        return 1;
    }
    uv_signal_init(g.loop, &g.sigint);
    uv_signal_init(g.loop, &g.sigterm);
    uv_signal_init(g.loop, &g.sighup);
    uv_timer_init(g.loop, &g.drain);
    uv_timer_init(g.loop, &g.watchdog);
    if (make_pools(conf) != 0) {
        log_error(0, "out of memory");
        goto out;
    }
    if (apply_listeners(conf, err, sizeof(err)) != 0 || apply_admin(NULL, conf, err, sizeof(err))) {
        log_error(0, "%s", err);
        goto out;
    }
    for (size_t i = 0; i < g.nfds; i++) {
        log_warn(0, "systemd passed socket %d (%s) that matches no route: closing it", g.fds[i].fd,
                 g.fds[i].name[0] ? g.fds[i].name : "unnamed");
        close(g.fds[i].fd);
    }
    g.nfds = 0;
    if (drop_privileges(conf, quick_user) != 0)
        goto out;
    describe_routes(conf);
    uv_signal_start(&g.sigint, on_signal, SIGINT);
    uv_signal_start(&g.sigterm, on_signal, SIGTERM);
    uv_signal_start(&g.sighup, on_signal, SIGHUP);
    if ((wd = sdnotify_watchdog_usec()) > 0)
        uv_timer_start(&g.watchdog, on_watchdog, wd / 2000, wd / 2000);
    admin_set_healthy(true);
    log_info(0, "tlslift %s ready (mbedTLS %s, libuv %s, llhttp %s, BearSSL %s)", TLSLIFT_VERSION,
             tlsio_lib_version(), uv_version_string(), http_lib_version(), legacytls_lib_version());
    sdnotify_sendf("READY=1\nSTATUS=serving %zu route(s)\nMAINPID=%ld", g.conf->nroutes,
                   (long)getpid());
    uv_run(g.loop, UV_RUN_DEFAULT);
    log_info(0, "stopped");
    rc = 0;
out:
    if (rc) {
        close_listeners();
        admin_free(g.admin);
        retire_pools(g.conf);
        uv_close((uv_handle_t *)&g.drain, NULL);
        uv_close((uv_handle_t *)&g.watchdog, NULL);
        uv_close((uv_handle_t *)&g.sigint, NULL);
        uv_close((uv_handle_t *)&g.sigterm, NULL);
        uv_close((uv_handle_t *)&g.sighup, NULL);
        uv_run(g.loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(g.loop);
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},  {"test", no_argument, NULL, 't'},
        {"listen", required_argument, NULL, 'l'},  {"upstream", required_argument, NULL, 'u'},
        {"ca-file", required_argument, NULL, 'C'}, {"log-level", required_argument, NULL, 'L'},
        {"user", required_argument, NULL, 'U'},    {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *listen = NULL, *upstream = NULL, *ca = NULL, *user = NULL;
    int test = 0, level = LOG_INFO, ch, rc;
    char err[1024];
    struct conf *conf;

    if (argc > 1 && strcmp(argv[1], "mkcert") == 0)
        return mkcert_main(argc - 1, argv + 1);
    while ((ch = getopt_long(argc, argv, "c:tl:u:L:Vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            file = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'u':
            upstream = optarg;
            break;
        case 'C':
            ca = optarg;
            break;
        case 'U':
            user = optarg;
            break;
        case 'L':
            if ((level = log_level_parse(optarg)) < 0) {
                fprintf(stderr, "tlslift: -L takes error, warn, info or debug\n");
                return 2;
            }
            break;
        case 'V':
            version();
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || (file && (listen || upstream)) || (!file && !(listen && upstream))) {
        if (file && (listen || upstream))
            fprintf(stderr, "tlslift: -c and quick mode (-l/-u) do not mix\n");
        else if (!file && (listen || upstream))
            fprintf(stderr, "tlslift: quick mode needs both -l ADDR:PORT and -u https://HOST\n");
        usage(stderr);
        return 2;
    }
    log_init();
    if (tlsio_global_init() != 0) {
        fprintf(stderr, "tlslift: cannot initialise the crypto library\n");
        return 1;
    }
    if (file)
        conf = conf_load(file, err, sizeof(err));
    else
        conf = conf_quick(listen, upstream, ca, level, err, sizeof(err));
    if (!conf) {
        fprintf(stderr, "%s\n", err);
        tlsio_global_free();
        return 1;
    }
    if (test) {
        printf("configuration ok\n");
        conf_unref(conf);
        tlsio_global_free();
        return 0;
    }
    /* Quick mode started as root drops to nobody unless told otherwise: it
     * needs no file after start. */
    if (!file && !user && geteuid() == 0)
        user = "nobody";
    g.file = file;
    log_set_level(conf->log_level);
    rc = run(conf, user);
    conf_unref(g.conf);
    bufpool_drain();
    tlsio_global_free();
    return rc;
}
