/*
 * bare-relay: the floor that `make bench-media` compares the switch with (BASELINE=1). It
 * relays UDP between pairs of sockets and does nothing else: no SIP, no RTP parsing, no
 * statistics, no recording. Pair i is the ports FIRST+4i (the trunk's side) and FIRST+4i+2
 * (the line's side) on ADDR; trackline-mediaload -relay ADDR:FIRST sends there.
 *
 * It is built like the switch's packet path, so that the difference is what the switch does
 * per packet: one level-triggered epoll set over non-blocking sockets on one thread, one
 * recvfrom per ready socket, and a socket connect()ed to the first source it hears (the
 * latch), so the other side of the pair sends with a plain send and no route lookup.
 *
 * WAIT_US, when given, is a batch wait like the switch's media.batch_wait: after a batch of
 * fewer than 32 packets the loop sleeps out the rest of WAIT_US before it reads again.
 * scripts/bench-floor.sh compares it with scripts/bare-relay-uring.c.
 *
 * usage: bare-relay ADDR FIRST CALLS [WAIT_US]    (runs until SIGTERM or SIGINT)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bare-relay.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

struct side {
	int fd;
	int latched;
};

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: bare-relay ADDR FIRST CALLS [WAIT_US]\n");
		return 2;
	}
	long wait_us = argc == 5 ? strtol(argv[4], NULL, 10) : 0;
	struct in_addr addr;
	if (inet_pton(AF_INET, argv[1], &addr) != 1) {
		fprintf(stderr, "bare-relay: %s: not an IPv4 address\n", argv[1]);
		return 2;
	}
	long first = strtol(argv[2], NULL, 10), calls = strtol(argv[3], NULL, 10);
	if (first < 1024 || calls < 1 || first + 4 * calls > 65535 || wait_us < 0 || wait_us > 20000) {
		fprintf(stderr, "bare-relay: FIRST %ld and CALLS %ld do not fit in the port space, or WAIT_US %ld is not 0-20000\n",
			first, calls, wait_us);
		return 2;
	}
	int n = (int)(2 * calls);
	struct side *sides = calloc((size_t)n, sizeof *sides);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (!sides || ep < 0) {
		perror("bare-relay: setup");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = addr,
					 .sin_port = htons((uint16_t)(first + 2 * i))};
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			fprintf(stderr, "bare-relay: bind %s:%ld: %s\n", argv[1], first + 2L * i, strerror(errno));
			return 1;
		}
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			perror("bare-relay: epoll_ctl");
			return 1;
		}
		sides[i].fd = fd;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("ready %s:%ld %ld\n", argv[1], first, calls);
	fflush(stdout);

	struct epoll_event events[256];
	char buf[2048];
	unsigned long long relayed = 0, dropped = 0;
	while (!stop) {
		int k = epoll_wait(ep, events, 256, 1000);
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int j = 0; j < k; j++) {
			int i = (int)events[j].data.u32;
			struct side *s = &sides[i], *peer = &sides[i ^ 1];
			struct sockaddr_in from;
			socklen_t fl = sizeof from;
			ssize_t len = recvfrom(s->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
			if (len < 0)
				continue;
			if (!s->latched) {
				if (connect(s->fd, (struct sockaddr *)&from, fl) == 0)
					s->latched = 1;
			}
			if (!peer->latched || send(peer->fd, buf, (size_t)len, 0) < 0) {
				dropped++;
				continue;
			}
			relayed++;
		}
		if (k > 0 && k < SMALL_BATCH)
			batch_wait(&t0, wait_us);
	}
	printf("relayed %llu dropped %llu\n", relayed, dropped);
	return 0;
}
