#include "npsd/callbacks.h"

#include <errno.h>
#include <string.h>

#include "npsd/schedule.h"

bool callbacks_owed(const struct npsd_config *cfg, const struct customer_row *customer,
                    int score, bool consent, int64_t now)
{
	if (score > cfg->cb_max_score || !consent)
		return false;
	if (!customer->phone || customer->do_not_call)
		return false;
	if (cfg->cb_cooldown > 0 && customer->last_reached_at > 0 &&
	    now - customer->last_reached_at < cfg->cb_cooldown)
		return false;
	return true;
}

int callbacks_open_or_join(struct db_conn *conn, const struct npsd_config *cfg,
                           const struct customer_row *customer, const char *touchpoint, int score,
                           int64_t now, struct callback_brief *ret)
{
	int r = customer->open_callback_id ? store_callback_brief(conn, customer->open_callback_id, ret)
	                                   : -ENOENT;
	if (r == 0 && strcmp(ret->status, "queued") != 0 && strcmp(ret->status, "claimed") != 0)
		r = -ENOENT; /* closed since: a new call is owed */
	if (r == 0) {
		if (score < ret->priority) {
			r = store_callback_join(conn, ret->id, score);
			ret->priority = score;
		}
		return r;
	}
	if (r != -ENOENT)
		return r;
	int64_t due = schedule_next_open(&cfg->cb_hours, cfg->cb_holidays, cfg->cb_nholidays, now);
	if (due < 0)
		due = now; /* never open: the config validator refuses that, so this is a guard only */
	int64_t id;
	r = store_callback_insert(conn, customer->id, score, touchpoint, due, due + cfg->cb_sla,
	                          cfg->cb_max_attempts, now, &id);
	if (r < 0)
		return r;
	*ret = (struct callback_brief){ .id = id, .status = "queued", .due_at = due, .priority = score };
	return 0;
}
