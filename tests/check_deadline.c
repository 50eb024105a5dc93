/* The deadline thread, on socket pairs: a connection past its deadline is shut down once;
 * one with no deadline, a deadline moved on or a watch removed is left alone. */
#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "npsd/clock.h"
#include "npsd/deadline.h"

#include "testutil.h"

/* What the client end of a pair sees within ms: true when the server end was shut down
 * (end of file), false when nothing came. */
static bool shut_within(int client, int ms)
{
	struct pollfd p = { .fd = client, .events = POLLIN };
	if (poll(&p, 1, ms) <= 0)
		return false;
	char byte;
	return recv(client, &byte, 1, MSG_DONTWAIT) == 0;
}

START_TEST(past_its_deadline_a_connection_is_shut_down_once)
{
	struct deadlines *d = NULL;
	ck_assert_int_eq(deadlines_start(&d), 0);
	int late[2], none[2], moved[2], removed[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, late), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, none), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, moved), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, removed), 0);
	int64_t soon = clock_mono_ms() + 200;
	struct deadline_watch *w_late = deadlines_add(d, late[0], soon);
	struct deadline_watch *w_none = deadlines_add(d, none[0], 0);
	struct deadline_watch *w_moved = deadlines_add(d, moved[0], soon);
	struct deadline_watch *w_removed = deadlines_add(d, removed[0], soon);
	ck_assert(w_late && w_none && w_moved && w_removed);
	deadline_set(w_moved, clock_mono_ms() + 60 * 1000); /* its request ended; the next has a minute */
	deadlines_remove(d, w_removed);

	/* The sweep runs once a second: the late one goes within that of its deadline. */
	ck_assert_msg(shut_within(late[1], 2500), "a connection past its deadline was left open");
	ck_assert_uint_eq(deadlines_cut(d), 1);
	ck_assert_msg(!shut_within(none[1], 100), "a connection without a deadline was cut");
	ck_assert_msg(!shut_within(moved[1], 100), "a connection whose deadline moved on was cut");
	ck_assert_msg(!shut_within(removed[1], 100), "a removed watch cut its connection");

	/* Once: the next sweeps leave the cut one alone until its owner closes it. */
	usleep(1200 * 1000);
	ck_assert_uint_eq(deadlines_cut(d), 1);
	/* A new deadline for a watch that has none counts again. */
	deadline_set(w_none, clock_mono_ms());
	ck_assert_msg(shut_within(none[1], 2500), "a deadline set later was not kept");
	ck_assert_uint_eq(deadlines_cut(d), 2);

	deadlines_remove(d, w_late);
	deadlines_remove(d, w_none);
	/* w_moved is still watched: stopping frees it. */
	deadlines_stop(&d);
	ck_assert_ptr_null(d);
	deadlines_stop(&d);
	int *pairs[] = { late, none, moved, removed };
	for (size_t i = 0; i < 4; i++) {
		close(pairs[i][0]);
		close(pairs[i][1]);
	}
}
END_TEST

/* A share of the large-body budget brings its deadline closer, never further, and never
 * back to a connection that has none (waiting for npsd, or cut already). */
START_TEST(a_sooner_deadline_only_ever_comes_closer)
{
	struct deadlines *d = NULL;
	ck_assert_int_eq(deadlines_start(&d), 0);
	int later[2], sooner[2], none[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, later), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sooner), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, none), 0);
	int64_t minute = clock_mono_ms() + 60 * 1000;
	struct deadline_watch *w_later = deadlines_add(d, later[0], clock_mono_ms() + 200);
	struct deadline_watch *w_sooner = deadlines_add(d, sooner[0], minute);
	struct deadline_watch *w_none = deadlines_add(d, none[0], 0);
	ck_assert(w_later && w_sooner && w_none);
	deadline_sooner(w_later, minute);                  /* later: stays at 200 ms */
	deadline_sooner(w_sooner, clock_mono_ms() + 200); /* sooner: moves */
	deadline_sooner(w_none, clock_mono_ms());          /* none: stays none */
	deadline_sooner(NULL, 0);

	ck_assert_msg(shut_within(later[1], 2500), "a later deadline pushed an earlier one back");
	ck_assert_msg(shut_within(sooner[1], 2500), "a sooner deadline was not kept");
	ck_assert_msg(!shut_within(none[1], 100), "a connection without a deadline was given one");
	ck_assert_uint_eq(deadlines_cut(d), 2);
	/* Cut: its deadline is none now, and a sooner one does not cut (or count) it again. */
	deadline_sooner(w_later, clock_mono_ms());
	usleep(1200 * 1000);
	ck_assert_uint_eq(deadlines_cut(d), 2);

	deadlines_stop(&d);
	int *pairs[] = { later, sooner, none };
	for (size_t i = 0; i < 3; i++) {
		close(pairs[i][0]);
		close(pairs[i][1]);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("deadline");
	TCase *tc = tcase_create("deadline");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, past_its_deadline_a_connection_is_shut_down_once);
	tcase_add_test(tc, a_sooner_deadline_only_ever_comes_closer);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
