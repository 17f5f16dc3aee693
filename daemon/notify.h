/* notify — systemd's readiness protocol (sd_notify) without libsystemd: one datagram with
 * "READY=1" or "STOPPING=1" to the socket named by $NOTIFY_SOCKET, when that is set. */
#ifndef CIRCA_NOTIFY_H
#define CIRCA_NOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=listening on …"). Returns 1 sent, 0 when NOTIFY_SOCKET
 * is unset, -1 on error (errno set). Never blocks: the socket is a datagram socket. */
int notify_send(const char *state);

#endif
