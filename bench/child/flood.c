/* Output generator for bench/logs.py and bench/compare.py.
 *   flood BYTES chunk [STAMP]   write BYTES of 100-byte lines in 64 KiB writes
 *   flood BYTES line [STAMP]    the same, one write(2) per line (what most programs do)
 * With STAMP, first append "<CLOCK_MONOTONIC ns> <pid>\n" to that file (when the run began, as
 * the child itself sees it, so a harness can time a supervisor without polling /proc).
 * Every line is "NNNNNNNNNNNN " + filler + "\n", exactly 100 bytes, numbered from 1, so the
 * output is the same wherever it goes and can be compared by checksum.
 * Build: cc -O2 -static -o flood flood.c
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: flood BYTES chunk|line [STAMP]\n");
        return 2;
    }
    if (argc >= 4) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        char stamp[64];
        int n = snprintf(stamp, sizeof stamp, "%lld %d\n",
                         (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, (int)getpid());
        int fd = open(argv[3], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, stamp, (size_t)n) != n) return 1;
        close(fd);
    }
    long long lines = atoll(argv[1]) / 100;
    int per_line = strcmp(argv[2], "line") == 0;
    static char buf[65536];
    size_t used = 0;
    char line[101];
    for (long long i = 1; i <= lines; i++) {
        int n = snprintf(line, sizeof line, "%012lld ", i);
        memset(line + n, 'x', 99 - n);
        line[99] = '\n';
        if (per_line) {
            if (write_all(line, 100)) return 1;
        } else {
            if (used + 100 > sizeof buf) {
                if (write_all(buf, used)) return 1;
                used = 0;
            }
            memcpy(buf + used, line, 100);
            used += 100;
        }
    }
    if (used && write_all(buf, used)) return 1;
    return 0;
}
