#ifndef NPSD_APP_H
#define NPSD_APP_H

#include "npsd/auth.h"
#include "npsd/config.h"
#include "npsd/db.h"
#include "npsd/http.h"
#include "npsd/ratelimit.h"

/* What every handler may reach: wired by main, borrowed by everyone else. */
struct npsd_app {
	const struct npsd_config *cfg;
	struct npsd_db *db;
	struct auth *auth;
	struct ratelimit *ratelimit; /* NULL when server.rate_limit is 0 */
	volatile int shutting_down;
};

/* The full route table of the v1 API, ending with a zeroed entry. */
extern const struct route api_routes[];

#endif
