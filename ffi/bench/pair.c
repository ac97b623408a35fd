/* The uncontended pair from C: shmsem_acquire(s, 1, -1) + shmsem_release(s, 1) against POSIX
 * sem_wait + sem_post on a named semaphore, weight 1, nobody else around.
 *
 *   pair time ROUNDS BATCH_NS   paired rounds, the order alternating: each contender's
 *                               nanoseconds per pair, per round, as one JSON object
 *                               {"ops": [shmsem, posix], "shmsem": [...], "posix": [...]}
 *   pair count N                for callgrind: batches of N, N and 2N pairs of each contender,
 *                               each one call of c_shmsem_bench_batch, labelled on stdout as
 *                               `dump c_uncontended CONTENDER OPS ok`
 *
 * `shmsem bench` compiles it against libshmsem.a and runs it (the `c_uncontended` row); the
 * shmsem semaphore lives in SHMSEM_DIR, the POSIX one is /shmsem-bench-c.PID, unlinked at once. */
#include <shmsem.h>

#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { SHMSEM, POSIX, CONTENDERS };
static const char *const NAMES[CONTENDERS] = {"shmsem", "posix"};

static shmsem_sem *sem;
static sem_t *posix;

static void die(const char *what, int rc) {
    fprintf(stderr, "pair: %s failed: %d %s %s\n", what, rc, rc ? shmsem_strerror(rc) : "",
            shmsem_last_error());
    exit(1);
}

/* `n` pairs of contender `which`. Not inlined: callgrind counts exactly its calls. */
__attribute__((noinline)) int c_shmsem_bench_batch(int which, long n) {
    int bad = 0;
    if (which == SHMSEM) {
        for (long i = 0; i < n; i++) {
            bad |= shmsem_acquire(sem, 1, -1);
            bad |= shmsem_release(sem, 1);
        }
    } else {
        for (long i = 0; i < n; i++) {
            bad |= sem_wait(posix);
            bad |= sem_post(posix);
        }
    }
    return bad;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Nanoseconds of `n` pairs of `which`. */
static double batch_ns(int which, long n) {
    double start = now_ns();
    if (c_shmsem_bench_batch(which, n) != 0) die(NAMES[which], -1);
    return now_ns() - start;
}

/* Pairs per batch so that one takes about `target_ns`. */
static long calibrate(int which, double target_ns) {
    long n = 1;
    for (;;) {
        double took = batch_ns(which, n);
        if (took >= target_ns / 4 || n >= (1L << 30)) {
            long sized = (long)((double)n * target_ns / (took > 1 ? took : 1));
            return sized > 0 ? sized : 1;
        }
        n *= 2;
    }
}

static void setup(void) {
    int rc = shmsem_open("c-pair", SHMSEM_SCOPE_LOCAL, NULL, 1, &sem);
    if (rc != SHMSEM_OK) die("shmsem_open", rc);
    char name[64];
    snprintf(name, sizeof name, "/shmsem-bench-c.%d", (int)getpid());
    posix = sem_open(name, O_CREAT | O_EXCL, 0600, 1);
    if (posix == SEM_FAILED) {
        perror("pair: sem_open");
        exit(1);
    }
    sem_unlink(name);
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "time") == 0) {
        long rounds = atol(argv[2]);
        double target = atof(argv[3]);
        setup();
        long ops[CONTENDERS];
        for (int c = 0; c < CONTENDERS; c++) ops[c] = calibrate(c, target);
        double *ns = calloc((size_t)(rounds * CONTENDERS), sizeof *ns);
        if (!ns) die("calloc", -1);
        for (long r = 0; r < rounds; r++) {
            for (int k = 0; k < CONTENDERS; k++) {
                int c = (int)((r + k) % CONTENDERS); /* who goes first alternates */
                ns[r * CONTENDERS + c] = batch_ns(c, ops[c]) / (double)ops[c];
            }
        }
        printf("{\"ops\": [%ld, %ld]", ops[SHMSEM], ops[POSIX]);
        for (int c = 0; c < CONTENDERS; c++) {
            printf(", \"%s\": [", NAMES[c]);
            for (long r = 0; r < rounds; r++)
                printf("%s%.3f", r ? ", " : "", ns[r * CONTENDERS + c]);
            printf("]");
        }
        printf("}\n");
        free(ns);
    } else if (argc == 3 && strcmp(argv[1], "count") == 0) {
        long n = atol(argv[2]);
        setup();
        for (int c = 0; c < CONTENDERS; c++) {
            const long sizes[3] = {n, n, 2 * n};
            for (int i = 0; i < 3; i++) {
                int bad = c_shmsem_bench_batch(c, sizes[i]);
                printf("dump c_uncontended %s %ld %s\n", NAMES[c], sizes[i], bad ? "error" : "ok");
            }
        }
    } else {
        fprintf(stderr, "usage: pair time ROUNDS BATCH_NS | pair count N\n");
        return 2;
    }
    shmsem_close(sem);
    sem_close(posix);
    return 0;
}
