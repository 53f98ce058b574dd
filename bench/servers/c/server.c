// server.c: the minimal C epoll server, the per-core ceiling that
// bench/compare measures the other servers against.
//
//   server PORT [reply|keep-open]
//
// Single-threaded, nonblocking, level-triggered epoll on 127.0.0.1:PORT
// (PORT 0 picks a free one). It prints "listen on port N" once and nothing
// per connection or message.
//
//   reply      the seed: on the first data, write "test", then
//              shutdown(SHUT_WR) (a FIN), keep reading and dropping whatever
//              else arrives until the peer's FIN, then close. Nothing is left
//              unread at close, so the kernel never sends a RST.
//   keep-open  write "test" for every read, close at the peer's FIN.
//
// Correct for what the others must handle too: EAGAIN, EINTR, accept4 until
// EAGAIN, partial writes (the rest is queued and sent on EPOLLOUT).
//
// Build: gcc -O2 -Wall -Wextra -o server server.c
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char reply[] = "test";
#define REPLY_LEN (sizeof reply - 1)

struct conn {
	char *out;      // bytes accepted by us but not yet by the kernel
	uint32_t olen;  // bytes in out
	uint32_t ocap;  // capacity of out
	uint8_t open;   // fd is a connection we track
	uint8_t replied; // reply mode: the one reply is queued or sent
	uint8_t shut;   // reply mode: our FIN is sent
	uint8_t pollout; // EPOLLOUT is in the interest set
};

static struct conn *conns;
static size_t nconns;
static int ep;
static int keep_open;

static void die(const char *what) {
	perror(what);
	exit(1);
}

static struct conn *conn_for(int fd) {
	if ((size_t)fd >= nconns) {
		size_t n = nconns ? nconns : 1024;
		while (n <= (size_t)fd)
			n *= 2;
		struct conn *c = realloc(conns, n * sizeof *c);
		if (!c)
			die("realloc");
		memset(c + nconns, 0, (n - nconns) * sizeof *c);
		conns = c;
		nconns = n;
	}
	return &conns[fd];
}

static void conn_close(int fd) {
	struct conn *c = &conns[fd];
	free(c->out);
	memset(c, 0, sizeof *c);
	close(fd); // also removes fd from the epoll set
}

static int set_pollout(int fd, struct conn *c, int on) {
	if (c->pollout == on)
		return 0;
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = fd};
	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -1;
	c->pollout = (uint8_t)on;
	return 0;
}

// flush sends what is queued. It returns -1 when the connection broke.
static int flush(int fd, struct conn *c) {
	uint32_t off = 0;
	while (off < c->olen) {
		ssize_t n = send(fd, c->out + off, c->olen - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		off += (uint32_t)n;
	}
	memmove(c->out, c->out + off, c->olen - off);
	c->olen -= off;
	return set_pollout(fd, c, c->olen > 0);
}

// queue writes p, or queues what the kernel does not take. -1: broken.
static int queue(int fd, struct conn *c, const char *p, uint32_t len) {
	if (c->olen == 0) {
		for (;;) {
			ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
			if (n >= 0) {
				p += n;
				len -= (uint32_t)n;
				if (len == 0)
					return 0;
				continue;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
	}
	if (c->olen + len > c->ocap) {
		uint32_t ncap = c->ocap ? c->ocap : 64;
		while (ncap < c->olen + len)
			ncap *= 2;
		char *o = realloc(c->out, ncap);
		if (!o)
			return -1;
		c->out = o;
		c->ocap = ncap;
	}
	memcpy(c->out + c->olen, p, len);
	c->olen += len;
	return set_pollout(fd, c, 1);
}

// end sends our FIN once everything queued has gone out.
static int end(int fd, struct conn *c) {
	if (c->shut || c->olen > 0)
		return 0;
	c->shut = 1;
	if (shutdown(fd, SHUT_WR) < 0 && errno != ENOTCONN)
		return -1;
	return 0;
}

static void on_readable(int fd, struct conn *c) {
	static char buf[65536];
	ssize_t n;
	do
		n = read(fd, buf, sizeof buf);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		conn_close(fd); // a reset or another error
		return;
	}
	if (n == 0) { // the peer's FIN: nothing more will come
		conn_close(fd);
		return;
	}
	if (keep_open) {
		if (queue(fd, c, reply, REPLY_LEN) < 0)
			conn_close(fd);
		return;
	}
	if (c->replied)
		return; // after the reply: drained and dropped, until the FIN
	c->replied = 1;
	if (queue(fd, c, reply, REPLY_LEN) < 0 || end(fd, c) < 0)
		conn_close(fd);
}

static void on_writable(int fd, struct conn *c) {
	if (flush(fd, c) < 0 || (!keep_open && c->replied && end(fd, c) < 0))
		conn_close(fd);
}

static void accept_all(int lfd) {
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EMFILE || errno == ENFILE) {
				// Out of descriptors: leave the rest in the backlog; they
				// are accepted when a connection closes.
				static int said;
				if (!said++)
					fprintf(stderr, "server: accept: %s\n", strerror(errno));
				return;
			}
			die("accept4");
		}
		struct conn *c = conn_for(fd);
		memset(c, 0, sizeof *c);
		c->open = 1;
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			conn_close(fd);
	}
}

int main(int argc, char **argv) {
	if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "reply") != 0 &&
	                             strcmp(argv[2], "keep-open") != 0)) {
		fprintf(stderr, "usage: server PORT [reply|keep-open]\n");
		return 2;
	}
	char *endp;
	long port = strtol(argv[1], &endp, 10);
	if (*endp || port < 0 || port > 65535) {
		fprintf(stderr, "server: bad port %s\n", argv[1]);
		return 2;
	}
	keep_open = argc == 3 && strcmp(argv[2], "keep-open") == 0;
	signal(SIGPIPE, SIG_IGN);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket");
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	// Accepted sockets inherit TCP_NODELAY from the listener on Linux, as
	// Go's net and gnet set it on each connection.
	setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("bind");
	if (listen(lfd, SOMAXCONN) < 0)
		die("listen");
	socklen_t salen = sizeof sa;
	if (getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0)
		die("getsockname");
	printf("listen on port %d\n", ntohs(sa.sin_port));
	fflush(stdout);

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1");
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		die("epoll_ctl");

	static struct epoll_event evs[1024];
	for (;;) {
		int n = epoll_wait(ep, evs, 1024, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			uint32_t e = evs[i].events;
			if (fd == lfd) {
				accept_all(lfd);
				continue;
			}
			struct conn *c = &conns[fd];
			if (!c->open)
				continue; // closed earlier in this batch
			if (e & EPOLLOUT)
				on_writable(fd, c);
			if (c->open && (e & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				on_readable(fd, c);
		}
	}
}
