#ifndef NPSD_TLS_H
#define NPSD_TLS_H
#include <stddef.h>
#include <stdint.h>

/*
 * server.tls_cert and server.tls_key, checked the way libmicrohttpd will load them, so that
 * a bad file is named by --check-config and at start, with its line in the config, rather
 * than failing the listener with an error that names neither.
 */

enum tls_file { TLS_CERT, TLS_KEY };

/* Reads both PEM files and checks that cert_path holds at least one X.509 certificate, that
 * key_path holds one unencrypted private key, and that the key belongs to the first
 * certificate (the server's own; the rest is its chain). Returns 0 with the end of that
 * certificate's validity (unix seconds) in *ret_not_after, or -EINVAL (a file is unreadable
 * or wrong) with *ret_file naming which one and a message for a person in why (always
 * NUL-terminated), or -ENOMEM. An expired certificate is no error here: the caller warns.
 * Nothing is logged. */
int tls_check_pair(const char *cert_path, const char *key_path, int64_t *ret_not_after,
                   enum tls_file *ret_file, char *why, size_t why_size);

#endif
