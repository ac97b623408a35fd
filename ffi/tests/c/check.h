/* What every C test of shmsem shares: checks that say where they failed, a monotonic clock,
 * a witness counter in memory shared across fork, and waiting for a child. Each test is one
 * program: it exits 0 when every check held and 1 at the first that did not. */
#ifndef SHMSEM_TEST_CHECK_H
#define SHMSEM_TEST_CHECK_H

#include <shmsem.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Fail the test unless `cond` holds. */
#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s (last error: \"%s\")\n", __FILE__,   \
                    __LINE__, #cond, shmsem_last_error());                                \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

/* Fail the test unless the call returns the code `want`. */
#define CHECK_RC(call, want)                                                              \
    do {                                                                                  \
        int rc_ = (call);                                                                 \
        if (rc_ != (want)) {                                                              \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s); last error: \"%s\"\n", \
                    __FILE__, __LINE__, #call, rc_, shmsem_strerror(rc_), (want),          \
                    shmsem_strerror(want), shmsem_last_error());                          \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

/* Milliseconds on CLOCK_MONOTONIC. */
static inline double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* `n` longs shared with every child forked after this call. */
static inline long *shared_longs(size_t n) {
    void *p = mmap(NULL, n * sizeof(long), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    CHECK(p != MAP_FAILED);
    memset(p, 0, n * sizeof(long));
    return p;
}

/* Raise `*max` to `value` if it is lower. */
static inline void raise_max(long *max, long value) {
    long seen = __atomic_load_n(max, __ATOMIC_SEQ_CST);
    while (value > seen &&
           !__atomic_compare_exchange_n(max, &seen, value, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
}

/* Wait for the child `pid`; fail unless it exited with status 0. */
static inline void expect_child_ok(pid_t pid) {
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child %d failed (wait status %d)\n", (int)pid, status);
        exit(1);
    }
}

/* The value (weight held by all) of `sem`. */
static inline uint32_t value_of(shmsem_sem *sem) {
    uint32_t capacity = 0, value = 0;
    CHECK_RC(shmsem_info(sem, &capacity, &value), SHMSEM_OK);
    return value;
}

#endif
