/* Every code has its own non-empty text; a code that is not shmsem's says so. */
#include "check.h"

int main(void) {
    const int codes[] = {SHMSEM_OK,      SHMSEM_ETIMEDOUT, SHMSEM_EWOULDBLOCK, SHMSEM_EINVAL,
                         SHMSEM_ENOTHELD, SHMSEM_EPERM,     SHMSEM_ENOENT,      SHMSEM_EINUSE,
                         SHMSEM_ECORRUPT, SHMSEM_EIO,       SHMSEM_EFULL,       SHMSEM_EREMOVED,
                         SHMSEM_EINTERNAL};
    const size_t n = sizeof codes / sizeof codes[0];
    const char *unknown = shmsem_strerror(1000);
    CHECK(unknown != NULL && strstr(unknown, "unknown") != NULL);
    CHECK(strcmp(shmsem_strerror(-1), unknown) == 0);
    CHECK(SHMSEM_OK == 0);
    for (size_t i = 0; i < n; i++) {
        const char *text = shmsem_strerror(codes[i]);
        CHECK(text != NULL && text[0] != '\0');
        CHECK(strcmp(text, unknown) != 0);
        if (i > 0) CHECK(codes[i] > 0);
        for (size_t j = 0; j < i; j++) {
            CHECK(codes[i] != codes[j]);
            CHECK(strcmp(text, shmsem_strerror(codes[j])) != 0);
        }
    }
    return 0;
}
