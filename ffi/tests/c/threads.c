/* Many threads acquiring and releasing through one handle at once: a witness counter of who is
 * inside never goes above the capacity, and all weight comes back. */
#include "check.h"

#include <pthread.h>

enum { THREADS = 8, ROUNDS = 2000, CAPACITY = 3 };

static shmsem_sem *sem;
static long inside, max_inside, entered;

static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        CHECK_RC(shmsem_acquire(sem, 1, i % 2 ? -1 : 10000), SHMSEM_OK);
        raise_max(&max_inside, __atomic_add_fetch(&inside, 1, __ATOMIC_SEQ_CST));
        __atomic_add_fetch(&entered, 1, __ATOMIC_SEQ_CST);
        __atomic_sub_fetch(&inside, 1, __ATOMIC_SEQ_CST);
        CHECK_RC(shmsem_release(sem, 1), SHMSEM_OK);
    }
    return NULL;
}

int main(void) {
    CHECK_RC(shmsem_open("threads", SHMSEM_SCOPE_LOCAL, NULL, CAPACITY, &sem), SHMSEM_OK);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) CHECK(pthread_create(&threads[i], NULL, worker, NULL) == 0);
    for (int i = 0; i < THREADS; i++) CHECK(pthread_join(threads[i], NULL) == 0);
    if (max_inside > CAPACITY || max_inside < 1) {
        fprintf(stderr, "%ld inside at once with capacity %d\n", max_inside, CAPACITY);
        return 1;
    }
    CHECK(entered == (long)THREADS * ROUNDS);
    CHECK(value_of(sem) == 0);
    CHECK_RC(shmsem_release(sem, 1), SHMSEM_ENOTHELD);
    shmsem_close(sem);
    return 0;
}
