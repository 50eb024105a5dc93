#ifndef NPSD_DIGESTS_H
#define NPSD_DIGESTS_H
#include <stdbool.h>
#include <stdint.h>

#include "npsd/config.h"
#include "npsd/db.h"

/*
 * Digest webhooks (SPEC: "digest": "hourly"|"daily" at digest_at, local time): one message
 * per period with the NPS, its counts, the change against the period before, the lowest
 * scores with their comments and the open queue. The alerts thread calls digests_look();
 * each period is written to the outbox once, with the mark of it in the same transaction.
 */

/* The local time HH:MM a digest of kind goes by: digest_at, or when NULL the default
 * ("08:00" daily; "00:00" hourly, of which only the minute counts). NULL when kind is no
 * digest (NULL, or unknown). */
const char *digest_at_in_force(const char *kind, const char *digest_at);

/* The last whole period at or before now, in the process time zone (callbacks.timezone):
 * daily periods end at digest_at (HH:MM; NULL = 08:00) each day, hourly ones at digest_at's
 * minute (NULL = :00) each hour. A daily time the local clock shows twice (the autumn
 * change) is its first showing; one it skips (spring) is read with the offset before the
 * change, which lands after the gap (02:30 becomes 03:30 summer time). A date's end is the
 * same instant whenever it is asked, so periods follow each other without overlap.
 * 0, or -1 for a bad kind or time. */
int digest_period(const char *kind, const char *digest_at, int64_t now, int64_t *ret_start, int64_t *ret_end);

/* Where the periods of a digest stand (webhooks.h keeps them in the webhook's row). */
struct digest_marks {
	int64_t sent_until; /* every hour before it is told, or was not to be told */
	/* A change of kind or time: the first digest by the new schedule is [first_from,
	 * first_until), and the periods of the old schedule (was, at was_at, its time in
	 * force) that end after sent_until and up to first_from are told before it. was is ""
	 * when there are none; first_until is 0 when no such first digest is pending. */
	char was[8], was_at[8];
	int64_t first_from, first_until;
};

/* True when kind at digest_at and kind2 at at2 tell the same periods: the same kind at the
 * same time in force (of an hourly digest, the minute only). */
bool digest_same_schedule(const char *kind, const char *digest_at, const char *kind2, const char *at2);

/*
 * The marks after a digest told by kind at digest_at until now (*marks) changes at now to
 * new_kind at new_at, so that every hour is told once: the periods of the old schedule that
 * had ended are still told as they are, and the first digest by the new one runs from the
 * end of the last of them (or of the last period told) to the end of the new schedule's
 * period under way, longer or shorter than one period. Changed again before that first
 * digest is told, the first digest keeps its start (and the old schedule its periods) and
 * ends with the newest schedule's period under way. 0, or -1 for a bad kind or time.
 */
int digest_rescheduled(const struct digest_marks *marks, const char *kind, const char *digest_at,
                       const char *new_kind, const char *new_at, int64_t now, struct digest_marks *ret);

/* At most this many digests of one webhook at once, after npsd was down over their periods:
 * a week of daily ones, where an hourly digest down for a week would be 168 pushes. */
#define DIGESTS_CATCH_UP_MAX 7

/* Writes the digest of every active digest webhook whose period has ended since its mark,
 * each period once, oldest first: after a time npsd was down, each period that ended
 * meanwhile (up to the DIGESTS_CATCH_UP_MAX newest; the first one told says how many older
 * ones were skipped). A digest set or switched on again was marked then with the period
 * under way (store_webhooks.c), so the periods that ended while it was off are not told;
 * one whose kind or time changed tells the old schedule's periods that had ended, then the
 * uneven first digest by the new one (struct digest_marks); one without a mark (set by an
 * older npsd) starts with its next period. Returns how
 * many were written, or the first negative errno (the other digests are written all the
 * same), and in *ret_skipped how many periods the written ones said were skipped. */
int digests_look(struct npsd_db *db, const struct npsd_config *cfg, int64_t now, int64_t *ret_skipped);

#endif
