/* Tiny static child for bench/engine.py.
 *   child pause        sleep forever (like `sleep 3600`, without libc start-up weight)
 *   child stamp FILE   append "<CLOCK_MONOTONIC ns> <pid>\n" to FILE, then sleep forever
 * Build: cc -O2 -static -o child child.c   (engine.py does this itself in its scratch dir)
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "stamp") == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        char line[64];
        int n = snprintf(line, sizeof line, "%lld %d\n",
                         (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, (int)getpid());
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, line, (size_t)n) != n) return 1;
        close(fd);
    } else if (argc < 2 || strcmp(argv[1], "pause") != 0) {
        static const char usage[] = "usage: child pause | child stamp FILE\n";
        (void)!write(2, usage, sizeof usage - 1);
        return 2;
    }
    for (;;) pause();
}
