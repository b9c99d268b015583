/* Children for bench/chaos.py. Each records what it did in files, so the harness counts from
 * the children's side what the supervisor should have seen.
 *
 *   chaos flap FILE MIN_MS MAX_MS
 *       append "<CLOCK_MONOTONIC ns> <pid>\n" to FILE, run for a random MIN_MS..MAX_MS, then
 *       crash: exit(1), or (every third run, chosen by pid) kill itself with SIGKILL.
 *   chaos family FILE
 *       fork one grandchild; both append "<ns> <pid> <ppid> leader|grandchild\n" to FILE and
 *       sleep forever (the grandchild is what a supervisor must find again after it dies).
 *   chaos burst SECONDS LINES_PER_S STATS
 *       write numbered 100-byte lines to stdout, one write(2) each, paced at LINES_PER_S for
 *       SECONDS; every 100 ms (and at the end) rewrite STATS with one line:
 *       "lines L slow_writes S max_write_us M blocked_us B elapsed_us E done D"
 *       where a slow write is one that took over 100 ms (the pipe was full: the child blocked).
 *       Line i (from 1) is "NNNNNNNNNNNN " + filler + "\n".
 *
 * Build: cc -O2 -static -o chaos chaos.c   (chaos.py does this in its scratch dir)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int append(const char *path, const char *line, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    ssize_t w = write(fd, line, n);
    close(fd);
    return w == (ssize_t)n ? 0 : -1;
}

static void sleep_ns(long long ns) {
    struct timespec ts = {ns / 1000000000LL, ns % 1000000000LL};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static int flap(int argc, char **argv) {
    if (argc < 5) return 2;
    char line[64];
    int n = snprintf(line, sizeof line, "%lld %d\n", now_ns(), (int)getpid());
    if (append(argv[2], line, (size_t)n)) return 3;
    long lo = atol(argv[3]), hi = atol(argv[4]);
    srand((unsigned)(getpid() ^ (now_ns() & 0xffffffff)));
    long ms = lo + (hi > lo ? rand() % (hi - lo + 1) : 0);
    sleep_ns(ms * 1000000LL);
    if (getpid() % 3 == 0) kill(getpid(), SIGKILL);
    return 1;
}

static int family(int argc, char **argv) {
    if (argc < 3) return 2;
    pid_t kid = fork();
    if (kid < 0) return 3;
    const char *role = kid == 0 ? "grandchild" : "leader";
    char line[96];
    int n = snprintf(line, sizeof line, "%lld %d %d %s\n", now_ns(), (int)getpid(),
                     (int)getppid(), role);
    if (append(argv[2], line, (size_t)n)) return 3;
    for (;;) pause();
}

static void write_stats(const char *path, long long lines, long long slow, long long max_us,
                        long long blocked_us, long long elapsed_us, int done) {
    char tmp[4096], line[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int n = snprintf(line, sizeof line,
                     "lines %lld slow_writes %lld max_write_us %lld blocked_us %lld "
                     "elapsed_us %lld done %d\n",
                     lines, slow, max_us, blocked_us, elapsed_us, done);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    (void)!write(fd, line, (size_t)n);
    close(fd);
    rename(tmp, path);
}

static int burst(int argc, char **argv) {
    if (argc < 5) return 2;
    long long seconds = atoll(argv[2]), rate = atoll(argv[3]);
    const char *stats = argv[4];
    signal(SIGPIPE, SIG_IGN);
    long long start = now_ns(), end = start + seconds * 1000000000LL;
    long long lines = 0, slow = 0, max_ns = 0, blocked_ns = 0, next_stats = start;
    char line[101];
    while (1) {
        long long t = now_ns();
        if (t >= end) break;
        /* lines due by now at the target rate */
        long long due = (t - start) * rate / 1000000000LL;
        while (lines < due) {
            int n = snprintf(line, sizeof line, "%012lld ", lines + 1);
            memset(line + n, 'x', 99 - n);
            line[99] = '\n';
            long long w0 = now_ns();
            ssize_t w = write(1, line, 100);
            long long took = now_ns() - w0;
            if (w != 100 && !(w < 0 && errno == EINTR)) { /* stdout gone: stop counting it */
                write_stats(stats, lines, slow, max_ns / 1000, blocked_ns / 1000,
                            (now_ns() - start) / 1000, 2);
                return 4;
            }
            lines++;
            if (took > max_ns) max_ns = took;
            if (took > 100000000LL) { slow++; blocked_ns += took; }
        }
        if (t >= next_stats) {
            write_stats(stats, lines, slow, max_ns / 1000, blocked_ns / 1000, (t - start) / 1000, 0);
            next_stats = t + 100000000LL;
        }
        sleep_ns(1000000LL); /* 1 ms ticks */
    }
    write_stats(stats, lines, slow, max_ns / 1000, blocked_ns / 1000, (now_ns() - start) / 1000, 1);
    for (;;) pause(); /* stay up: a run-once service that exits would be noise in the check */
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "flap") == 0) return flap(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "family") == 0) return family(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "burst") == 0) return burst(argc, argv);
    static const char usage[] =
        "usage: chaos flap FILE MIN_MS MAX_MS | family FILE | burst SECONDS LINES_PER_S STATS\n";
    (void)!write(2, usage, sizeof usage - 1);
    return 2;
}
