/* SPDX-License-Identifier: MIT */
/*
 * bench/journal.c - durable topics next to the disk's own floor and to
 * SQLite.  Usage: journal IMPL CASE COUNT, with WEIR_BENCH_DIR naming a
 * directory (emptied before the run and removed after it) on the
 * filesystem measured; bench/suite-journal.sh drives it.
 *
 * CASE pub1, pub4: COUNT 256-byte messages in all, written by 1 or 4
 * threads (COUNT / 4 each), one after another, each waited for as IMPL
 * makes it durable.  The span runs from the threads' common start line
 * to the last one's end.  Prints messages/s over the span, then the p50
 * and p99 of each write's own latency (clock read before and after the
 * call), ns.  IMPL:
 *   weir-batch, weir-every, weir-none  weir_topic_publish on a handle of
 *            weir_bus_durable_topic, journal_sync BATCH, EVERY or NONE,
 *            with one durable subscription (1 worker, default options)
 *            whose handler returns 0, so every message is acknowledged
 *            and the journal trimmed as it would be in use.  After the
 *            span, weir_bus_close drains it (not timed) and its
 *            statistics must show every message acked.
 *   weir-none-nosub, weir-batch-nosub, weir-every-nosub  that policy
 *            with no subscription at all: the journal's write (and sync)
 *            alone, no feeder or worker sharing the CPUs, none to wake.
 *   sync     write(2) of 256 bytes then fdatasync, in a loop: one
 *            fdatasync per message.  Each thread its own file and fd.
 *   sync-shared  the same with the 4 threads sharing one fd (pub4 only):
 *            one file, as weir's journal is.
 *   sync-over  sync over a file written and synced to its full size
 *            before the span: fdatasync then has no file size to make
 *            durable, as when a log reuses or preallocates its space
 *            (SQLite's WAL is overwritten from its start after each
 *            checkpoint).
 *   write    write(2) alone, each thread its own file: the cost of the
 *            system call with nothing made durable.
 *   sqlite-full, sqlite-normal  SQLite in WAL mode, one INSERT of a
 *            256-byte blob (id INTEGER PRIMARY KEY) per transaction
 *            (autocommit), synchronous=FULL or NORMAL; one connection
 *            per thread, busy_timeout 10 s, a statement prepared once.
 *
 * CASE reopen, IMPL weir-reopen: first (not timed) a journal of COUNT
 * unacknowledged messages: a bus with journal_sync NONE, a durable
 * subscription made and closed at once (so it keeps its place and is
 * handed nothing), COUNT 256-byte publishes, weir_bus_close, and sync(2)
 * so that no writeback runs meanwhile.  Then, timed: weir_bus_create on
 * the directory, and weir_bus_subscribe of the same durable subscription
 * until its handler is called with the first message (redelivered).
 * Prints ns to the end of weir_bus_create, ns to that first handler
 * call, and the set-up's publishes per second.  The handler then blocks
 * until the subscription is closed with WEIR_NOWAIT, so only a message
 * or two is acknowledged before the directory is removed.
 */
/* fdatasync, sync, DT_DIR: bench/run compiles with -D_GNU_SOURCE. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>
#include <weir/bus.h>

#include "common.h"

#define TOPIC "bench.journal"
#define SUB_NAME "bench-reader"
#define BYTES 256
#define PATH_LEN 4096

enum how { WEIR_PUB, FLOOR_SYNC, FLOOR_WRITE, SQLITE, REOPEN };

struct impl {
    const char *name;
    enum how how;
    weir_sync sync;      /* WEIR_PUB */
    bool sub;            /* WEIR_PUB: with a durable subscription */
    bool shared;         /* FLOOR_SYNC: one fd for every thread */
    bool over;           /* FLOOR_SYNC: overwrite a file written before */
    bool full;           /* SQLITE: synchronous=FULL, else NORMAL */
};

static const struct impl impls[] = {
    { "weir-batch", WEIR_PUB, WEIR_SYNC_BATCH, true, false, false, false },
    { "weir-every", WEIR_PUB, WEIR_SYNC_EVERY, true, false, false, false },
    { "weir-batch-nosub", WEIR_PUB, WEIR_SYNC_BATCH, false, false, false,
      false },
    { "weir-every-nosub", WEIR_PUB, WEIR_SYNC_EVERY, false, false, false,
      false },
    { "weir-none", WEIR_PUB, WEIR_SYNC_NONE, true, false, false, false },
    { "weir-none-nosub", WEIR_PUB, WEIR_SYNC_NONE, false, false, false,
      false },
    { "sync", FLOOR_SYNC, 0, false, false, false, false },
    { "sync-shared", FLOOR_SYNC, 0, false, true, false, false },
    { "sync-over", FLOOR_SYNC, 0, false, false, true, false },
    { "write", FLOOR_WRITE, 0, false, false, false, false },
    { "sqlite-full", SQLITE, 0, false, false, false, true },
    { "sqlite-normal", SQLITE, 0, false, false, false, false },
    { "weir-reopen", REOPEN, 0, false, false, false, false },
};

static const char *const case_names[] = { "pub1", "pub4", "reopen", NULL };

static const char *dir; /* WEIR_BENCH_DIR */

/* --- the directory ------------------------------------------------------ */

/* Remove path and what is under it; a missing path is fine. */
static void
rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        if (errno == ENOTDIR)
            unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char sub[PATH_LEN];
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        if (e->d_type == DT_DIR)
            rm_tree(sub);
        else
            unlink(sub);
    }
    closedir(d);
    rmdir(path);
}

static void
path_in(char *buf, const char *name)
{
    snprintf(buf, PATH_LEN, "%s/%s", dir, name);
}

/* --- one timed run of up to 4 writers ----------------------------------- */

/*
 * A writer: n messages through write_one, each timed.  The struct is
 * padded so that writers' counters never share a line.
 */
struct writer {
    const struct impl *im;
    uint64_t n;
    uint64_t *lat;       /* n latencies, ns */
    int fd;              /* floors */
    weir_topic *topic;   /* weir */
    sqlite3 *db;         /* SQLite */
    sqlite3_stmt *ins;
    unsigned char payload[BYTES];
    char pad[64];
};

static void
write_one(struct writer *w, uint64_t i)
{
    int rc;
    switch (w->im->how) {
    case WEIR_PUB:
        if ((rc = weir_topic_publish(w->topic, w->payload, BYTES, NULL)))
            bench_fail("weir_topic_publish", rc);
        break;
    case FLOOR_SYNC:
    case FLOOR_WRITE:
        if (write(w->fd, w->payload, BYTES) != BYTES)
            bench_fail("write", errno);
        if (w->im->how == FLOOR_SYNC && fdatasync(w->fd) != 0)
            bench_fail("fdatasync", errno);
        break;
    case SQLITE:
        sqlite3_bind_blob(w->ins, 1, w->payload, BYTES, SQLITE_STATIC);
        if ((rc = sqlite3_step(w->ins)) != SQLITE_DONE)
            bench_fail("sqlite3_step", rc);
        sqlite3_reset(w->ins);
        break;
    case REOPEN:
        break;
    }
    (void)i;
}

static void *
writer_main(void *self)
{
    struct writer *w = bench_wait_go(self);
    if (w == NULL)
        return NULL;
    for (uint64_t i = 0; i < w->n; i++) {
        memcpy(w->payload, &i, sizeof(i)); /* each message differs */
        uint64_t t0 = bench_now_ns();
        write_one(w, i);
        w->lat[i] = bench_now_ns() - t0;
    }
    return NULL;
}

/* SQLite: the table, made by one connection before the run. */
static void
sqlite_prepare(void)
{
    char path[PATH_LEN];
    path_in(path, "bench.db");
    sqlite3 *db;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL;"
                          "CREATE TABLE m(id INTEGER PRIMARY KEY, body BLOB)",
                          NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        bench_fail("sqlite3 set-up", rc);
    sqlite3_close(db);
}

static void
sqlite_connect(struct writer *w)
{
    char path[PATH_LEN];
    path_in(path, "bench.db");
    /* One connection per thread: no mutex of SQLite's own is needed. */
    int rc = sqlite3_open_v2(path, &w->db, SQLITE_OPEN_READWRITE |
                             SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(w->db, 10000);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(w->db, w->im->full ? "PRAGMA synchronous=FULL"
                                             : "PRAGMA synchronous=NORMAL",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(w->db, "INSERT INTO m(body) VALUES(?)", -1,
                                &w->ins, NULL);
    if (rc != SQLITE_OK)
        bench_fail("sqlite3 connection", rc);
}

/* sync-over: the file's blocks and size, durable before the span. */
static void
prewrite(int fd, uint64_t n)
{
    unsigned char zero[BYTES] = { 0 };
    for (uint64_t i = 0; i < n; i++)
        if (write(fd, zero, BYTES) != BYTES)
            bench_fail("write", errno);
    if (fsync(fd) != 0 || lseek(fd, 0, SEEK_SET) != 0)
        bench_fail("fsync", errno);
}

static int
ack_handler(const weir_msg *m, void *ctx)
{
    (void)m;
    (void)ctx;
    return 0;
}

static uint64_t
percentile(const uint64_t *sorted, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static int
run_pub(const struct impl *im, unsigned threads, uint64_t count)
{
    struct writer *w = aligned_alloc(64, sizeof(*w) * threads);
    uint64_t per = count / threads;
    uint64_t *lat = malloc(sizeof(*lat) * per * threads);
    if (w == NULL || lat == NULL || per == 0)
        bench_fail("allocation", ENOMEM);
    memset(w, 0, sizeof(*w) * threads);

    weir_bus *bus = NULL;
    weir_sub *sub = NULL;
    weir_topic *topic = NULL;
    int rc, shared_fd = -1;
    if (im->how == WEIR_PUB) {
        char jdir[PATH_LEN];
        path_in(jdir, "journal");
        weir_bus_opts bo = { .journal_dir = jdir, .journal_sync = im->sync };
        if ((rc = weir_bus_create(&bus, &bo)) != 0)
            bench_fail("weir_bus_create", rc);
        weir_sub_opts so = { .name = SUB_NAME, .durable = true };
        if (im->sub && (rc = weir_bus_subscribe(bus, TOPIC, ack_handler,
                                                NULL, &so, &sub)) != 0)
            bench_fail("weir_bus_subscribe", rc);
        if ((rc = weir_bus_durable_topic(bus, TOPIC, &topic)) != 0)
            bench_fail("weir_bus_durable_topic", rc);
    } else if (im->how == SQLITE) {
        sqlite_prepare();
    }
    if (im->shared) {
        char path[PATH_LEN];
        path_in(path, "floor");
        shared_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                         0644);
        if (shared_fd < 0)
            bench_fail("open", errno);
    }

    struct bench_thread t[BENCH_MAX_THREADS];
    for (unsigned i = 0; i < threads; i++) {
        w[i].im = im;
        w[i].n = per;
        w[i].lat = lat + i * per;
        w[i].topic = topic;
        w[i].fd = shared_fd;
        if ((im->how == FLOOR_SYNC || im->how == FLOOR_WRITE) &&
            !im->shared) {
            char path[PATH_LEN], name[32];
            snprintf(name, sizeof(name), "floor%u", i);
            path_in(path, name);
            w[i].fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                           0644);
            if (w[i].fd < 0)
                bench_fail("open", errno);
            if (im->over)
                prewrite(w[i].fd, per);
        }
        if (im->how == SQLITE)
            sqlite_connect(&w[i]);
        t[i] = (struct bench_thread){ .fn = writer_main, .arg = &w[i],
                                      .cpu = -1 };
    }
    struct bench_span span;
    if ((rc = bench_run_threads(t, (int)threads, NULL, NULL, &span)) != 0)
        bench_fail("bench_run_threads", rc);
    uint64_t total = per * threads;

    int bad = 0;
    uint64_t syncs = 0;
    if (im->how == WEIR_PUB) {
        if ((rc = weir_bus_close(bus, WEIR_FOREVER)) != 0)
            bench_fail("weir_bus_close", rc);
        weir_bus_stats bs;
        weir_bus_get_stats(bus, &bs);
        syncs = bs.journal_syncs;
        weir_sub_stats ss = { 0 };
        if (sub != NULL)
            weir_sub_get_stats(sub, &ss);
        if (bs.published != total || (sub != NULL && ss.acked != total)) {
            fprintf(stderr, "bench: %" PRIu64 " published, %" PRIu64
                    " acked of %" PRIu64 "\n", bs.published, ss.acked,
                    total);
            bad = 1;
        }
        weir_bus_destroy(bus);
    }
    for (unsigned i = 0; i < threads; i++) {
        if (w[i].fd >= 0 && w[i].fd != shared_fd)
            close(w[i].fd);
        if (w[i].db != NULL) {
            sqlite3_finalize(w[i].ins);
            sqlite3_close(w[i].db);
        }
    }
    if (shared_fd >= 0)
        close(shared_fd);

    bench_sort_u64(lat, total);
    if (!bad)
        printf("%.0f %" PRIu64 " %" PRIu64, (double)total * 1e9 /
               (double)span.ns, percentile(lat, total, 0.50),
               percentile(lat, total, 0.99));
    /* weir: how many publishes each fdatasync served (group commit). */
    if (!bad && im->how == WEIR_PUB && im->sync != WEIR_SYNC_NONE &&
        syncs > 0)
        printf(" %.2f", (double)total / (double)syncs);
    if (!bad)
        printf("\n");
    free(lat);
    free(w);
    return bad;
}

/* --- reopen ------------------------------------------------------------- */

/*
 * The reopened subscription's handler: notes the first call, then holds
 * every call until released, so the journal keeps what it holds.
 */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t first_ns;   /* 0 until the first call; guarded by mu */
    bool redelivered;
    bool released;
};

static int
hold_handler(const weir_msg *m, void *ctx)
{
    struct gate *g = ctx;
    uint64_t now = bench_now_ns();
    pthread_mutex_lock(&g->mu);
    if (g->first_ns == 0) {
        g->first_ns = now;
        g->redelivered = weir_msg_redelivered(m);
        pthread_cond_broadcast(&g->cv);
    }
    while (!g->released)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

static int
run_reopen(uint64_t count)
{
    char jdir[PATH_LEN];
    path_in(jdir, "journal");
    weir_bus_opts bo = { .journal_dir = jdir,
                         .journal_sync = WEIR_SYNC_NONE };
    weir_sub_opts so = { .name = SUB_NAME, .durable = true };
    struct gate g = { .first_ns = 0 };
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    weir_bus *bus;
    weir_sub *sub;
    weir_topic *topic;
    int rc;

    /* The journal: COUNT messages its subscription has not seen. */
    if ((rc = weir_bus_create(&bus, &bo)) != 0)
        bench_fail("weir_bus_create", rc);
    if ((rc = weir_bus_subscribe(bus, TOPIC, hold_handler, &g, &so,
                                 &sub)) != 0)
        bench_fail("weir_bus_subscribe", rc);
    if ((rc = weir_sub_close(sub, WEIR_FOREVER)) != 0)
        bench_fail("weir_sub_close", rc);
    if ((rc = weir_bus_durable_topic(bus, TOPIC, &topic)) != 0)
        bench_fail("weir_bus_durable_topic", rc);
    unsigned char payload[BYTES] = { 0 };
    uint64_t s0 = bench_now_ns();
    for (uint64_t i = 0; i < count; i++) {
        memcpy(payload, &i, sizeof(i));
        if ((rc = weir_topic_publish(topic, payload, BYTES, NULL)) != 0)
            bench_fail("weir_topic_publish", rc);
    }
    uint64_t s1 = bench_now_ns();
    if ((rc = weir_bus_close(bus, WEIR_FOREVER)) != 0)
        bench_fail("weir_bus_close", rc);
    weir_bus_destroy(bus);
    /* Writeback would otherwise share the disk with the timed part. */
    sync();

    uint64_t t0 = bench_now_ns();
    if ((rc = weir_bus_create(&bus, &bo)) != 0)
        bench_fail("weir_bus_create (reopen)", rc);
    uint64_t t1 = bench_now_ns();
    if ((rc = weir_bus_subscribe(bus, TOPIC, hold_handler, &g, &so,
                                 &sub)) != 0)
        bench_fail("weir_bus_subscribe (reopen)", rc);
    pthread_mutex_lock(&g.mu);
    while (g.first_ns == 0)
        pthread_cond_wait(&g.cv, &g.mu);
    uint64_t t2 = g.first_ns;
    bool redelivered = g.redelivered;
    g.released = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);

    weir_bus_stats bs;
    weir_bus_get_stats(bus, &bs);
    /* NOWAIT: what is queued stays unacknowledged; the bus hands out
     * nothing more at its close, the subscription being gone. */
    rc = weir_sub_close(sub, WEIR_NOWAIT);
    if (rc != 0 && rc != WEIR_ETIMEDOUT)
        bench_fail("weir_sub_close (reopen)", rc);
    if ((rc = weir_bus_close(bus, WEIR_FOREVER)) != 0)
        bench_fail("weir_bus_close (reopen)", rc);
    weir_bus_destroy(bus);
    if (!redelivered || bs.journal_recovered < count) {
        fprintf(stderr, "bench: %" PRIu64 " records read back of %" PRIu64
                ", first redelivered %d\n", bs.journal_recovered, count,
                redelivered);
        return 1;
    }
    printf("%" PRIu64 " %" PRIu64 " %.0f\n", t1 - t0, t2 - t0,
           (double)count * 1e9 / (double)(s1 - s0));
    return 0;
}

int
main(int argc, char **argv)
{
    struct bench_cli cli = { .impls = impls,
        .nimpls = sizeof(impls) / sizeof(impls[0]),
        .impl_size = sizeof(impls[0]), .cases = case_names,
        .case_help = "pub1 pub4 reopen (COUNT: messages in all)" };
    if (bench_cli_parse(&cli, argc, argv) != 0)
        return 2;
    const struct impl *im = &impls[cli.impl];
    if ((cli.kase == 2) != (im->how == REOPEN) ||
        (im->shared && cli.kase != 1))
        return bench_cli_usage(&cli);
    dir = getenv("WEIR_BENCH_DIR");
    if (dir == NULL || dir[0] == '\0' || strlen(dir) > PATH_LEN - 64) {
        fprintf(stderr, "bench: set WEIR_BENCH_DIR to a directory\n");
        return 2;
    }
    rm_tree(dir);
    if (mkdir(dir, 0777) != 0)
        bench_fail("mkdir WEIR_BENCH_DIR", errno);
    int rc = im->how == REOPEN ? run_reopen(cli.count)
                               : run_pub(im, cli.kase == 1 ? 4 : 1,
                                         cli.count);
    rm_tree(dir);
    return rc;
}
