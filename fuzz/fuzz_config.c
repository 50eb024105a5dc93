/*
 * Fuzz target: the INI configuration (npsd.conf(5)) as an operator may write it, read the
 * way npsd and npsctl read it. A bad file must give one message naming the file, and a
 * good one a config that frees cleanly; nothing may crash or leak either way.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "npsd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* config_load reads a path: an anonymous file in memory, no disk, nothing left over. */
	int fd = memfd_create("npsd.conf", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	struct npsd_config cfg = { 0 }; /* config_defaults frees what a field held */
	config_defaults(&cfg);
	char *error = NULL;
	int r = config_load_flags(&cfg, path, CONFIG_NO_FILES, &error);
	if ((r == 0) != (error == NULL))
		abort();
	free(error);
	config_free(&cfg);
	close(fd);
	return 0;
}
