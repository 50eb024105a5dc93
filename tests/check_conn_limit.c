/* conn_limit: connections counted per client key (README "Behaviour where SPEC is silent"). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "npsd/client_key.h"
#include "npsd/conn_limit.h"

#include "testutil.h"

/* The client key of text, an IPv4 or IPv6 address, as http.c makes it. */
static int take(struct conn_limit *cl, const char *address)
{
	struct in6_addr key = client_key_of(address);
	return conn_limit_take(cl, &key);
}

static void give_back(struct conn_limit *cl, const char *address)
{
	struct in6_addr key = client_key_of(address);
	conn_limit_give_back(cl, &key);
}

static unsigned held(struct conn_limit *cl, const char *address)
{
	struct in6_addr key = client_key_of(address);
	return conn_limit_held(cl, &key);
}

static bool full(struct conn_limit *cl, const char *address)
{
	struct in6_addr key = client_key_of(address);
	return conn_limit_full(cl, &key);
}

/* Connections from fresh addresses of one /64 count as one client's, and meet its limit; the
 * next /64 and another IPv4 address are other clients. A connection given back makes room
 * again. */
START_TEST(an_ipv6_64_shares_one_limit_ipv4_counts_per_address)
{
	struct conn_limit *cl = NULL;
	ck_assert_int_eq(conn_limit_new(3, &cl), 0);
	ck_assert_int_eq(take(cl, "2001:db8:1:2::1"), 0);
	ck_assert_int_eq(take(cl, "2001:db8:1:2::2"), 0);
	ck_assert(!full(cl, "2001:db8:1:2:ffff::9"));
	ck_assert_int_eq(take(cl, "2001:db8:1:2:ffff::9"), 0);
	ck_assert(full(cl, "2001:db8:1:2::4"));
	ck_assert_int_eq(take(cl, "2001:db8:1:2::4"), -EUSERS);
	ck_assert_uint_eq(held(cl, "2001:db8:1:2::77"), 3);

	ck_assert(!full(cl, "2001:db8:1:3::1"));
	ck_assert_int_eq(take(cl, "2001:db8:1:3::1"), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(take(cl, "192.0.2.1"), 0);
	ck_assert_int_eq(take(cl, "::ffff:192.0.2.1"), -EUSERS); /* the same IPv4 client */
	ck_assert_int_eq(take(cl, "192.0.2.2"), 0);

	give_back(cl, "2001:db8:1:2::2");
	ck_assert(!full(cl, "2001:db8:1:2::4"));
	ck_assert_int_eq(take(cl, "2001:db8:1:2::4"), 0);
	ck_assert_int_eq(take(cl, "2001:db8:1:2::5"), -EUSERS);
	conn_limit_free(&cl);
	ck_assert_ptr_null(cl);
	conn_limit_free(&cl);
	conn_limit_free(NULL);
}
END_TEST

/* An entry lives while its client holds a connection: clients that come and go (thousands
 * of them, each once) leave nothing behind, and a refused take keeps no entry either. */
START_TEST(the_table_holds_one_entry_per_client_with_a_connection)
{
	struct conn_limit *cl = NULL;
	ck_assert_int_eq(conn_limit_new(2, &cl), 0);
	char address[64];
	for (unsigned i = 0; i < 5000; i++) {
		snprintf(address, sizeof address, "2001:db8:%x:%x::1", i >> 8, i & 0xff);
		ck_assert_int_eq(take(cl, address), 0);
		ck_assert_int_eq(take(cl, address), 0);
	}
	ck_assert_uint_eq(conn_limit_keys(cl), 5000);
	ck_assert_int_eq(take(cl, "2001:db8:0:7::2"), -EUSERS);
	ck_assert_uint_eq(conn_limit_keys(cl), 5000);
	for (unsigned i = 0; i < 5000; i++) {
		snprintf(address, sizeof address, "2001:db8:%x:%x::1", i >> 8, i & 0xff);
		give_back(cl, address);
		ck_assert_uint_eq(held(cl, address), 1);
		give_back(cl, address);
		ck_assert_uint_eq(held(cl, address), 0);
	}
	ck_assert_uint_eq(conn_limit_keys(cl), 0);
	/* A limit of 0 would refuse everyone: it is taken as 1. */
	struct conn_limit *one = NULL;
	ck_assert_int_eq(conn_limit_new(0, &one), 0);
	ck_assert_int_eq(take(one, "192.0.2.1"), 0);
	ck_assert_int_eq(take(one, "192.0.2.1"), -EUSERS);
	conn_limit_free(&one);
	conn_limit_free(&cl);
}
END_TEST

/* HTTP threads take and give back at once: no count is lost or made up, and no take ever
 * goes past the limit. */
struct racer {
	struct conn_limit *cl;
	unsigned over; /* takes that found the client at its limit */
};

static void *race(void *arg)
{
	struct racer *r = arg;
	struct in6_addr key = client_key_of("2001:db8:1:2::1");
	for (int i = 0; i < 20000; i++) {
		if (conn_limit_take(r->cl, &key) == 0) {
			ck_assert_uint_le(conn_limit_held(r->cl, &key), 4);
			conn_limit_give_back(r->cl, &key);
		} else {
			r->over++;
		}
	}
	return NULL;
}

START_TEST(threads_share_the_table)
{
	struct conn_limit *cl = NULL;
	ck_assert_int_eq(conn_limit_new(4, &cl), 0);
	pthread_t threads[8];
	struct racer racers[8];
	for (int i = 0; i < 8; i++) {
		racers[i] = (struct racer){ .cl = cl };
		ck_assert_int_eq(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(threads[i], NULL);
	ck_assert_uint_eq(held(cl, "2001:db8:1:2::1"), 0);
	ck_assert_uint_eq(conn_limit_keys(cl), 0);
	conn_limit_free(&cl);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("conn_limit");
	TCase *tc = tcase_create("conn_limit");
	tcase_add_test(tc, an_ipv6_64_shares_one_limit_ipv4_counts_per_address);
	tcase_add_test(tc, the_table_holds_one_entry_per_client_with_a_connection);
	tcase_add_test(tc, threads_share_the_table);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
