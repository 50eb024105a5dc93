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

/* At most this many digests of one webhook at once, after npsd was down over their periods:
 * a week of daily ones, where an hourly digest down for a week would be 168 pushes. */
#define DIGESTS_CATCH_UP_MAX 7

/* Writes the digest of every active digest webhook whose period has ended since its mark,
 * each period once, oldest first: after a time npsd was down, each period that ended
 * meanwhile (up to the DIGESTS_CATCH_UP_MAX newest; the first one told says how many older
 * ones were skipped). A digest set, changed or switched on again was marked then with the
 * period under way (store_webhooks.c), so the periods that ended while it was off are not
 * told; one without a mark (set by an older npsd) starts with its next period. Returns how
 * many were written, or the first negative errno (the other digests are written all the
 * same), and in *ret_skipped how many periods the written ones said were skipped. */
int digests_look(struct npsd_db *db, const struct npsd_config *cfg, int64_t now, int64_t *ret_skipped);

#endif
