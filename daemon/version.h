/* version — the one place the release number lives. */
#ifndef CIRCA_VERSION_H
#define CIRCA_VERSION_H
#define CIRCA_VERSION "0.1.0"
#endif
