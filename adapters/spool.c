/* spool — append-only on-disk queue of received messages (see spool.h for the format). */
#include "spool.h"
#include "buf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEGMENT_ROLL_BYTES (64u << 20)   /* a new segment once the writer's passes this */
#define HEADER 8u
#define PEEK_MAX 4096

struct spool {
    char dir[1024];
    int wfd;                         /* segment being appended to */
    uint64_t wseg, wend;
    uint64_t synced_seg, synced_end; /* records before this point are durable */
    uint64_t sync_seg, sync_end;     /* what the sync in flight will make durable */
    int syncing;
    int rfd;                         /* segment being read */
    uint64_t rseg, roff;
    uint64_t peek_end[PEEK_MAX];     /* offset after each record of the last peek */
    int npeek;
    uint64_t depth;
    int64_t oldest_us;
};

uint32_t spool_crc32(const void *p, size_t n)
{
    static uint32_t table[256];
    if (!table[1]) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    }
    const unsigned char *b = p;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = table[(c ^ b[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static void seg_path(const spool_t *s, uint64_t seg, char *out, size_t n)
{
    snprintf(out, n, "%s/%016" PRIx64 ".seg", s->dir, seg);
}

static int open_seg(const spool_t *s, uint64_t seg, int flags)
{
    char path[1100];
    seg_path(s, seg, path, sizeof path);
    return open(path, flags | O_CLOEXEC, 0600);
}

static int mkdirs(const char *dir)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0700) && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0700) && errno != EEXIST ? -1 : 0;
}

/* Reads the record at off of fd: its total size, or 0 at a clean end, -1 when torn/corrupt. */
static long long record_at(int fd, uint64_t off, buf_t *body)
{
    unsigned char h[HEADER];
    ssize_t n = pread(fd, h, HEADER, (off_t)off);
    if (n == 0) return 0;
    if (n != (ssize_t)HEADER) return -1;
    uint32_t len = be32(h), crc = be32(h + 4);
    if (len < 10 || len > SPOOL_MAX_RECORD + 65536) return -1;
    buf_reset(body);
    buf_reserve(body, len);
    if (pread(fd, body->data, len, (off_t)(off + HEADER)) != (ssize_t)len) return -1;
    body->len = len;
    if (spool_crc32(body->data, len) != crc) return -1;
    return (long long)HEADER + len;
}

static int write_cursor(spool_t *s)
{
    char path[1100], line[64];
    snprintf(path, sizeof path, "%s/cursor", s->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    int n = snprintf(line, sizeof line, "%016" PRIx64 " %020" PRIu64 "\n", s->rseg, s->roff);
    int rc = pwrite(fd, line, (size_t)n, 0) == n ? 0 : -1;
    close(fd);
    return rc;
}

static void read_cursor(spool_t *s)
{
    char path[1100], line[64] = {0};
    snprintf(path, sizeof path, "%s/cursor", s->dir);
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (fgets(line, sizeof line, f)) {
        char *end;
        s->rseg = strtoull(line, &end, 16);
        s->roff = strtoull(end, NULL, 10);
    }
    fclose(f);
}

/* Segment numbers present in dir, sorted; caller frees. */
static int list_segments(const char *dir, uint64_t **out)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0, cap = 0;
    uint64_t *segs = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l != 20 || strcmp(e->d_name + 16, ".seg") != 0) continue;
        if (n == cap) segs = xrealloc(segs, (size_t)(cap = cap ? cap * 2 : 8) * sizeof *segs);
        segs[n++] = strtoull(e->d_name, NULL, 16);
    }
    closedir(d);
    for (int i = 1; i < n; i++)   /* insertion sort: a handful of segments */
        for (int j = i; j > 0 && segs[j - 1] > segs[j]; j--) {
            uint64_t t = segs[j];
            segs[j] = segs[j - 1];
            segs[j - 1] = t;
        }
    *out = segs;
    return n;
}

/* Counts the records of one segment from off, cutting a torn tail; returns the clean end. */
static long long scan_segment(spool_t *s, uint64_t seg, uint64_t off, int64_t *first_us)
{
    int fd = open_seg(s, seg, O_RDWR);
    if (fd < 0) return -1;
    buf_t body = BUF_INIT;
    long long n;
    while ((n = record_at(fd, off, &body)) > 0) {
        if (!*first_us) *first_us = (int64_t)be64((unsigned char *)body.data);
        off += (uint64_t)n;
        s->depth++;
    }
    if (n < 0 && ftruncate(fd, (off_t)off) != 0) off = (uint64_t)-1;
    if (fdatasync(fd) != 0) off = (uint64_t)-1;
    buf_free(&body);
    close(fd);
    return off == (uint64_t)-1 ? -1 : (long long)off;
}

static int recover(spool_t *s)
{
    uint64_t *segs = NULL;
    int n = list_segments(s->dir, &segs);
    if (n < 0) return -1;
    int rc = 0;
    s->wseg = s->rseg ? s->rseg : 1;
    s->wend = 0;
    int started = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char path[1100];
        if (segs[i] < s->rseg) {   /* consumed before a crash left it behind */
            seg_path(s, segs[i], path, sizeof path);
            unlink(path);
            continue;
        }
        if (!started && segs[i] > s->rseg) s->rseg = segs[i], s->roff = 0;
        started = 1;
        long long end = scan_segment(s, segs[i], segs[i] == s->rseg ? s->roff : 0, &s->oldest_us);
        if (end < 0) rc = -1;
        s->wseg = segs[i];
        s->wend = (uint64_t)end;
    }
    free(segs);
    if (!started) s->rseg = s->wseg, s->roff = 0;
    return rc;
}

int spool_open(const char *dir, spool_t **out, char *err, size_t errlen)
{
    spool_t *s = xcalloc(1, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    s->wfd = s->rfd = -1;
    if (mkdirs(dir)) {
        snprintf(err, errlen, "cannot create spool %s: %s", dir, strerror(errno));
        free(s);
        return -1;
    }
    read_cursor(s);
    if (recover(s)) {
        snprintf(err, errlen, "cannot recover spool %s: %s", dir, strerror(errno));
        free(s);
        return -1;
    }
    s->wfd = open_seg(s, s->wseg, O_WRONLY | O_CREAT);
    s->rfd = open_seg(s, s->rseg, O_RDONLY | O_CREAT);
    if (s->wfd < 0 || s->rfd < 0 || write_cursor(s)) {
        snprintf(err, errlen, "cannot open spool %s: %s", dir, strerror(errno));
        spool_close(s);
        return -1;
    }
    s->synced_seg = s->wseg;
    s->synced_end = s->wend;
    *out = s;
    return 0;
}

void spool_close(spool_t *s)
{
    if (!s) return;
    if (s->wfd >= 0) close(s->wfd);
    if (s->rfd >= 0) close(s->rfd);
    free(s);
}

/* A new segment for appends, once everything in the current one is durable. */
static int roll(spool_t *s)
{
    int fd = open_seg(s, s->wseg + 1, O_WRONLY | O_CREAT | O_TRUNC);
    if (fd < 0) return -1;
    close(s->wfd);
    s->wfd = fd;
    s->wseg++;
    s->wend = 0;
    s->synced_seg = s->wseg;
    s->synced_end = 0;
    return 0;
}

int spool_append(spool_t *s, int64_t received_us, const char *topic, const void *payload,
                 size_t len)
{
    size_t tlen = strlen(topic);
    if (len > SPOOL_MAX_RECORD || tlen > 65535) {
        errno = EMSGSIZE;
        return -1;
    }
    if (s->wend >= SEGMENT_ROLL_BYTES && !s->syncing && !spool_pending(s) && roll(s)) return -1;
    buf_t b = BUF_INIT;
    buf_put_be32(&b, (uint32_t)(10 + tlen + len));
    buf_put_be32(&b, 0);
    buf_put_be64(&b, (uint64_t)received_us);
    buf_put_be16(&b, (uint16_t)tlen);
    buf_append(&b, topic, tlen);
    buf_append(&b, payload, len);
    uint32_t crc = spool_crc32(b.data + HEADER, b.len - HEADER);
    for (int i = 0; i < 4; i++) b.data[4 + i] = (char)(crc >> (24 - 8 * i));
    ssize_t n = pwrite(s->wfd, b.data, b.len, (off_t)s->wend);
    int rc = n == (ssize_t)b.len ? 0 : -1;
    if (rc == 0) {
        s->wend += b.len;
        if (!s->depth) s->oldest_us = received_us;
        s->depth++;
    } else if (n >= 0) {
        errno = ENOSPC;   /* a short write: the next append overwrites it */
    }
    buf_free(&b);
    return rc;
}

int spool_pending(const spool_t *s)
{
    return s->synced_seg != s->wseg || s->synced_end != s->wend;
}

int spool_sync_begin(spool_t *s)
{
    if (s->syncing || !spool_pending(s)) return -1;
    s->syncing = 1;
    s->sync_seg = s->wseg;
    s->sync_end = s->wend;
    return s->wfd;
}

void spool_sync_end(spool_t *s, int ok)
{
    s->syncing = 0;
    if (!ok) return;
    s->synced_seg = s->sync_seg;
    s->synced_end = s->sync_end;
}

/* Moves the reader to the next segment when the current one is finished. */
static int next_segment(spool_t *s)
{
    if (s->rseg >= s->wseg) return 0;
    struct stat st;
    if (fstat(s->rfd, &st) || (uint64_t)st.st_size > s->roff) return 0;
    int fd = open_seg(s, s->rseg + 1, O_RDONLY);
    if (fd < 0) return -1;
    char path[1100];
    seg_path(s, s->rseg, path, sizeof path);
    close(s->rfd);
    s->rfd = fd;
    s->rseg++;
    s->roff = 0;
    write_cursor(s);
    unlink(path);
    return 1;
}

static int durable(const spool_t *s, uint64_t seg, uint64_t end)
{
    return seg < s->synced_seg || (seg == s->synced_seg && end <= s->synced_end);
}

int spool_peek(spool_t *s, spool_rec_t *recs, int max)
{
    if (next_segment(s) < 0) return -1;
    if (max > PEEK_MAX) max = PEEK_MAX;
    buf_t body = BUF_INIT;
    uint64_t off = s->roff;
    int n = 0;
    while (n < max) {
        long long sz = record_at(s->rfd, off, &body);
        if (sz <= 0 || !durable(s, s->rseg, off + (uint64_t)sz)) break;
        const unsigned char *p = (const unsigned char *)body.data;
        size_t tlen = (size_t)p[8] << 8 | p[9];
        if (10 + tlen > body.len) break;
        spool_rec_t *r = &recs[n];
        r->received_us = (int64_t)be64(p);
        r->topic = xstrndup(body.data + 10, tlen);
        r->payload_len = body.len - 10 - tlen;
        r->payload = xstrndup(body.data + 10 + tlen, r->payload_len);
        off += (uint64_t)sz;
        s->peek_end[n++] = off;
    }
    buf_free(&body);
    s->npeek = n;
    if (n) s->oldest_us = recs[0].received_us;
    return n;
}

void spool_rec_free(spool_rec_t *r)
{
    free(r->topic);
    free(r->payload);
    r->topic = r->payload = NULL;
}

/* Receive time of the record at the cursor, 0 when there is none yet. */
static int64_t cursor_time(spool_t *s)
{
    unsigned char h[HEADER + 8];
    if (pread(s->rfd, h, sizeof h, (off_t)s->roff) != (ssize_t)sizeof h) return 0;
    return (int64_t)be64(h + HEADER);
}

int spool_consume(spool_t *s, int n)
{
    if (n <= 0) return 0;
    if (n > s->npeek) n = s->npeek;
    s->roff = s->peek_end[n - 1];
    s->depth -= (uint64_t)n;
    s->npeek = 0;
    int rc = write_cursor(s);
    if (!s->depth && s->rseg == s->wseg && s->wend >= (1u << 20) && !s->syncing &&
        !spool_pending(s) && roll(s) == 0)
        next_segment(s);
    s->oldest_us = s->depth ? cursor_time(s) : 0;
    return rc;
}

uint64_t spool_depth(const spool_t *s)
{
    return s->depth;
}

int64_t spool_oldest_us(const spool_t *s)
{
    return s->oldest_us;
}
