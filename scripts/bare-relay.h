/* What scripts/bare-relay.c and scripts/bare-relay-uring.c share: the batch wait. */
#include <time.h>

/* A batch smaller than this makes the loop sleep out its batch wait (the switch's smallBatch). */
#define SMALL_BATCH 32

/* batch_wait sleeps until wait_us after t0, if 50 µs or more remain (the switch's minPause). */
static void batch_wait(const struct timespec *t0, long wait_us)
{
	if (wait_us <= 0)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long elapsed = (now.tv_sec - t0->tv_sec) * 1000000L + (now.tv_nsec - t0->tv_nsec) / 1000;
	long left = wait_us - elapsed;
	if (left < 50)
		return;
	struct timespec d = {.tv_sec = left / 1000000, .tv_nsec = (left % 1000000) * 1000};
	clock_nanosleep(CLOCK_MONOTONIC, 0, &d, NULL);
}
