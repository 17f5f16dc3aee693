/* app — the few helpers every part of the daemon shares through app.h. */
#include "app.h"

#include <sys/time.h>

int64_t app_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}
