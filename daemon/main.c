/*
 * main: the command line, start-up, signals and the run loop.
 */
#include "bufq.h"
#include "conf.h"
#include "downstream.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "tlsio.h"
#include "upstream.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#define SHUTDOWN_TIMEOUT_MS 10000

static struct {
    uv_loop_t *loop;
    struct conf *conf;
    struct listener **listeners;
    uv_signal_t sigint, sigterm, sighup;
    uv_timer_t drain;
    uint64_t drain_deadline;
    bool stopping;
} g;

static void
usage(FILE *f)
{
    fprintf(f, "usage: tlslift -c FILE          run with the configuration FILE\n"
               "       tlslift -t -c FILE       check FILE and exit\n"
               "       tlslift -l ADDR:PORT -u https://HOST[:PORT] [--ca-file PATH] [-L LEVEL]\n"
               "                                quick mode: one route, no file\n"
               "       tlslift --version\n"
               "See tlslift(8) and tlslift.ini(5).\n");
}

static void
version(void)
{
    printf("tlslift %s\nmbedTLS %s\nlibuv %s\nllhttp %s\n", TLSLIFT_VERSION, tlsio_lib_version(),
           uv_version_string(), http_lib_version());
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

static void
close_listeners(void)
{
    if (!g.listeners)
        return;
    for (size_t i = 0; i < g.conf->nroutes; i++)
        listener_free(g.listeners[i]);
    free(g.listeners);
    g.listeners = NULL;
}

static void
finish(void)
{
    for (size_t i = 0; i < g.conf->nroutes; i++) {
        upstream_pool_free(g.conf->routes[i].pool);
        g.conf->routes[i].pool = NULL;
    }
    uv_close((uv_handle_t *)&g.drain, NULL);
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
        log_warn(0, "%llu connections still busy after %dms; exiting anyway",
                 (unsigned long long)downstream_stats.active, SHUTDOWN_TIMEOUT_MS);
        exit(0);
    }
}

static void
on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    if (signum == SIGHUP) {
        log_warn(0, "SIGHUP: configuration reload is not implemented yet; restart to apply "
                    "changes");
        return;
    }
    if (g.stopping) {
        log_warn(0, "second signal: exiting now");
        exit(0);
    }
    g.stopping = true;
    log_info(0, "%s: stopping: no new connections, finishing %llu open ones",
             signum == SIGTERM ? "SIGTERM" : "SIGINT", (unsigned long long)downstream_stats.active);
    close_listeners();
    downstream_shutdown();
    g.drain_deadline = uv_now(g.loop) + SHUTDOWN_TIMEOUT_MS;
    uv_timer_start(&g.drain, on_drain_tick, 0, 50);
}

static int
run(struct conf *conf)
{
    char err[512];
    int rc = 1;

    g.loop = uv_default_loop();
    g.conf = conf;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(conf->max_connections);
    if (log_access_open(conf->access_log) != 0) {
        log_error(0, "cannot open access_log %s; check the path and its directory's permissions",
                  conf->access_log);
        return 1;
    }
    g.listeners = calloc(conf->nroutes, sizeof(*g.listeners));
    if (!g.listeners)
        return 1;
    for (size_t i = 0; i < conf->nroutes; i++) {
        struct route *r = &conf->routes[i];
        r->pool = upstream_pool_new(g.loop, conf, r);
        if (!r->pool) {
            log_error(0, "out of memory");
            goto out;
        }
        g.listeners[i] = listener_new(g.loop, conf, r, err, sizeof(err));
        if (!g.listeners[i]) {
            log_error(0, "%s", err);
            goto out;
        }
        log_info(0, "route %s: listening on %s, forwarding to %s (TLS >= 1.%d, verified)", r->name,
                 r->listen, r->upstream, r->up_min_version - 10);
    }
    uv_signal_init(g.loop, &g.sigint);
    uv_signal_init(g.loop, &g.sigterm);
    uv_signal_init(g.loop, &g.sighup);
    uv_timer_init(g.loop, &g.drain);
    uv_signal_start(&g.sigint, on_signal, SIGINT);
    uv_signal_start(&g.sigterm, on_signal, SIGTERM);
    uv_signal_start(&g.sighup, on_signal, SIGHUP);
    log_info(0, "tlslift %s ready (mbedTLS %s, libuv %s, llhttp %s)", TLSLIFT_VERSION,
             tlsio_lib_version(), uv_version_string(), http_lib_version());
    uv_run(g.loop, UV_RUN_DEFAULT);
    log_info(0, "stopped");
    rc = 0;
out:
    if (rc) {
        close_listeners();
        for (size_t i = 0; i < conf->nroutes; i++)
            upstream_pool_free(conf->routes[i].pool);
        uv_run(g.loop, UV_RUN_NOWAIT);
    }
    uv_loop_close(g.loop);
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"listen", required_argument, NULL, 'l'},
        {"upstream", required_argument, NULL, 'u'},
        {"ca-file", required_argument, NULL, 'C'},
        {"log-level", required_argument, NULL, 'L'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *listen = NULL, *upstream = NULL, *ca = NULL;
    int test = 0, level = LOG_INFO, ch, rc;
    char err[1024];
    struct conf *conf;

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
    log_set_level(conf->log_level);
    rc = run(conf);
    conf_unref(conf);
    bufpool_drain();
    tlsio_global_free();
    return rc;
}
