/* shmsem_close gives back what this process acquired through the handle and did not release;
 * a forked child that closes its copy of the handle gives back nothing of its parent's. */
#include "check.h"

int main(void) {
    shmsem_sem *watch, *sem;
    CHECK_RC(shmsem_open("close", SHMSEM_SCOPE_LOCAL, NULL, 4, &watch), SHMSEM_OK);
    CHECK_RC(shmsem_open("close", SHMSEM_SCOPE_LOCAL, NULL, 4, &sem), SHMSEM_OK);
    CHECK_RC(shmsem_acquire(sem, 2, -1), SHMSEM_OK);
    CHECK_RC(shmsem_acquire(sem, 1, 100), SHMSEM_OK);
    CHECK_RC(shmsem_acquire(watch, 1, 0), SHMSEM_OK);
    CHECK(value_of(watch) == 4);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        shmsem_close(sem);
        CHECK(value_of(watch) == 4);
        _exit(0);
    }
    expect_child_ok(pid);
    CHECK(value_of(watch) == 4);

    shmsem_close(sem);
    CHECK(value_of(watch) == 1);
    CHECK_RC(shmsem_release(watch, 1), SHMSEM_OK);
    CHECK(value_of(watch) == 0);
    shmsem_close(watch);
    shmsem_close(NULL);
    return 0;
}
