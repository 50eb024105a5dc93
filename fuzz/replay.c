/*
 * Runs a fuzz target over saved inputs, without libFuzzer: `make check` replays every file
 * under fuzz/corpus/TARGET/ (the seeds and whatever crashes were found and fixed), built
 * like the other tests (and under SANITIZE=1 with ASan and UBSan), so that a fixed crash
 * stays fixed. Arguments: files, or directories whose files are all read.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs are kept small (libFuzzer's default -max_len is 4096): a bigger file is an error. */
#define REPLAY_MAX (1u << 20)

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	uint8_t *data = malloc(REPLAY_MAX);
	size_t size = data ? fread(data, 1, REPLAY_MAX, f) : 0;
	int bad = !data || ferror(f) || !feof(f);
	fclose(f);
	if (bad) {
		fprintf(stderr, "%s: cannot read it whole (at most %u bytes)\n", path, REPLAY_MAX);
		free(data);
		return -1;
	}
	LLVMFuzzerTestOneInput(data, size);
	free(data);
	return 0;
}

static int replay(const char *path, unsigned *count)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		perror(path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(*count)++;
		return replay_file(path);
	}
	struct dirent **names;
	int n = scandir(path, &names, NULL, alphasort);
	if (n < 0) {
		perror(path);
		return -1;
	}
	int r = 0;
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.' && r == 0) {
			size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
			char *child = malloc(len);
			if (!child)
				r = -1;
			else {
				snprintf(child, len, "%s/%s", path, names[i]->d_name);
				r = replay(child, count);
				free(child);
			}
		}
		free(names[i]);
	}
	free(names);
	return r;
}

int main(int argc, char **argv)
{
	unsigned count = 0;
	for (int i = 1; i < argc; i++) {
		if (replay(argv[i], &count) != 0)
			return 1;
	}
	printf("%s: %u inputs replayed, none crashed\n", argv[0], count);
	return count ? 0 : 1;
}
