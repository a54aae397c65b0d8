/*
 * mkcert: `tlslift mkcert`, a local CA and leaf certificates for a TLS
 * listener (tls_cert/tls_key), for legacy apps that keep their https:// URL:
 * the operator maps the service's name to 127.0.0.1 and has the app trust the
 * local CA, and tlslift serves the leaf for that name.
 *
 *   tlslift mkcert --ca DIR                 DIR/ca.key, DIR/ca.crt
 *   tlslift mkcert --ca DIR NAME...         DIR/NAME.key, DIR/NAME.crt (+ the CA if missing)
 *
 * main calls mkcert_main when its first argument is "mkcert", before its own
 * option parsing (getopt_long would reject --ca and permute argv). This is an
 * offline command: it runs no event loop and shares no state with the daemon.
 * It calls tlsio_global_init() (idempotent) and leaves the global crypto state
 * initialised; the caller may call tlsio_global_free() afterwards.
 *
 * Keys are RSA 2048 (what TLS 1.0 clients such as .NET 3.5 on SChannel need),
 * written 0600 from the moment they exist; every file is written to a temporary
 * name and renamed into place, so a reader never sees half a file. An existing
 * ca.key is never overwritten.
 */
#ifndef TLSLIFT_MKCERT_H
#define TLSLIFT_MKCERT_H

#include <stdio.h>

/* ARGV as it follows the word "mkcert" (argv[0] is "mkcert"). Prints the
 * paths it wrote on stdout, one a line, and errors on stderr. Returns the
 * process exit code: 0 done (or the CA already existed), 1 error, 2 usage. */
int mkcert_main(int argc, char **argv);

/* mkcert_main with the output streams given, for tests. */
int mkcert_run(int argc, char **argv, FILE *out, FILE *err);

#endif
