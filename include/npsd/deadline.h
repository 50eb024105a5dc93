/* Connections that must have received their request by a deadline.
 *
 * An idle timeout does not bound a client that sends a byte now and then: its request never
 * ends, and it holds the connection (and its memory) for as long as it likes. Here a thread
 * looks at every watched connection once a second and shuts down (shutdown(2), not close)
 * the socket of each one past its deadline, so its owner sees the peer gone and closes it
 * the usual way. Knows sockets and time, nothing of HTTP.
 *
 * Thread-safe. The owner removes a connection before it closes its descriptor: a shutdown
 * then never reaches a descriptor number that has been reused. */
#ifndef NPSD_DEADLINE_H
#define NPSD_DEADLINE_H

#include <stdint.h>

struct deadlines;
struct deadline_watch;

/* Starts the thread. 0, or -errno with *ret untouched. */
int deadlines_start(struct deadlines **ret);
/* Stops the thread and frees what is still watched; NULL and *d == NULL are no-ops. */
void deadlines_stop(struct deadlines **d);

/* Watches fd, to be cut at deadline_ms (CLOCK_MONOTONIC, clock_mono_ms(); 0 = not now).
 * The watch belongs to d until deadlines_remove. NULL when out of memory: fd is then not
 * watched. */
struct deadline_watch *deadlines_add(struct deadlines *d, int fd, int64_t deadline_ms);
/* Stops watching and frees w; NULL is a no-op. */
void deadlines_remove(struct deadlines *d, struct deadline_watch *w);
/* Moves w's deadline (0 = none); any thread. NULL is a no-op. */
void deadline_set(struct deadline_watch *w, int64_t deadline_ms);
/* Moves w's deadline to deadline_ms when that is sooner; none (0: not watched now, or just
 * cut) stays none. Any thread; NULL is a no-op. */
void deadline_sooner(struct deadline_watch *w, int64_t deadline_ms);

/* How many connections have been cut. */
uint64_t deadlines_cut(struct deadlines *d);

#endif
