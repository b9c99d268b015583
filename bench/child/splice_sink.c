/* Reference for bench/logs.py --reference: the least any capture can do, a loop that splices
 * its stdin (a pipe, enlarged to 1 MiB as tend enlarges a busy child's pipe) into a file,
 * without looking at the bytes.
 *   splice_sink FILE < pipe
 * Build: cc -O2 -static -o splice_sink splice_sink.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: splice_sink FILE < pipe\n");
        return 2;
    }
    int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) return 1;
    fcntl(0, F_SETPIPE_SZ, 1 << 20);
    for (;;) {
        ssize_t n = splice(0, NULL, out, NULL, 1 << 20, SPLICE_F_MOVE);
        if (n == 0) return 0;
        if (n < 0) {
            perror("splice");
            return 1;
        }
    }
}
