/*
 * bare-relay-uring: scripts/bare-relay.c on io_uring instead of epoll, to measure what that
 * I/O design would save on this machine (scripts/bench-floor.sh). Same ports, same latch
 * (a side connect()s to the first source it hears), same optional batch wait; no SIP, no RTP
 * parsing, no recording.
 *
 * Each socket has one multishot recvmsg (Linux 6.0+) that takes its buffers from one ring of
 * provided buffers, so a datagram costs no system call to receive. Each relayed datagram is
 * an IORING_OP_SEND on the other side's socket, straight from the buffer it arrived in; the
 * buffer goes back to the ring when the send completes. All sends of a batch go in one
 * io_uring_enter, which also collects the next batch (DEFER_TASKRUN: the kernel does the
 * receives' work in that call, on this thread).
 *
 * Needs liburing (Debian: apt-get install liburing-dev); build: cc -O2 ... -luring.
 * usage: bare-relay-uring ADDR FIRST CALLS [WAIT_US]    (runs until SIGTERM or SIGINT)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bare-relay.h"

#define NBUF 8192 /* provided buffers: more than the datagrams in flight at 1,000 calls */
#define BUFSZ 512 /* recvmsg header, source address and an RTP packet */
#define BGID 1
#define SEND_TAG (1ULL << 62) /* user_data of a send: the tag and the buffer id */

static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

struct side {
	int fd;
	int latched;
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static int mask;
static struct msghdr rmsg; /* what multishot recvmsg lays out in each buffer: the source address */

static struct io_uring_sqe *sqe(void)
{
	struct io_uring_sqe *s = io_uring_get_sqe(&ring);
	if (!s) { /* the submission queue is full: submit what it holds */
		io_uring_submit(&ring);
		s = io_uring_get_sqe(&ring);
	}
	return s;
}

/* arm starts (or restarts) side i's multishot receive. */
static void arm(int fd, int i)
{
	struct io_uring_sqe *s = sqe();
	io_uring_prep_recvmsg_multishot(s, fd, &rmsg, 0);
	s->flags |= IOSQE_BUFFER_SELECT;
	s->buf_group = BGID;
	io_uring_sqe_set_data64(s, (uint64_t)i);
}

/* give returns buffer bid to the ring. */
static void give(int bid)
{
	io_uring_buf_ring_add(br, bufs + (size_t)bid * BUFSZ, BUFSZ, (unsigned short)bid, mask, 0);
	io_uring_buf_ring_advance(br, 1);
}

static unsigned long long relayed, dropped;

/* handle relays the datagrams that the completion queue holds and returns how many it got. */
static unsigned handle(struct side *sides)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0, received = 0;
	io_uring_for_each_cqe(&ring, head, cqe) {
		seen++;
		uint64_t ud = cqe->user_data;
		if (ud & SEND_TAG) {
			give((int)(ud & 0xffff));
			if (cqe->res < 0)
				dropped++;
			else
				relayed++;
			continue;
		}
		int i = (int)ud;
		if (!(cqe->flags & IORING_CQE_F_MORE)) /* the multishot receive ended: restart it */
			arm(sides[i].fd, i);
		if (cqe->res < 0 || !(cqe->flags & IORING_CQE_F_BUFFER))
			continue;
		received++;
		int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(bufs + (size_t)bid * BUFSZ, cqe->res, &rmsg);
		struct side *s = &sides[i], *peer = &sides[i ^ 1];
		if (o && !s->latched && connect(s->fd, io_uring_recvmsg_name(o), o->namelen) == 0)
			s->latched = 1;
		if (!o || !peer->latched) {
			give(bid);
			dropped++;
			continue;
		}
		struct io_uring_sqe *sq = sqe();
		io_uring_prep_send(sq, peer->fd, io_uring_recvmsg_payload(o, &rmsg),
				   io_uring_recvmsg_payload_length(o, cqe->res, &rmsg), 0);
		io_uring_sqe_set_data64(sq, SEND_TAG | (uint64_t)bid);
	}
	io_uring_cq_advance(&ring, seen);
	return received;
}

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: bare-relay-uring ADDR FIRST CALLS [WAIT_US]\n");
		return 2;
	}
	struct in_addr addr;
	if (inet_pton(AF_INET, argv[1], &addr) != 1) {
		fprintf(stderr, "bare-relay-uring: %s: not an IPv4 address\n", argv[1]);
		return 2;
	}
	long first = strtol(argv[2], NULL, 10), calls = strtol(argv[3], NULL, 10);
	long wait_us = argc == 5 ? strtol(argv[4], NULL, 10) : 0;
	if (first < 1024 || calls < 1 || first + 4 * calls > 65535 || wait_us < 0 || wait_us > 20000) {
		fprintf(stderr, "bare-relay-uring: FIRST %ld and CALLS %ld do not fit in the port space, or WAIT_US %ld is not 0-20000\n",
			first, calls, wait_us);
		return 2;
	}
	int n = (int)(2 * calls);
	struct side *sides = calloc((size_t)n, sizeof *sides);
	bufs = malloc((size_t)NBUF * BUFSZ);
	if (!sides || !bufs) {
		perror("bare-relay-uring: setup");
		return 1;
	}

	struct io_uring_params p = {0};
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
	p.cq_entries = 4 * NBUF;
	int rc = io_uring_queue_init_params(4096, &ring, &p);
	if (rc < 0) {
		fprintf(stderr, "bare-relay-uring: io_uring_setup: %s\n", strerror(-rc));
		return 1;
	}
	br = mmap(NULL, NBUF * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (br == MAP_FAILED) {
		perror("bare-relay-uring: mmap");
		return 1;
	}
	struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)br, .ring_entries = NBUF, .bgid = BGID};
	if ((rc = io_uring_register_buf_ring(&ring, &reg, 0)) < 0) {
		fprintf(stderr, "bare-relay-uring: register buffer ring: %s\n", strerror(-rc));
		return 1;
	}
	io_uring_buf_ring_init(br);
	mask = io_uring_buf_ring_mask(NBUF);
	for (int b = 0; b < NBUF; b++)
		io_uring_buf_ring_add(br, bufs + (size_t)b * BUFSZ, BUFSZ, (unsigned short)b, mask, b);
	io_uring_buf_ring_advance(br, NBUF);
	rmsg.msg_namelen = sizeof(struct sockaddr_in);

	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = addr,
					 .sin_port = htons((uint16_t)(first + 2 * i))};
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			fprintf(stderr, "bare-relay-uring: bind %s:%ld: %s\n", argv[1], first + 2L * i, strerror(errno));
			return 1;
		}
		sides[i].fd = fd;
		arm(fd, i);
	}
	io_uring_submit(&ring);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("ready %s:%ld %ld\n", argv[1], first, calls);
	fflush(stdout);

	while (!stop) {
		/* Submit the last batch's sends and wait for something to do. Then let the kernel
		 * finish the ready receives, and handle them, until none are left: the kernel runs
		 * a bounded number of them per call, and a batch cut short would look small and
		 * send the loop to sleep on the rest. */
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -ETIME) {
			fprintf(stderr, "bare-relay-uring: io_uring_enter: %s\n", strerror(-rc));
			return 1;
		}
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		unsigned total = 0, received;
		do {
			io_uring_submit_and_get_events(&ring);
			received = handle(sides);
			total += received;
		} while (received > 0);
		if (total > 0 && total < SMALL_BATCH) {
			io_uring_submit(&ring); /* send this batch before sleeping */
			batch_wait(&t0, wait_us);
		}
	}
	printf("relayed %llu dropped %llu\n", relayed, dropped);
	return 0;
}
