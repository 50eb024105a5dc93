#include "npsd/api.h"

#include <errno.h>

#include "npsd/app.h"

/* Who may do what: SPEC's roles per resource. admin passes every check in http.c. */
const struct route api_routes[] = {
	{ HTTP_GET, "/healthz", 0, BODY_NONE, api_healthz },
	{ HTTP_GET, "/readyz", 0, BODY_NONE, api_readyz },
	{ HTTP_POST, "/v1/surveys", ROLE_INGEST, BODY_REQUIRED, api_surveys_post },
	{ HTTP_GET, "/v1/surveys", ROLE_MANAGER, BODY_NONE, api_surveys_list },
	{ HTTP_GET, "/v1/surveys/:id", ROLE_MANAGER, BODY_NONE, api_surveys_get },
	{ 0, NULL, 0, BODY_NONE, NULL },
};

void api_healthz(struct http_request *req)
{
	http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static int probe_write(struct db_conn *conn, void *arg)
{
	(void)conn;
	(void)arg;
	return 0;
}

/* Ready means a write transaction can begin and commit now: the writer is alive and the
 * file is writable. A probe with no changes costs no fsync. */
void api_readyz(struct http_request *req)
{
	struct npsd_app *app = http_app(req);
	if (app->shutting_down) {
		http_reply_storage_error(req, -ESHUTDOWN);
		return;
	}
	int r = db_write_sync(app->db, probe_write, NULL);
	if (r < 0) {
		http_reply_storage_error(req, r);
		return;
	}
	http_reply_json(req, 200, json_pack("{s:s}", "status", "ready"));
}
