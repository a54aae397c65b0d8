/* Unit tests for conf: every error names FILE:LINE, defaults, inheritance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "conf.h"
#include "tlsio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CA "/etc/ssl/certs/ca-certificates.crt"

static char path[64];

static struct conf *
load(const char *text, char *err, size_t errlen)
{
    strcpy(path, "/tmp/tlslift-unit-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct conf *c = conf_load(path, err, errlen);
    unlink(path);
    return c;
}

/* Load TEXT, expect failure at LINE with REASON in the message. */
static void
expect_error(const char *text, int line, const char *reason)
{
    char err[512], want[128];
    struct conf *c = load(text, err, sizeof(err));

    if (c) {
        conf_unref(c);
        fail_msg("loaded, expected error '%s'", reason);
    }
    snprintf(want, sizeof(want), "%s:%d: ", path, line);
    if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, reason))
        fail_msg("got '%s', want prefix '%s' and '%s'", err, want, reason);
}

static const char *const good = "[tlslift]\n"
                                "log_level = debug\n"
                                "ca_file = " CA "\n"
                                "client_header_timeout = 500ms\n"
                                "\n"
                                "[route raygun]\n"
                                "listen = 127.0.0.1:8080\n"
                                "upstream = https://api.raygun.com\n"
                                "max_headers = 50\n";

static void
test_good(void **state)
{
    char err[512];
    struct conf *c = load(good, err, sizeof(err));

    (void)state;
    assert_non_null(c);
    assert_int_equal(c->nroutes, 1);
    struct route *r = &c->routes[0];
    assert_string_equal(r->name, "raygun");
    assert_string_equal(r->up_host, "api.raygun.com");
    assert_int_equal(r->up_port, 443);
    assert_string_equal(r->up_hostport, "api.raygun.com");
    assert_int_equal(r->up_min_version, 12);
    assert_int_equal(r->lim.max_headers, 50);
    assert_int_equal(r->lim.client_header_timeout, 500); /* inherited from [tlslift] */
    assert_int_equal(r->lim.max_request_line, 8192);     /* default */
    assert_int_equal(c->log_level, 3);
    conf_unref(c);
}

static void
test_port_and_host(void **state)
{
    char err[512];
    struct conf *c = load("[tlslift]\nca_file = " CA "\n[route a]\nlisten = [::1]:8080\n"
                          "upstream = https://example.com:8443/\nhost_header = preserve\n"
                          "upstream_min_version = 1.3\n",
                          err, sizeof(err));
    (void)state;
    assert_non_null(c);
    assert_string_equal(c->routes[0].up_hostport, "example.com:8443");
    assert_int_equal(c->routes[0].up_port, 8443);
    assert_int_equal(c->routes[0].host_header, HOST_HEADER_PRESERVE);
    assert_int_equal(c->routes[0].up_min_version, 13);
    conf_unref(c);
}

static void
test_errors(void **state)
{
    (void)state;
    expect_error("[tlslift]\nbogus = 1\n", 2, "unknown key \"bogus\"");
    expect_error("[tlslift]\n[nonsense]\nx = 1\n", 2, "unknown section [nonsense]");
    expect_error("[tlslift]\nlog_level = loud\n", 2, "log_level must be");
    expect_error("[tlslift]\nlog_level = info\nlog_level = warn\n", 3, "duplicate key");
    expect_error("[route a]\nlisten = 127.0.0.1:80\nupstream = http://x.example\n", 3,
                 "must be https://");
    expect_error("[route a]\nlisten = 127.0.0.1:80\nupstream = https://x.example/path\n", 3,
                 "must not have a path");
    expect_error("[route a]\nlisten = 127.0.0.1:80\nupstream_min_version = 1.1\n", 3,
                 "upstream_min_version must be 1.2 or 1.3");
    expect_error("[route a]\nlisten = nowhere\n", 2, "listen must be ADDR:PORT");
    expect_error("[route a]\nlisten = 127.0.0.1:99999\n", 2, "listen must be ADDR:PORT");
    expect_error("[tlslift]\nclient_header_timeout = soon\n", 2, "must be a duration");
    expect_error("[tlslift]\nmax_headers = 0\n", 2, "must be a number from 1");
    expect_error("[route a]\nhost_header = sometimes\n", 2, "host_header must be");
    expect_error("[route a]\nallow_remote = perhaps\n", 2, "allow_remote must be");
    expect_error("\n\n[route a]\nupstream = https://x.example\n", 3, "missing listen");
    expect_error("[route a]\nlisten = 127.0.0.1:80\n", 1, "missing upstream");
    expect_error("[route a]\nlisten = 10.1.2.3:80\nupstream = https://x.example\n", 1,
                 "not a loopback address");
    expect_error("[route a]\nlisten = 127.0.0.1:80\nupstream = https://x.example\n"
                 "[route b]\nlisten = 127.0.0.1:80\nupstream = https://y.example\n",
                 4, "is shared with route a: set server_name");
    expect_error("[route a]\nlisten = 127.0.0.1:80\nupstream = https://x.example\n"
                 "server_name = x.example\n[route b]\nlisten = 127.0.0.1:80\n"
                 "upstream = https://y.example\nserver_name = X.example\n",
                 5, "server_name x.example is already used by route a");
    expect_error("[route a]\nlisten = 127.0.0.1:80\nupstream = https://x.example\n"
                 "tls_cert = /nonexistent.pem\n",
                 1, "tls_cert and tls_key go together");
    expect_error("[route a]\nlisten = 127.0.0.1:80\nupstream = https://x.example\n"
                 "tls_min_version = 1.0\n",
                 1, "need tls_cert/tls_key");
    expect_error("[route a]\nlisten = 127.0.0.1:80\nupstream = https://x.example\n"
                 "tls_cert = /nonexistent.pem\ntls_key = /nonexistent.key\n",
                 1, "cannot load tls_cert /nonexistent.pem");
    expect_error("[route a]\ntls_min_version = 0.9\n", 2, "tls_min_version must be");
    expect_error("[tlslift]\nadmin_listen = 0.0.0.0:9090\n", 2, "must be a loopback address");
    expect_error("[tlslift]\nshutdown_timeout = forever\n", 2, "shutdown_timeout must be");
    expect_error("[tlslift]\nrun_as_root = maybe\n", 2, "run_as_root must be");
    expect_error("log_level = info\n", 1, "outside any section");
    expect_error("[route a]\nlisten = 127.0.0.1:80\nupstream = https://x.example\n"
                 "[route a]\nlisten = 127.0.0.1:81\n",
                 4, "defined twice");
    expect_error("[route a]\nlisten = 127.0.0.1:80\nupstream = https://x.example\n"
                 "upstream_ca_file = /nonexistent/ca.pem\n",
                 1, "cannot load trust store /nonexistent/ca.pem");
    expect_error("[tlslift]\nthis line has no equals sign\n", 2, "syntax error");
    expect_error("[tlslift]\n", 0, "no [route NAME] section");
}

static void
test_remote_allowed(void **state)
{
    char err[512];
    struct conf *c = load("[tlslift]\nca_file = " CA "\n[route a]\nlisten = 0.0.0.0:8080\n"
                          "allow_remote = yes\nupstream = https://x.example\n",
                          err, sizeof(err));
    (void)state;
    assert_non_null(c);
    conf_unref(c);
}

static void
test_quick(void **state)
{
    char err[512];
    struct conf *c =
        conf_quick("127.0.0.1:8080", "https://api.raygun.com", CA, 2, err, sizeof(err));
    (void)state;
    assert_non_null(c);
    assert_string_equal(c->routes[0].name, "quick");
    conf_unref(c);
    c = conf_quick("127.0.0.1:8080", "http://api.raygun.com", CA, 2, err, sizeof(err));
    assert_null(c);
    assert_non_null(strstr(err, "-u http://api.raygun.com: upstream must be https://"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),   cmocka_unit_test(test_port_and_host),
        cmocka_unit_test(test_errors), cmocka_unit_test(test_remote_allowed),
        cmocka_unit_test(test_quick),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tlsio_global_free();
    return rc;
}
