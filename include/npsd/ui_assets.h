#ifndef NPSD_UI_ASSETS_H
#define NPSD_UI_ASSETS_H
#include <stddef.h>

/* The web console's files (src/ui/), compiled in by src/ui/embed.sh. */
struct ui_asset {
	const void *body;
	size_t len;
};
struct ui_assets {
	struct ui_asset index_html, app_js, app_css, lease_timer_js;
};
extern const struct ui_assets ui_assets;

#endif
