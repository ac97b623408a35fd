/* A try (timeout 0) on a full semaphore is SHMSEM_EWOULDBLOCK at once and takes nothing; a
 * weight above the capacity can never be granted and is SHMSEM_EINVAL. */
#include "check.h"

int main(void) {
    shmsem_sem *sem;
    CHECK_RC(shmsem_open("try-full", SHMSEM_SCOPE_LOCAL, NULL, 2, &sem), SHMSEM_OK);
    CHECK_RC(shmsem_acquire(sem, 2, 0), SHMSEM_OK);
    double start = now_ms();
    CHECK_RC(shmsem_acquire(sem, 1, 0), SHMSEM_EWOULDBLOCK);
    CHECK(now_ms() - start < 1000.0);
    CHECK(strstr(shmsem_last_error(), "would block") != NULL);
    CHECK(value_of(sem) == 2);

    CHECK_RC(shmsem_release(sem, 1), SHMSEM_OK);
    CHECK_RC(shmsem_acquire(sem, 2, 0), SHMSEM_EWOULDBLOCK);
    CHECK_RC(shmsem_acquire(sem, 1, 0), SHMSEM_OK);
    CHECK_RC(shmsem_acquire(sem, 3, 0), SHMSEM_EINVAL);
    CHECK_RC(shmsem_acquire(sem, 3, -1), SHMSEM_EINVAL);
    CHECK(value_of(sem) == 2);
    CHECK_RC(shmsem_release(sem, 2), SHMSEM_OK);
    CHECK(value_of(sem) == 0);
    shmsem_close(sem);
    return 0;
}
