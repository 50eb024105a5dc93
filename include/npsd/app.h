#ifndef NPSD_APP_H
#define NPSD_APP_H

#include <stdatomic.h>

#include "npsd/auth.h"
#include "npsd/config.h"
#include "npsd/db.h"
#include "npsd/http.h"
#include "npsd/ratelimit.h"

/* What every handler may reach: wired by main, borrowed by everyone else. */
struct npsd_app {
	/* The config in force. SIGHUP replaces it whole; a replaced one is kept until exit, so
	 * whoever loaded the pointer may go on using it. Load it once per request. */
	_Atomic(const struct npsd_config *) cfg;
	struct npsd_db *db;
	struct auth *auth;
	struct ratelimit *ratelimit; /* NULL when server.rate_limit is 0 */
	struct offload *offload;     /* the reports lanes; NULL: slow reads run where they are asked */
	volatile int shutting_down;
};

static inline const struct npsd_config *app_config(struct npsd_app *app)
{
	return atomic_load(&app->cfg);
}

/* The full route table of the v1 API, ending with a zeroed entry. */
extern const struct route api_routes[];

#endif
