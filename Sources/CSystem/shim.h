// glibc calls that Swift's Glibc module does not expose.
#ifndef STARLING_CSYSTEM_SHIM_H
#define STARLING_CSYSTEM_SHIM_H
#include <errno.h>
#include <linux/falloc.h>
#include <malloc.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

// glibc declares fallocate only under _GNU_SOURCE, which this module must not define: its
// headers would then disagree with Swift's Glibc module (fd_set) in a clean build.
extern int fallocate(int fd, int mode, long offset, long length);

// Keep MB-sized buffers on the heap instead of fresh mmap'd pages, and stop glibc from
// returning freed memory to the kernel at once: otherwise every large message or tensor
// page-faults anew (PITFALLS.md: a 1 MiB actor call went from ~5 ms to 1.8 ms).
static inline void starling_tune_malloc(int mmap_threshold, int trim_threshold) {
    mallopt(M_MMAP_THRESHOLD, mmap_threshold);
    mallopt(M_TRIM_THRESHOLD, trim_threshold);
}

// prctl is variadic, which Swift cannot call: ask the kernel to send `sig` to this process
// when its parent dies (workers must not outlive their node).
static inline int starling_die_with_parent(int sig) {
    return prctl(PR_SET_PDEATHSIG, sig);
}

// Frees the pages of `length` bytes at `offset` of a file (tmpfs: returns them to the
// system) without changing its size; reads of the range then see zeros. 0, or -1 and errno.
static inline int starling_punch_hole(int fd, long long offset, long long length) {
    return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (long)offset, (long)length);
}

// sched_setaffinity/sched_getaffinity and getcpu need _GNU_SOURCE (see above): the raw
// system calls take the same mask, `words` longs of CPU bits (bit i = CPU i).
// 0, or -errno.
static inline int starling_set_thread_cpus(int tid, const unsigned long *mask, int words) {
    long result = syscall(SYS_sched_setaffinity, tid, (unsigned long)words * sizeof(unsigned long), mask);
    return result == 0 ? 0 : -errno;
}

// Bytes of mask the kernel wrote, or -errno.
static inline int starling_get_thread_cpus(int tid, unsigned long *mask, int words) {
    long result = syscall(SYS_sched_getaffinity, tid, (unsigned long)words * sizeof(unsigned long), mask);
    return result >= 0 ? (int)result : -errno;
}

// The CPU the calling thread runs on, or -1.
static inline int starling_current_cpu(void) {
    unsigned cpu = 0;
    return syscall(SYS_getcpu, &cpu, (void *)0, (void *)0) == 0 ? (int)cpu : -1;
}
#endif
