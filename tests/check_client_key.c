/* client_key: whose turn a large body waits in (README "Large bodies take turns"). */
#include <arpa/inet.h>
#include <check.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "npsd/client_key.h"

#include "testutil.h"

/* The key of text, an IPv4 or IPv6 address, as libmicrohttpd would give its sockaddr. */
static bool same_turn(const char *a, const char *b)
{
	struct in6_addr ka = client_key_of(a), kb = client_key_of(b);
	return memcmp(&ka, &kb, sizeof ka) == 0;
}

/* A host with a /64 that takes a fresh address for each connection still has one turn; the
 * next /64 is another client. IPv4, mapped or not, and IPv4 clients behind a NAT64
 * translator (64:ff9b::/96) stay one turn per address. */
START_TEST(client_key_groups_ipv6_by_64_ipv4_by_address)
{
	ck_assert(same_turn("2001:db8:1:2::1", "2001:db8:1:2:ffff:1:2:3"));
	ck_assert(same_turn("2001:db8:1:2::1", "2001:db8:1:2:8000::"));
	ck_assert(same_turn("::1", "::2"));
	ck_assert(!same_turn("2001:db8:1:2::1", "2001:db8:1:3::1"));
	ck_assert(!same_turn("2001:db8:1:2::1", "2001:db9:1:2::1"));

	ck_assert(!same_turn("192.0.2.1", "192.0.2.2"));
	ck_assert(same_turn("192.0.2.1", "::ffff:192.0.2.1"));
	ck_assert(!same_turn("::ffff:192.0.2.1", "::ffff:192.0.2.2"));
	ck_assert(!same_turn("64:ff9b::192.0.2.1", "64:ff9b::192.0.2.2"));
	ck_assert(!same_turn("192.0.2.1", "64:ff9b::192.0.2.1")); /* which one it was is not known */

	/* Not IP: no key (the body counts in the turn of unknown clients), *ret untouched. */
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct in6_addr key;
	memset(&key, 0xa5, sizeof key);
	ck_assert(!client_key((const struct sockaddr *)&un, &key));
	ck_assert(!client_key(NULL, &key));
	ck_assert_uint_eq(key.s6_addr[0], 0xa5);
	ck_assert_uint_eq(key.s6_addr[15], 0xa5);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client_key");
	TCase *tc = tcase_create("client_key");
	tcase_add_test(tc, client_key_groups_ipv6_by_64_ipv4_by_address);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
