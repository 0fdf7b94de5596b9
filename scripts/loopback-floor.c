/*
 * loopback-floor: what one datagram through the kernel costs this machine, with nothing else
 * in the way. Two UDP sockets on 127.0.0.1, connected to each other; one thread sends a
 * 172-byte datagram (an RTP packet of 20 ms PCMU) on the first and receives it on the second,
 * COUNT times. The send runs the receiver's side of the stack too (loopback delivers in the
 * sender's softirq), so one send plus one recv is the kernel's whole share of relaying one
 * packet, on warm caches, with no wake-up.
 *
 * Prints the median of ROUNDS rounds of the CPU time (user + system, getrusage) per send plus
 * recv in µs. ../shared/notes/media-performance.md measured about 1.0 µs on the machine the
 * media goals were set on. scripts/bench-floor.sh runs it before the relays.
 *
 * usage: loopback-floor [COUNT [ROUNDS]]    (defaults 1000000 and 5)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static int bound(struct sockaddr_in *a)
{
	socklen_t len = sizeof *a;
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0)
		return -1;
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)a, sizeof *a) < 0 || getsockname(s, (struct sockaddr *)a, &len) < 0) {
		close(s);
		return -1;
	}
	return s;
}

static double cpu_seconds(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : 1000000;
	int rounds = argc > 2 ? atoi(argv[2]) : 5;
	if (count < 1 || rounds < 1 || rounds > 100) {
		fprintf(stderr, "usage: loopback-floor [COUNT [ROUNDS]]\n");
		return 2;
	}
	struct sockaddr_in a, b;
	int sa = bound(&a), sb = bound(&b);
	if (sa < 0 || sb < 0 || connect(sa, (struct sockaddr *)&b, sizeof b) < 0 ||
	    connect(sb, (struct sockaddr *)&a, sizeof a) < 0) {
		perror("loopback-floor: sockets");
		return 1;
	}
	char pkt[172], buf[2048];
	memset(pkt, 0xff, sizeof pkt);
	pkt[0] = (char)0x80;
	double us[100];
	for (int r = 0; r < rounds; r++) {
		double t0 = cpu_seconds();
		for (long i = 0; i < count; i++) {
			if (send(sa, pkt, sizeof pkt, 0) != (ssize_t)sizeof pkt ||
			    recv(sb, buf, sizeof buf, MSG_DONTWAIT) != (ssize_t)sizeof pkt) {
				perror("loopback-floor: send/recv");
				return 1;
			}
		}
		us[r] = (cpu_seconds() - t0) / count * 1e6;
	}
	qsort(us, rounds, sizeof us[0], cmp);
	printf("%.2f µs of CPU per loopback send + recv (median of %d rounds of %ld; range %.2f-%.2f)\n",
	       us[rounds / 2], rounds, count, us[0], us[rounds - 1]);
	return 0;
}
