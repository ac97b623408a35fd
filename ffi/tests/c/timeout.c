/* A 200 ms timeout on a full semaphore is SHMSEM_ETIMEDOUT, never before 200 ms have passed
 * (CLOCK_MONOTONIC), and takes nothing. */
#include "check.h"

int main(void) {
    shmsem_sem *sem;
    CHECK_RC(shmsem_open("timeout", SHMSEM_SCOPE_LOCAL, NULL, 1, &sem), SHMSEM_OK);
    CHECK_RC(shmsem_acquire(sem, 1, -1), SHMSEM_OK);
    double start = now_ms();
    CHECK_RC(shmsem_acquire(sem, 1, 200), SHMSEM_ETIMEDOUT);
    double waited = now_ms() - start;
    if (waited < 200.0) {
        fprintf(stderr, "timed out after %.3f ms, before the 200 ms asked\n", waited);
        return 1;
    }
    CHECK(strstr(shmsem_last_error(), "timed out") != NULL);
    CHECK(value_of(sem) == 1);
    CHECK_RC(shmsem_release(sem, 1), SHMSEM_OK);
    CHECK_RC(shmsem_acquire(sem, 1, 200), SHMSEM_OK);
    CHECK_RC(shmsem_release(sem, 1), SHMSEM_OK);
    shmsem_close(sem);
    return 0;
}
