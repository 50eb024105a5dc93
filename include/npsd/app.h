#ifndef NPSD_APP_H
#define NPSD_APP_H

#include "npsd/auth.h"
#include "npsd/config.h"
#include "npsd/db.h"
#include "npsd/http.h"

/* What every handler may reach: wired by main, borrowed by everyone else. */
struct npsd_app {
	const struct npsd_config *cfg;
	struct npsd_db *db;
	struct auth *auth;
	volatile int shutting_down;
};

/* The full route table of the v1 API, ending with a zeroed entry. */
extern const struct route api_routes[];

#endif
