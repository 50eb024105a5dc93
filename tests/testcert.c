#include "testcert.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <time.h>

static int write_datum(const char *path, const gnutls_datum_t *d)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return GNUTLS_E_FILE_ERROR;
	size_t wrote = fwrite(d->data, 1, d->size, f);
	int closed = fclose(f);
	return wrote == d->size && closed == 0 ? 0 : GNUTLS_E_FILE_ERROR;
}

int testcert_write(const char *cert_path, const char *key_path, const char *key_password)
{
	static const unsigned char loopback[4] = { 127, 0, 0, 1 };
	unsigned char serial[8];
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t cert_pem = { NULL, 0 }, key_pem = { NULL, 0 };
	time_t now = time(NULL);
	int r;

	if ((r = gnutls_x509_privkey_init(&key)) < 0 || (r = gnutls_x509_crt_init(&crt)) < 0)
		goto out;
	r = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	                                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	if (r < 0)
		goto out;
	/* A serial of its own per certificate: a client that has seen one with the same
	 * issuer and serial would take the two for the same. */
	if ((r = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial)) < 0)
		goto out;
	serial[0] &= 0x7f; /* a positive number */
	if ((r = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (r = gnutls_x509_crt_set_serial(crt, serial, sizeof serial)) < 0 ||
	    (r = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
	    (r = gnutls_x509_crt_set_expiration_time(crt, now + 86400)) < 0 ||
	    (r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost",
	                                       9)) < 0 ||
	    (r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, loopback,
	                                              sizeof loopback, GNUTLS_FSAN_APPEND)) < 0 ||
	    (r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
	                                              GNUTLS_FSAN_APPEND)) < 0 ||
	    (r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (r = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (r = gnutls_x509_crt_set_key(crt, key)) < 0 ||
	    (r = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0 ||
	    (r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cert_pem)) < 0)
		goto out;
	r = key_password ? gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, key_password,
	                                                     GNUTLS_PKCS_PBES2_AES_256, &key_pem)
	                 : gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &key_pem);
	if (r < 0)
		goto out;
	if ((r = write_datum(cert_path, &cert_pem)) < 0)
		goto out;
	r = write_datum(key_path, &key_pem);
out:
	gnutls_free(cert_pem.data);
	gnutls_free(key_pem.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return r;
}
