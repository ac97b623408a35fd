/* Capacity 2 admits 2 of 3 forked processes at once, and all 3 eventually: a witness counter in
 * shared memory counts who is inside; it never goes above 2, and reaches 2 (the first two in
 * stay until two have entered). */
#include "check.h"

enum { INSIDE, MAX_INSIDE, ENTERED, SLOTS };

static int child(long *shared) {
    shmsem_sem *sem;
    CHECK_RC(shmsem_open("two-of-three", SHMSEM_SCOPE_LOCAL, NULL, 2, &sem), SHMSEM_OK);
    CHECK_RC(shmsem_acquire(sem, 1, -1), SHMSEM_OK);
    long inside = __atomic_add_fetch(&shared[INSIDE], 1, __ATOMIC_SEQ_CST);
    raise_max(&shared[MAX_INSIDE], inside);
    __atomic_add_fetch(&shared[ENTERED], 1, __ATOMIC_SEQ_CST);
    /* Stay until a second process has entered (at most 20 s), then a little longer. */
    double deadline = now_ms() + 20000;
    while (__atomic_load_n(&shared[ENTERED], __ATOMIC_SEQ_CST) < 2 && now_ms() < deadline)
        usleep(1000);
    usleep(20000);
    __atomic_sub_fetch(&shared[INSIDE], 1, __ATOMIC_SEQ_CST);
    CHECK_RC(shmsem_release(sem, 1), SHMSEM_OK);
    shmsem_close(sem);
    return 0;
}

int main(void) {
    long *shared = shared_longs(SLOTS);
    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        pids[i] = fork();
        CHECK(pids[i] >= 0);
        if (pids[i] == 0) _exit(child(shared));
    }
    for (int i = 0; i < 3; i++) expect_child_ok(pids[i]);
    CHECK(shared[ENTERED] == 3);
    CHECK(shared[MAX_INSIDE] == 2);
    CHECK(shared[INSIDE] == 0);

    shmsem_sem *sem;
    CHECK_RC(shmsem_open("two-of-three", SHMSEM_SCOPE_LOCAL, NULL, 2, &sem), SHMSEM_OK);
    CHECK(value_of(sem) == 0);
    shmsem_close(sem);
    return 0;
}
