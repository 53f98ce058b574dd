// gen.c: the fastest load generator we could write in C for this machine:
// one thread, level-triggered epoll, no per-exchange allocation or clock
// reads. bench/compare runs it against the C server to find the ceiling
// that `tcpkit bench` must reach 90% of ("generator efficiency"), and as a
// stand-in generator (--generator c).
//
//   gen [-m pingpong|oneshot|idle] [-c N] [-d SECONDS] [-w SECONDS]
//       [-r REPLY_BYTES] [HOST:]PORT
//
//   pingpong  c connections; each sends "testing~", reads the 4-byte reply
//             ("test"), and sends again.
//   oneshot   c at once, each: connect, send "testing~", read to EOF, close,
//             start over. An exchange is a connection that got its reply
//             and the server's FIN.
//   idle      open c connections, one exchange on each, hold them for -d
//             seconds, close. Reports how many were held.
//
// Exchanges are counted after -w seconds of warmup, for -d seconds. One
// JSON line on stdout: mode, connections, duration_s, exchanges,
// rate_per_s, errors, window_start_unix_ns, window_end_unix_ns (and held
// for idle).
//
// Build: gcc -O2 -Wall -Wextra -o gen gen.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char msg[] = "testing~";
#define MSG_LEN (sizeof msg - 1)

enum mode { PINGPONG, ONESHOT, IDLE };
enum state { FREE, CONNECTING, WAITING };

struct slot {
	int fd;
	uint32_t got;   // reply bytes received for the current exchange
	uint8_t state;
	uint8_t done;   // idle: its exchange is complete
};

static struct slot *slots;
static int *retry;      // slots whose connection failed, to start again
static int nretry;
static int ep;
static struct sockaddr_in dst;
static uint32_t reply_len = 4;
static int counting, stopping;
static uint64_t exchanges, held;
static uint64_t err_connect, err_reset, err_short, err_other;

static void die(const char *what) {
	perror(what);
	exit(1);
}

static double now_mono(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long now_unix_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void add(int fd, uint32_t events, int i) {
	struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)i};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl add");
}

static void mod(int fd, uint32_t events, int i) {
	struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)i};
	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0)
		die("epoll_ctl mod");
}

// drop closes slot i. A failed connection is started again later, unless
// the run is ending.
static void drop(int i, int failed) {
	struct slot *s = &slots[i];
	close(s->fd);
	s->fd = -1;
	s->state = FREE;
	s->got = 0;
	if (failed && !stopping)
		retry[nretry++] = i;
}

static int send_msg(int fd) {
	for (;;) {
		ssize_t n = send(fd, msg, MSG_LEN, MSG_NOSIGNAL);
		if (n == (ssize_t)MSG_LEN)
			return 0;
		if (n >= 0) {
			errno = EIO; // 8 bytes into an empty socket buffer: never partial
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

// start opens slot i's connection without blocking and sends at once if
// the handshake is already done (it usually is on loopback).
static void start(int i) {
	struct slot *s = &slots[i];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err_other++;
		if (!stopping)
			retry[nretry++] = i;
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	s->fd = fd;
	s->got = 0;
	if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
		err_connect++;
		drop(i, 1);
		return;
	}
	if (send_msg(fd) == 0) {
		s->state = WAITING;
		add(fd, EPOLLIN, i);
	} else if (errno == EAGAIN || errno == ENOTCONN || errno == EWOULDBLOCK) {
		s->state = CONNECTING;
		add(fd, EPOLLOUT, i);
	} else {
		err_connect++;
		drop(i, 1);
	}
}

// connected sends the message once a pending connect completes.
static void connected(int i) {
	struct slot *s = &slots[i];
	if (send_msg(s->fd) == 0) {
		s->state = WAITING;
		mod(s->fd, EPOLLIN, i);
	} else if (errno != EAGAIN && errno != ENOTCONN && errno != EWOULDBLOCK) {
		err_connect++;
		drop(i, 1);
	}
}

// readable reads a reply. It returns 1 when the exchange is complete: the
// whole reply arrived (pingpong, idle) or the reply and then the FIN
// (oneshot).
static int readable(int i, enum mode m) {
	struct slot *s = &slots[i];
	char buf[4096];
	for (;;) {
		ssize_t n = read(s->fd, buf, sizeof buf);
		if (n > 0) {
			s->got += (uint32_t)n;
			if (m != ONESHOT)
				return s->got >= reply_len;
			continue; // oneshot: read on to EOF, usually already here
		}
		if (n == 0) { // the server's FIN
			if (m == ONESHOT && s->got >= reply_len)
				return 1;
			err_short++;
			drop(i, 1);
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno == ECONNRESET)
			err_reset++;
		else
			err_other++;
		drop(i, 1);
		return 0;
	}
}

// load runs pingpong or oneshot: warmup, then the counted window, then up
// to a second for the exchanges in flight to finish, so that nothing is
// left unread when the connections close.
static void load(int c, enum mode m, double warm, double dur, struct epoll_event *evs,
                 long long *ustart, long long *uend) {
	for (int i = 0; i < c; i++)
		start(i);
	double t0 = now_mono();
	double wstart = t0 + warm, wend = wstart + dur, drain_until = 0;
	for (;;) {
		int n = epoll_wait(ep, evs, c, nretry ? 1 : 10);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		double t = now_mono();
		if (!counting && !stopping && t >= wstart) {
			counting = 1;
			*ustart = now_unix_ns();
		}
		if (!stopping && t >= wend) {
			counting = 0;
			stopping = 1;
			*uend = now_unix_ns();
			drain_until = t + 1;
			nretry = 0;
		}
		for (int k = 0; k < n; k++) {
			int i = (int)evs[k].data.u32;
			struct slot *s = &slots[i];
			if (s->state == CONNECTING) {
				connected(i);
				continue;
			}
			if (s->state != WAITING || !readable(i, m))
				continue;
			if (counting)
				exchanges++;
			s->got = 0;
			if (stopping)
				drop(i, 0);
			else if (m == ONESHOT) {
				drop(i, 0);
				start(i);
			} else if (send_msg(s->fd) < 0) {
				err_other++;
				drop(i, 1);
			}
		}
		for (int k = nretry; k > 0; k--)
			start(retry[--nretry]);
		if (stopping) {
			int busy = 0;
			for (int i = 0; i < c && !busy; i++)
				busy = slots[i].state != FREE;
			if (!busy || t >= drain_until)
				return;
		}
	}
}

// idle opens c connections with one exchange each (so the server has
// served every one), for up to 30 s, then holds them for dur seconds.
static void idle(int c, double dur, struct epoll_event *evs, long long *ustart,
                 long long *uend) {
	for (int i = 0; i < c; i++)
		start(i);
	counting = 1;
	double deadline = now_mono() + 30, hold_end = 0;
	for (;;) {
		double t = now_mono();
		if (!hold_end && (held == (uint64_t)c || t >= deadline)) {
			hold_end = t + dur;
			nretry = 0;
			stopping = 1;
			*ustart = now_unix_ns();
		}
		if (hold_end && t >= hold_end)
			break;
		int n = epoll_wait(ep, evs, c, nretry ? 1 : 10);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int k = 0; k < n; k++) {
			int i = (int)evs[k].data.u32;
			struct slot *s = &slots[i];
			if (s->done) { // a held connection ended or broke
				s->done = 0;
				held--;
				err_other++;
				drop(i, 0);
				continue;
			}
			if (s->state == CONNECTING) {
				connected(i);
				continue;
			}
			if (s->state != WAITING || !readable(i, IDLE))
				continue;
			exchanges++;
			held++;
			s->done = 1;
			mod(s->fd, EPOLLRDHUP, i); // hold it; hear only of its end
		}
		for (int k = nretry; k > 0; k--)
			start(retry[--nretry]);
	}
	*uend = now_unix_ns();
}

static void usage(void) {
	fprintf(stderr, "usage: gen [-m pingpong|oneshot|idle] [-c N] [-d SECONDS] [-w SECONDS] [-r REPLY_BYTES] [HOST:]PORT\n");
	exit(2);
}

int main(int argc, char **argv) {
	enum mode m = PINGPONG;
	const char *mname = "pingpong";
	int c = 50;
	double dur = 3, warm = 1;
	int opt;
	while ((opt = getopt(argc, argv, "m:c:d:w:r:")) != -1) {
		switch (opt) {
		case 'm':
			mname = optarg;
			if (!strcmp(optarg, "pingpong"))
				m = PINGPONG;
			else if (!strcmp(optarg, "oneshot"))
				m = ONESHOT;
			else if (!strcmp(optarg, "idle"))
				m = IDLE;
			else
				usage();
			break;
		case 'c':
			c = atoi(optarg);
			break;
		case 'd':
			dur = atof(optarg);
			break;
		case 'w':
			warm = atof(optarg);
			break;
		case 'r':
			reply_len = (uint32_t)atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1 || c < 1 || dur <= 0 || warm < 0)
		usage();
	char host[64] = "127.0.0.1";
	const char *port = argv[optind];
	const char *colon = strrchr(argv[optind], ':');
	if (colon) {
		size_t hl = (size_t)(colon - argv[optind]);
		if (hl >= sizeof host)
			usage();
		memcpy(host, argv[optind], hl);
		host[hl] = 0;
		port = colon + 1;
	}
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)atoi(port));
	if (inet_pton(AF_INET, host, &dst.sin_addr) != 1)
		usage();
	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	slots = calloc((size_t)c, sizeof *slots);
	retry = calloc((size_t)c, sizeof *retry);
	struct epoll_event *evs = calloc((size_t)c, sizeof *evs);
	if (!slots || !retry || !evs)
		die("calloc");
	for (int i = 0; i < c; i++)
		slots[i].fd = -1;
	long long ustart = 0, uend = 0;
	if (m == IDLE)
		idle(c, dur, evs, &ustart, &uend);
	else
		load(c, m, warm, dur, evs, &ustart, &uend);
	for (int i = 0; i < c; i++)
		if (slots[i].fd >= 0)
			close(slots[i].fd);

	double secs = (double)(uend - ustart) / 1e9;
	printf("{\"generator\":\"c\",\"mode\":\"%s\",\"connections\":%d,\"duration_s\":%.6f,"
	       "\"exchanges\":%llu,\"rate_per_s\":%.1f,",
	       mname, c, secs, (unsigned long long)exchanges,
	       secs > 0 ? (double)exchanges / secs : 0.0);
	if (m == IDLE)
		printf("\"held\":%llu,", (unsigned long long)held);
	printf("\"errors\":{\"connect\":%llu,\"reset\":%llu,\"short\":%llu,\"other\":%llu},"
	       "\"window_start_unix_ns\":%lld,\"window_end_unix_ns\":%lld}\n",
	       (unsigned long long)err_connect, (unsigned long long)err_reset,
	       (unsigned long long)err_short, (unsigned long long)err_other, ustart, uend);
	return 0;
}
