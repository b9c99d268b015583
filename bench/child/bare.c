/* The restart probe without a C library: `bare stamp FILE` appends
 * "<CLOCK_MONOTONIC ns> <pid>\n" to FILE as its very first work, then sleeps forever;
 * `bare pause` only sleeps. Same output as child.c.
 *
 * Why: a static glibc program initialises itself before main (CPU feature probing with
 * `cpuid`, which traps to the hypervisor in a VM, TLS, IRELATIVE relocations); on the
 * 2-core VM of docs/performance.md that is about 0.3 ms between the exec and main, the
 * same for every supervisor but counted in each one's restart latency. This child stamps
 * at its entry point, so the figure is the supervisor's: death, reaping, deciding, cloning,
 * exec. bench/compare.py runs the restart workload with both children.
 *
 * Build: cc -O2 -static -nostdlib -ffreestanding -fno-stack-protector -o bare bare.c
 * (x86-64 and aarch64 Linux only; elsewhere compare.py measures with child.c alone).
 */
#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>

static long sys3(long n, long a, long b, long c) {
    long ret;
#if defined(__x86_64__)
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    ret = x0;
#else
#error "bare.c knows x86-64 and aarch64 only"
#endif
    return ret;
}

static long sys4(long n, long a, long b, long c, long d) {
    long ret;
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
#else
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    ret = x0;
#endif
    return ret;
}

static __attribute__((noreturn)) void leave(int code) {
    for (;;) sys3(SYS_exit_group, code, 0, 0);
}

static __attribute__((noreturn)) void sleep_forever(void) {
    /* ppoll with nothing to wait for and no timeout: until a signal ends the process. */
    for (;;) sys4(SYS_ppoll, 0, 0, 0, 0);
}

static int same(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

/* Decimal digits of n, ending at `end` (exclusive); returns where they start. */
static char *decimal(char *end, unsigned long long n) {
    do *--end = (char)('0' + n % 10); while (n /= 10);
    return end;
}

__attribute__((used)) void start(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    if (argc >= 3 && same(argv[1], "stamp")) {
        struct timespec ts;
        sys3(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0);
        unsigned long long ns = (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
        long pid = sys3(SYS_getpid, 0, 0, 0);
        char line[48];
        char *end = line + sizeof line;
        *--end = '\n';
        char *p = decimal(end, (unsigned long long)pid);
        *--p = ' ';
        p = decimal(p, ns);
        long n = (line + sizeof line) - p;
        long fd = sys4(SYS_openat, AT_FDCWD, (long)argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0 || sys3(SYS_write, fd, (long)p, n) != n) leave(1);
        sys3(SYS_close, fd, 0, 0);
    } else if (argc < 2 || !same(argv[1], "pause")) {
        static const char usage[] = "usage: bare pause | bare stamp FILE\n";
        sys3(SYS_write, 2, (long)usage, sizeof usage - 1);
        leave(2);
    }
    sleep_forever();
}

/* The kernel enters here with argc at the stack pointer; `start` gets that address. */
#if defined(__x86_64__)
__asm__(".globl _start\n_start:\n\txor %ebp, %ebp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall start\n\thlt\n");
#else
__asm__(".globl _start\n_start:\n\tmov x29, #0\n\tmov x0, sp\n\tbl start\n\tbrk #0\n");
#endif
