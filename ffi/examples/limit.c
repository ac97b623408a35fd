/* At most 2 processes of this user do the work at once; the others wait up to 5 s for a slot.
 *
 *   cc limit.c -o limit $(pkg-config --cflags --libs shmsem)
 */
#include <shmsem.h>

#include <stdio.h>

int main(void) {
    shmsem_sem *sem;
    int rc = shmsem_open("build-slots", SHMSEM_SCOPE_LOCAL, NULL, 2, &sem);
    if (rc != SHMSEM_OK) {
        fprintf(stderr, "limit: %s\n", shmsem_last_error());
        return 1;
    }
    rc = shmsem_acquire(sem, 1, 5000);
    if (rc != SHMSEM_OK) {
        /* SHMSEM_ETIMEDOUT: both slots stayed held for 5 s. */
        fprintf(stderr, "limit: %s (%s)\n", shmsem_strerror(rc), shmsem_last_error());
        shmsem_close(sem);
        return 1;
    }
    uint32_t capacity, value;
    if (shmsem_info(sem, &capacity, &value) == SHMSEM_OK)
        printf("working: %u of %u slots held\n", value, capacity);
    /* ... the work ... */
    shmsem_release(sem, 1);
    shmsem_close(sem);
    return 0;
}
