/*
 * A packet delay line between two TUN devices, for the benchmark's shaped links (TESTING.md, "Shaping the
 * link": this kernel has no netem, so latency must come from userspace).
 *
 *   delayline A_NAME B_NAME NETNS_PATH RATE_BITS_PER_S ONE_WAY_DELAY_US [QUEUE_PACKETS]
 *
 * Creates TUN device A_NAME in the caller's network namespace and B_NAME inside NETNS_PATH (e.g.
 * /run/netns/NAME), prints "ready" on stdout, then forwards every IP packet read from one device to the
 * other. Each direction behaves like a router port feeding a link: packets leave in order, paced to
 * RATE (a packet of L bytes occupies the link for L*8/RATE seconds after the previous one left), and
 * arrive ONE_WAY_DELAY later; a packet that finds QUEUE_PACKETS already waiting is dropped (tail drop,
 * as netem's default limit of 1000). Times come from a virtual clock set at enqueue, so a late wake-up
 * releases a short burst but never changes the average rate or adds delay to later packets.
 *
 * The devices are not persistent: they vanish when this process exits (SIGTERM, SIGINT, or a crash), so
 * nothing is left behind. Node cannot ioctl(TUNSETIFF), hence C; built by bench/link.ts with `cc -O2`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_PACKET 65536

struct packet {
  struct packet *next;
  uint64_t due_ns; /* when it reaches the far end */
  size_t len;
  unsigned char data[];
};

struct direction {
  int in, out;
  struct packet *head, *tail;
  size_t queued;
  uint64_t link_free_ns; /* when the link finishes sending the last packet queued */
  uint64_t forwarded, dropped, bytes;
};

static volatile sig_atomic_t stop;
static uint64_t rate_bps, delay_ns;
static size_t queue_limit = 1000;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int open_tun(const char *name) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    perror("delayline: open /dev/net/tun");
    exit(1);
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    fprintf(stderr, "delayline: TUNSETIFF %s: %s\n", name, strerror(errno));
    exit(1);
  }
  return fd;
}

/* Reads every packet waiting on d->in and queues it with its departure and arrival times. */
static void receive(struct direction *d) {
  static unsigned char buf[MAX_PACKET];
  for (;;) {
    ssize_t n = read(d->in, buf, sizeof buf);
    if (n <= 0) {
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        perror("delayline: read");
        exit(1);
      }
      return;
    }
    if (d->queued >= queue_limit) {
      d->dropped++;
      continue;
    }
    struct packet *p = malloc(sizeof *p + (size_t)n);
    if (!p) {
      fprintf(stderr, "delayline: out of memory\n");
      exit(1);
    }
    memcpy(p->data, buf, (size_t)n);
    uint64_t t = now_ns();
    uint64_t start = d->link_free_ns > t ? d->link_free_ns : t;
    uint64_t serialise = rate_bps ? ((uint64_t)n * 8ull * 1000000000ull) / rate_bps : 0;
    d->link_free_ns = start + serialise;
    p->due_ns = d->link_free_ns + delay_ns;
    p->len = (size_t)n;
    p->next = NULL;
    if (d->tail)
      d->tail->next = p;
    else
      d->head = p;
    d->tail = p;
    d->queued++;
  }
}

/* Writes out every packet that is due; returns when the head is not. */
static void deliver(struct direction *d, uint64_t t) {
  while (d->head && d->head->due_ns <= t) {
    struct packet *p = d->head;
    d->head = p->next;
    if (!d->head) d->tail = NULL;
    d->queued--;
    /* A full device queue on the far side drops the packet, as a real link would. */
    if (write(d->out, p->data, p->len) == (ssize_t)p->len) {
      d->forwarded++;
      d->bytes += p->len;
    } else {
      d->dropped++;
    }
    free(p);
  }
}

int main(int argc, char **argv) {
  if (argc < 6 || argc > 7) {
    fprintf(stderr, "usage: %s A_NAME B_NAME NETNS_PATH RATE_BITS_PER_S ONE_WAY_DELAY_US [QUEUE_PACKETS]\n", argv[0]);
    return 2;
  }
  rate_bps = strtoull(argv[4], NULL, 10);
  delay_ns = strtoull(argv[5], NULL, 10) * 1000ull;
  if (argc == 7) queue_limit = strtoull(argv[6], NULL, 10);
  /* Wake within a microsecond of the due time: the default 50 us slack would bunch packets at 1 Gbit/s. */
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  /* Die with the benchmark that started us, whatever happens to it. */
  prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);

  int a = open_tun(argv[1]);
  int ns = open(argv[3], O_RDONLY | O_CLOEXEC);
  if (ns < 0 || setns(ns, CLONE_NEWNET) < 0) {
    fprintf(stderr, "delayline: entering %s: %s\n", argv[3], strerror(errno));
    return 1;
  }
  close(ns);
  int b = open_tun(argv[2]);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  struct direction dirs[2] = {{.in = a, .out = b}, {.in = b, .out = a}};
  printf("ready\n");
  fflush(stdout);

  while (!stop) {
    uint64_t t = now_ns();
    deliver(&dirs[0], t);
    deliver(&dirs[1], t);
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < 2; i++)
      if (dirs[i].head && dirs[i].head->due_ns < next) next = dirs[i].head->due_ns;
    struct pollfd fds[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    struct timespec wait, *timeout = NULL;
    if (next != UINT64_MAX) {
      uint64_t t2 = now_ns();
      uint64_t left = next > t2 ? next - t2 : 0;
      wait.tv_sec = (time_t)(left / 1000000000ull);
      wait.tv_nsec = (long)(left % 1000000000ull);
      timeout = &wait;
    }
    int r = ppoll(fds, 2, timeout, NULL);
    if (r < 0) {
      if (errno == EINTR) continue;
      perror("delayline: ppoll");
      return 1;
    }
    if (fds[0].revents & POLLIN) receive(&dirs[0]);
    if (fds[1].revents & POLLIN) receive(&dirs[1]);
  }
  fprintf(stderr, "delayline: a->b %llu packets %llu bytes %llu dropped; b->a %llu packets %llu bytes %llu dropped\n",
          (unsigned long long)dirs[0].forwarded, (unsigned long long)dirs[0].bytes, (unsigned long long)dirs[0].dropped,
          (unsigned long long)dirs[1].forwarded, (unsigned long long)dirs[1].bytes, (unsigned long long)dirs[1].dropped);
  return 0;
}
