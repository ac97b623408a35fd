/* A forked child holds nothing its parent held: its release of the parent's weight through the
 * inherited handle is SHMSEM_ENOTHELD, and the parent's value is unchanged. The child may use
 * the handle for weight of its own. */
#include "check.h"

int main(void) {
    shmsem_sem *sem;
    CHECK_RC(shmsem_open("fork-release", SHMSEM_SCOPE_LOCAL, NULL, 2, &sem), SHMSEM_OK);
    CHECK_RC(shmsem_acquire(sem, 1, -1), SHMSEM_OK);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        CHECK_RC(shmsem_release(sem, 1), SHMSEM_ENOTHELD);
        CHECK(value_of(sem) == 1);
        CHECK_RC(shmsem_acquire(sem, 1, 1000), SHMSEM_OK);
        CHECK(value_of(sem) == 2);
        CHECK_RC(shmsem_release(sem, 2), SHMSEM_ENOTHELD);
        CHECK_RC(shmsem_release(sem, 1), SHMSEM_OK);
        CHECK(value_of(sem) == 1);
        _exit(0);
    }
    expect_child_ok(pid);
    CHECK(value_of(sem) == 1);
    CHECK_RC(shmsem_release(sem, 1), SHMSEM_OK);
    CHECK(value_of(sem) == 0);
    shmsem_close(sem);
    return 0;
}
