/*
 * Fuzz target: the small text parsers that read what clients and operators type: RFC 3339
 * times, callbacks cursors, durations, sizes, opening hours and holiday lists, and the
 * field checks (phone, e-mail, language, touchpoint, names, UTF-8). Each must accept or
 * refuse, never crash or read past the string; what it accepts must round-trip where
 * there is a printer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "npsd/config.h"
#include "npsd/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	int64_t seconds;
	if (time_parse_rfc3339(text, &seconds) == 0) {
		char printed[21];
		int64_t again;
		if (time_parse_rfc3339(time_format_rfc3339(seconds, printed), &again) != 0 ||
		    again != seconds)
			abort();
	}
	struct callback_cursor cursor;
	(void)parse_callback_cursor(text, &cursor);
	(void)config_parse_duration(text, &seconds);
	size_t bytes;
	(void)config_parse_size(text, &bytes);
	int64_t steps[16];
	size_t n;
	(void)config_parse_durations(text, steps, 16, &n);
	struct civil_date dates[32];
	(void)config_parse_dates(text, dates, 32, &n);
	struct opening_hours hours;
	(void)config_parse_hours(text, &hours);
	(void)valid_e164(text);
	(void)valid_email(text);
	(void)valid_language(text);
	(void)valid_token_name(text);
	(void)valid_name(text, 128);
	(void)valid_area(text);

	/* utf8_length takes valid UTF-8 only: what utf8_scrub leaves. */
	utf8_scrub(text, size);
	(void)utf8_length(text);
	free(text);
	return 0;
}
