/* Releasing more than this process acquired is SHMSEM_ENOTHELD and changes nothing; so is a
 * release through another handle than the one that acquired. */
#include "check.h"

int main(void) {
    shmsem_sem *sem, *other;
    CHECK_RC(shmsem_open("over-release", SHMSEM_SCOPE_LOCAL, NULL, 3, &sem), SHMSEM_OK);
    CHECK_RC(shmsem_open("over-release", SHMSEM_SCOPE_LOCAL, NULL, 3, &other), SHMSEM_OK);

    CHECK_RC(shmsem_release(sem, 1), SHMSEM_ENOTHELD);
    CHECK(value_of(sem) == 0);

    CHECK_RC(shmsem_acquire(sem, 2, -1), SHMSEM_OK);
    CHECK_RC(shmsem_release(sem, 3), SHMSEM_ENOTHELD);
    CHECK(strstr(shmsem_last_error(), "cannot release 3") != NULL);
    CHECK(value_of(sem) == 2);
    CHECK_RC(shmsem_release(other, 1), SHMSEM_ENOTHELD);
    CHECK(value_of(sem) == 2);

    CHECK_RC(shmsem_release(sem, 1), SHMSEM_OK);
    CHECK(value_of(sem) == 1);
    CHECK_RC(shmsem_release(sem, 2), SHMSEM_ENOTHELD);
    CHECK(value_of(sem) == 1);
    CHECK_RC(shmsem_release(sem, 1), SHMSEM_OK);
    CHECK(value_of(sem) == 0);
    CHECK_RC(shmsem_release(sem, 1), SHMSEM_ENOTHELD);
    CHECK(value_of(other) == 0);
    shmsem_close(other);
    shmsem_close(sem);
    return 0;
}
