#include "npsd/api.h"

#include "npsd/ui_assets.h"

/*
 * The web console: one page, its script and style and the worker that times a lease's
 * renewals, served without a token (they hold no data); the script calls the API with the
 * token its user signs in with. The headers keep the page from running anything but its
 * own scripts, being framed, or leaking the URL of a callback in a Referer. worker-src is
 * named so that the worker does not hang on a browser's order of fallbacks (one that knows
 * only CSP 2 looks at child-src, then default-src, and blocks it: the console then times
 * the renewals on the page itself).
 */

static const char *const asset_headers[] = {
	"Content-Security-Policy",
	"default-src 'none'; script-src 'self'; worker-src 'self'; style-src 'self'; connect-src 'self'; "
	"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options",
	"nosniff",
	"X-Frame-Options",
	"DENY",
	"Referrer-Policy",
	"no-referrer",
	/* A new npsd may bring a new console: the browser asks again rather than keep an old one. */
	"Cache-Control",
	"no-cache",
	NULL,
};

/* Relative, so that it holds behind a proxy that serves npsd under a prefix. */
static const char *const redirect_headers[] = { "Location", "ui/", NULL };

void api_ui_redirect(struct http_request *req)
{
	http_reply_asset(req, 308, "text/plain; charset=utf-8", "ui/\n", 4, redirect_headers);
}

static void reply_asset(struct http_request *req, const struct ui_asset *asset, const char *type)
{
	http_reply_asset(req, 200, type, asset->body, asset->len, asset_headers);
}

void api_ui_page(struct http_request *req)
{
	reply_asset(req, &ui_assets.index_html, "text/html; charset=utf-8");
}

void api_ui_script(struct http_request *req)
{
	reply_asset(req, &ui_assets.app_js, "text/javascript; charset=utf-8");
}

void api_ui_style(struct http_request *req)
{
	reply_asset(req, &ui_assets.app_css, "text/css; charset=utf-8");
}

void api_ui_lease_timer(struct http_request *req)
{
	reply_asset(req, &ui_assets.lease_timer_js, "text/javascript; charset=utf-8");
}
