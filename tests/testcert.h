#ifndef NPSD_TESTCERT_H
#define NPSD_TESTCERT_H

/*
 * Certificates for the HTTPS tests, made with GnuTLS when a test runs, so that no key is
 * kept in the repository and none expires there.
 */

/* Writes a new self-signed certificate for 127.0.0.1 and localhost (valid from an hour ago
 * for a day) to cert_path, and its new ECDSA P-256 key to key_path, both PEM. With a
 * key_password the key is written encrypted with it (PKCS #8), else in the clear. Returns 0,
 * or a GnuTLS error code (< 0). */
int testcert_write(const char *cert_path, const char *key_path, const char *key_password);

#endif
