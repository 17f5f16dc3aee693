// uses: daemon/notify
/* test_notify — the sd_notify datagram reaches a socket standing in for systemd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "notify.h"

static int listener(char path[108])
{
    snprintf(path, 108, "/tmp/circa-notify-%d.sock", (int)getpid());
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void sends_ready_to_notify_socket(void **state)
{
    char path[108], got[128] = "";
    int fd = listener(path);
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(notify_send("READY=1\nSTATUS=listening"), 1);
    ssize_t n = recv(fd, got, sizeof got - 1, 0);
    assert_true(n > 0);
    got[n] = '\0';
    assert_string_equal(got, "READY=1\nSTATUS=listening");
    close(fd);
    unlink(path);
}

static void nothing_without_notify_socket(void **state)
{
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(notify_send("READY=1"), 0);
}

static void refuses_a_relative_path(void **state)
{
    setenv("NOTIFY_SOCKET", "relative.sock", 1);
    assert_int_equal(notify_send("READY=1"), -1);
    setenv("NOTIFY_SOCKET", "/tmp/circa-notify-nobody-listens.sock", 1);
    assert_int_equal(notify_send("READY=1"), -1);   /* no such socket: an error, not a hang */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sends_ready_to_notify_socket),
        cmocka_unit_test(nothing_without_notify_socket),
        cmocka_unit_test(refuses_a_relative_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
