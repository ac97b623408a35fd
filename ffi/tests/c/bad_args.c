/* Bad arguments are SHMSEM_EINVAL with a message in shmsem_last_error, never a crash; a
 * success empties the message; each thread has its own. */
#include "check.h"

#include <pthread.h>

/* Fail unless `call` is SHMSEM_EINVAL with a message that contains `needle`. */
#define CHECK_EINVAL(call, needle)                                                        \
    do {                                                                                  \
        CHECK_RC(call, SHMSEM_EINVAL);                                                    \
        CHECK(shmsem_last_error()[0] != '\0');                                            \
        CHECK(strstr(shmsem_last_error(), needle) != NULL);                               \
    } while (0)

static void *other_thread(void *arg) {
    (void)arg;
    CHECK(strcmp(shmsem_last_error(), "") == 0);
    return NULL;
}

int main(void) {
    shmsem_sem *sem = NULL;
    CHECK_EINVAL(shmsem_open("bad name", SHMSEM_SCOPE_LOCAL, NULL, 1, &sem), "invalid name");
    CHECK(sem == NULL);
    CHECK_EINVAL(shmsem_open("", SHMSEM_SCOPE_LOCAL, NULL, 1, &sem), "invalid name");
    CHECK_EINVAL(shmsem_open("..", SHMSEM_SCOPE_LOCAL, NULL, 1, &sem), "invalid name");
    CHECK_EINVAL(shmsem_open("a/b", SHMSEM_SCOPE_LOCAL, NULL, 1, &sem), "invalid name");
    CHECK_EINVAL(shmsem_open("caf\xc3", SHMSEM_SCOPE_LOCAL, NULL, 1, &sem), "not UTF-8");
    CHECK_EINVAL(shmsem_open(NULL, SHMSEM_SCOPE_LOCAL, NULL, 1, &sem), "name is NULL");
    CHECK_EINVAL(shmsem_open("ok", SHMSEM_SCOPE_LOCAL, "bad ns", 1, &sem), "invalid name");
    CHECK_EINVAL(shmsem_open("ok", SHMSEM_SCOPE_LOCAL, NULL, 1, NULL), "out is NULL");
    CHECK_EINVAL(shmsem_open("ok", SHMSEM_SCOPE_LOCAL, NULL, 0, &sem), "capacity");
    CHECK_EINVAL(shmsem_open("ok", SHMSEM_SCOPE_LOCAL, NULL, (1u << 30) + 1, &sem), "capacity");
    CHECK_EINVAL(shmsem_open("ok", (shmsem_scope)7, NULL, 1, &sem), "scope 7");
    CHECK(sem == NULL);

    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, other_thread, NULL) == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(strstr(shmsem_last_error(), "scope 7") != NULL);

    CHECK_EINVAL(shmsem_acquire(NULL, 1, -1), "sem is NULL");
    CHECK_EINVAL(shmsem_release(NULL, 1), "sem is NULL");
    CHECK_EINVAL(shmsem_info(NULL, NULL, NULL), "sem is NULL");

    CHECK_RC(shmsem_open("ok", SHMSEM_SCOPE_LOCAL, "my-ns", 2, &sem), SHMSEM_OK);
    CHECK(sem != NULL);
    CHECK(strcmp(shmsem_last_error(), "") == 0);
    CHECK_EINVAL(shmsem_acquire(sem, 0, -1), "weight 0");
    CHECK_EINVAL(shmsem_acquire(sem, 0, 0), "weight 0");
    CHECK_EINVAL(shmsem_release(sem, 0), "count 0");
    CHECK_RC(shmsem_info(sem, NULL, NULL), SHMSEM_OK);
    uint32_t capacity = 0;
    CHECK_RC(shmsem_info(sem, &capacity, NULL), SHMSEM_OK);
    CHECK(capacity == 2);
    shmsem_close(sem);
    shmsem_close(NULL);
    return 0;
}
