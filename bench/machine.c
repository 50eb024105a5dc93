/* machine: what the bench machine charges for the three things every durable answer needs.
 *
 * npsd's single-answer throughput is set less by its own code than by what the machine
 * charges for a system call, for waking a sleeping thread and for an fdatasync; on a
 * virtual machine these are many times the bare-metal figures. bench/run.sh prints them
 * with every run, so that figures taken on different machines can be told apart.
 *
 * usage: machine DIR     (DIR: a directory on the disk the database goes to)
 * Prints one line: MACHINE syscall_us=X wakeup_us=X fdatasync_4k_ms=X fdatasync_128k_ms=X
 *  - syscall_us: one getppid(), the cheapest system call (the mean of a million);
 *  - wakeup_us: one hand-off from a thread to another that sleeps in read() on a pipe,
 *    the time until it runs (half a ping-pong round trip, the mean of 50,000);
 *  - fdatasync_*_ms: the median of 200 overwrites of 4 KiB or 128 KiB at the start of a
 *    preallocated file, each followed by fdatasync() (how a commit reuses the WAL).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SYSCALLS 1000000
#define PING_PONGS 50000
#define SYNCS 200

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static double syscall_us(void)
{
	double t0 = now_us();
	for (int i = 0; i < SYSCALLS; i++)
		syscall(SYS_getppid);
	return (now_us() - t0) / SYSCALLS;
}

static int ping[2], pong[2];

static void *echo_main(void *arg)
{
	(void)arg;
	char c;
	for (int i = 0; i < PING_PONGS; i++)
		if (read(ping[0], &c, 1) != 1 || write(pong[1], &c, 1) != 1)
			break;
	return NULL;
}

static double wakeup_us(void)
{
	pthread_t echo;
	if (pipe(ping) || pipe(pong) || pthread_create(&echo, NULL, echo_main, NULL))
		return -1;
	char c = 'x';
	double t0 = now_us();
	for (int i = 0; i < PING_PONGS; i++)
		if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1)
			break;
	double t = (now_us() - t0) / PING_PONGS / 2;
	pthread_join(echo, NULL);
	return t;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The median fdatasync after overwriting len bytes of an allocated file, or -1. */
static double fdatasync_ms(const char *dir, size_t len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/machine-probe.tmp", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	unlink(path);
	char *buf = malloc(len);
	double *took = malloc(SYNCS * sizeof *took);
	double median = -1;
	if (!buf || !took)
		goto out;
	memset(buf, 'w', len);
	if (pwrite(fd, buf, len, 0) != (ssize_t)len || fsync(fd))
		goto out;
	for (int i = 0; i < SYNCS; i++) {
		buf[0] = (char)i;
		double t0 = now_us();
		if (pwrite(fd, buf, len, 0) != (ssize_t)len || fdatasync(fd))
			goto out;
		took[i] = (now_us() - t0) / 1e3;
	}
	qsort(took, SYNCS, sizeof *took, by_value);
	median = took[SYNCS / 2];
out:
	free(took);
	free(buf);
	close(fd);
	return median;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: machine DIR\n");
		return 2;
	}
	printf("MACHINE syscall_us=%.2f wakeup_us=%.1f fdatasync_4k_ms=%.2f fdatasync_128k_ms=%.2f\n",
	       syscall_us(), wakeup_us(), fdatasync_ms(argv[1], 4096), fdatasync_ms(argv[1], 128 * 1024));
	return 0;
}
