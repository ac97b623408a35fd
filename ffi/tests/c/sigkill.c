/* The weight of a child killed with SIGKILL while holding comes back: the parent then acquires
 * it within a few seconds. */
#include "check.h"

#include <signal.h>

int main(void) {
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        shmsem_sem *sem;
        CHECK_RC(shmsem_open("sigkill", SHMSEM_SCOPE_LOCAL, NULL, 1, &sem), SHMSEM_OK);
        CHECK_RC(shmsem_acquire(sem, 1, -1), SHMSEM_OK);
        CHECK(write(ready[1], "x", 1) == 1);
        for (;;) pause();
    }
    char byte;
    CHECK(read(ready[0], &byte, 1) == 1);

    shmsem_sem *sem;
    CHECK_RC(shmsem_open("sigkill", SHMSEM_SCOPE_LOCAL, NULL, 1, &sem), SHMSEM_OK);
    CHECK(value_of(sem) == 1);
    CHECK_RC(shmsem_acquire(sem, 1, 0), SHMSEM_EWOULDBLOCK);
    CHECK(kill(pid, SIGKILL) == 0);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    CHECK_RC(shmsem_acquire(sem, 1, 5000), SHMSEM_OK);
    CHECK(value_of(sem) == 1);
    CHECK_RC(shmsem_release(sem, 1), SHMSEM_OK);
    CHECK(value_of(sem) == 0);
    shmsem_close(sem);
    return 0;
}
