#ifndef NPSD_API_H
#define NPSD_API_H

#include "npsd/http.h"

/* The handlers behind api_routes[] (api.c), one file per resource. */
void api_healthz(struct http_request *req);
void api_readyz(struct http_request *req);

void api_surveys_post(struct http_request *req);
void api_surveys_list(struct http_request *req);
void api_surveys_get(struct http_request *req);

#endif
