#include "npsd/tls.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int refuse(enum tls_file file, enum tls_file *ret_file, char *why, size_t why_size, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));

static int refuse(enum tls_file file, enum tls_file *ret_file, char *why, size_t why_size, const char *fmt,
                  ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, why_size, fmt, ap);
	va_end(ap);
	*ret_file = file;
	return -EINVAL;
}

/* Both key ids are SHA-256 of the public key, so equal ids mean the same key pair. */
static bool key_fits_cert(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key)
{
	unsigned char crt_id[32], key_id[32];
	size_t crt_len = sizeof crt_id, key_len = sizeof key_id;

	if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, crt_id, &crt_len) < 0 ||
	    gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, key_id, &key_len) < 0)
		return false;
	return crt_len == key_len && memcmp(crt_id, key_id, crt_len) == 0;
}

int tls_check_pair(const char *cert_path, const char *key_path, int64_t *ret_not_after,
                   enum tls_file *ret_file, char *why, size_t why_size)
{
	gnutls_datum_t cert_pem = { NULL, 0 }, key_pem = { NULL, 0 };
	gnutls_x509_crt_t *certs = NULL;
	unsigned int ncerts = 0;
	gnutls_x509_privkey_t key = NULL;
	int g, r;

	why[0] = '\0';
	if ((g = gnutls_load_file(cert_path, &cert_pem)) < 0) {
		r = refuse(TLS_CERT, ret_file, why, why_size, "cannot read %s: %s", cert_path,
		           gnutls_strerror(g));
		goto out;
	}
	g = gnutls_x509_crt_list_import2(&certs, &ncerts, &cert_pem, GNUTLS_X509_FMT_PEM, 0);
	if (g < 0 || ncerts == 0) {
		r = refuse(TLS_CERT, ret_file, why, why_size,
		           "%s holds no PEM certificate that can be read (%s)", cert_path,
		           g < 0 ? gnutls_strerror(g) : "none found");
		goto out;
	}
	if ((g = gnutls_load_file(key_path, &key_pem)) < 0) {
		r = refuse(TLS_KEY, ret_file, why, why_size, "cannot read %s: %s", key_path,
		           gnutls_strerror(g));
		goto out;
	}
	if (gnutls_x509_privkey_init(&key) < 0) {
		r = -ENOMEM;
		goto out;
	}
	g = gnutls_x509_privkey_import2(key, &key_pem, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (g == GNUTLS_E_DECRYPTION_FAILED) {
		/* libmicrohttpd is given no password: the key has to be stored unencrypted,
		 * readable by the service alone. */
		r = refuse(TLS_KEY, ret_file, why, why_size,
		           "%s is encrypted; npsd needs the key without a password", key_path);
		goto out;
	}
	if (g < 0) {
		r = refuse(TLS_KEY, ret_file, why, why_size,
		           "%s holds no PEM private key that can be read (%s)", key_path, gnutls_strerror(g));
		goto out;
	}
	if (!key_fits_cert(certs[0], key)) {
		r = refuse(TLS_KEY, ret_file, why, why_size, "%s is not the key of the certificate in %s",
		           key_path, cert_path);
		goto out;
	}
	*ret_not_after = (int64_t)gnutls_x509_crt_get_expiration_time(certs[0]);
	r = 0;
out:
	gnutls_x509_privkey_deinit(key);
	for (unsigned int i = 0; i < ncerts; i++)
		gnutls_x509_crt_deinit(certs[i]);
	gnutls_free(certs);
	gnutls_free(cert_pem.data);
	if (key_pem.data) {
		/* The key's bytes should not linger in freed memory. */
		gnutls_memset(key_pem.data, 0, key_pem.size);
		gnutls_free(key_pem.data);
	}
	return r;
}
