/* SPDX-License-Identifier: MIT */
/*
 * crash.c - durable topics against SIGKILL, in real processes.
 *
 * For each sync policy, a journal directory is used by one child process
 * after another.  Each child opens a bus on it, subscribes a durable
 * subscription (two workers, per-key order), publishes keyed messages
 * from three threads (every 8th delayed by up to 19 ms, so that some
 * are still to come due at the kill; every 16th the first of an atomic
 * batch of 3), and reports on a pipe every publish that returned 0
 * ("a") and every message its handler saw ("h"), with any fault it
 * found (a payload not as published, a key's messages out of order).
 * The parent kills it with SIGKILL at a random moment, then starts the
 * next.  After CRASH_KILLS kills (default 20) a last child only drains,
 * and closes cleanly.  Then the parent proves: every publish that
 * returned 0 was handled at least once, in some run; no message was
 * handled that was never published; no batch was handled in part; no
 * child saw a damaged payload or a key out of order.  `make crash` runs it; `make check` runs 3 kills a
 * policy, `.ci/run` 20.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "weir.h"

enum {
    THREADS = 3,
    KEYS = 5,
    MAX_RUNS = 64,
    MAX_SEQ = 1 << 16,
    TAGS = MAX_RUNS * THREADS * MAX_SEQ,
};

/* What a payload carries: its tag, then bytes derived from it. */
typedef struct head {
    uint32_t run, thread, seq;
} head;

static int report_fd;
static unsigned run_no;

static void
report(char what, const head *h)
{
    char line[48];
    int n = snprintf(line, sizeof(line), "%c %u %u %u\n", what, h->run,
                     h->thread, h->seq);
    /* One write of under PIPE_BUF bytes: whole, whatever the threads. */
    if (write(report_fd, line, (size_t)n) != n)
        _exit(9);
}

static size_t
payload(unsigned char *p, const head *h)
{
    size_t len = sizeof(*h) + (h->seq * 7 + h->thread) % 200;
    memcpy(p, h, sizeof(*h));
    for (size_t i = sizeof(*h); i < len; i++)
        p[i] = (unsigned char)(h->seq * 31 + h->thread + i);
    return len;
}

/* Every 8th message is published with a delay of up to 19 ms. */
static bool
delayed(uint32_t seq)
{
    return seq % 8 == 7;
}

/* Every 16th message begins an atomic batch of BATCH_SIZE. */
enum { BATCH_EVERY = 16, BATCH_SIZE = 3 };

static bool
batch_first(uint32_t seq)
{
    return seq % BATCH_EVERY == 0 && seq + BATCH_SIZE <= MAX_SEQ;
}

/* The first message of the batch seq belongs to, or UINT32_MAX. */
static uint32_t
batch_of(uint32_t seq)
{
    uint32_t first = seq - seq % BATCH_EVERY;
    return batch_first(first) && seq - first < BATCH_SIZE ? first
                                                          : UINT32_MAX;
}

/* Per run, thread and key: the last sequence handled (order check). */
static _Atomic uint32_t last_seq[MAX_RUNS][THREADS][KEYS];

static int
handler(const weir_msg *m, void *ctx)
{
    (void)ctx;
    head h;
    unsigned char want[256];
    size_t n = weir_msg_size(m);
    if (n < sizeof(h)) {
        report('x', &(head){ 0, 0, 0 });
        return 0;
    }
    memcpy(&h, weir_msg_data(m), sizeof(h));
    char key[24];
    snprintf(key, sizeof(key), "r%u.t%u.%u", h.run, h.thread,
             h.seq % KEYS);
    if (h.run >= MAX_RUNS || h.thread >= THREADS || h.seq >= MAX_SEQ ||
        payload(want, &h) != n || memcmp(want, weir_msg_data(m), n) != 0 ||
        weir_msg_key(m) == NULL || strcmp(weir_msg_key(m), key) != 0) {
        report('x', &h);
        return 0;
    }
    /*
     * In this run, a key's messages come in publish order; a delayed
     * one comes when due, in no order.
     */
    if (delayed(h.seq)) {
        report('h', &h);
        return 0;
    }
    _Atomic uint32_t *last = &last_seq[h.run][h.thread][h.seq % KEYS];
    uint32_t prev = atomic_load(last);
    if (prev != 0 && h.seq + 1 <= prev)
        report('o', &h);
    atomic_store(last, h.seq + 1);
    report('h', &h);
    return 0;
}

typedef struct pub_arg {
    weir_bus *bus;
    weir_topic *topic;
    uint32_t thread;
} pub_arg;

/* The batch of messages first .. first + BATCH_SIZE - 1: reported if 0. */
static void
publish_batch(const pub_arg *a, uint32_t first)
{
    weir_batch *b;
    if (weir_batch_begin(a->bus, &b) != 0)
        return;
    unsigned char p[256];
    for (uint32_t seq = first; seq < first + BATCH_SIZE; seq++) {
        head h = { run_no, a->thread, seq };
        char key[24];
        snprintf(key, sizeof(key), "r%u.t%u.%u", h.run, h.thread,
                 seq % KEYS);
        weir_pub_opts o = { .key = key };
        if (weir_batch_publish(b, "orders", p, payload(p, &h), &o) != 0) {
            weir_batch_abort(b);
            return;
        }
    }
    if (weir_batch_commit(b, WEIR_FOREVER) == 0)
        for (uint32_t seq = first; seq < first + BATCH_SIZE; seq++)
            report('a', &(head){ run_no, a->thread, seq });
}

static void *
publisher(void *arg)
{
    pub_arg *a = arg;
    unsigned char p[256];
    for (uint32_t seq = 0; seq < MAX_SEQ; seq++) {
        if (batch_first(seq)) {
            publish_batch(a, seq);
            seq += BATCH_SIZE - 1;
            continue;
        }
        head h = { run_no, a->thread, seq };
        char key[24];
        snprintf(key, sizeof(key), "r%u.t%u.%u", h.run, h.thread,
                 seq % KEYS);
        weir_pub_opts o = { .key = key };
        if (delayed(seq))
            o.delay_ns = (int64_t)(seq % 20) * WEIR_MSEC;
        if (weir_topic_publish(a->topic, p, payload(p, &h), &o) == 0)
            report('a', &h);
    }
    return NULL;
}

/* A child: open, subscribe, publish (unless drain), until killed. */
static int
child(const char *dir, weir_sync sync, bool drain)
{
    weir_bus_opts o = { .journal_dir = dir, .journal_sync = sync };
    weir_bus *bus;
    weir_topic *t;
    int rc = weir_bus_create(&bus, &o);
    if (rc == 0)
        rc = weir_bus_durable_topic(bus, "orders", &t);
    weir_sub_opts so = { .name = "billing", .durable = true, .workers = 2,
                         .ordered_by_key = true };
    if (rc == 0)
        rc = weir_bus_subscribe(bus, "orders", handler, NULL, &so, NULL);
    if (rc != 0) {
        fprintf(stderr, "crash child: %s\n", weir_strerror(rc));
        return 2;
    }
    if (drain) {
        rc = weir_bus_close(bus, 60 * WEIR_SEC);
        weir_bus_destroy(bus);
        return rc == 0 ? 0 : 3;
    }
    pthread_t th[THREADS];
    pub_arg args[THREADS];
    for (uint32_t i = 0; i < THREADS; i++) {
        args[i] = (pub_arg){ bus, t, i };
        pthread_create(&th[i], NULL, publisher, &args[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pause();
    return 0;
}

static uint8_t *accepted, *handled;

static size_t
tag_of(const head *h)
{
    return ((size_t)h->run * THREADS + h->thread) * MAX_SEQ + h->seq;
}

/* Run one child; kill it after kill_ms (0: let it end).  Faults found. */
static unsigned
run_child(const char *dir, weir_sync sync, unsigned run, unsigned kill_ms)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 1;
    fflush(stdout); /* the child must not print it again */
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        close(fds[0]);
        report_fd = fds[1];
        run_no = run;
        _exit(child(dir, sync, kill_ms == 0));
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    unsigned faults = 0;
    char what;
    head h;
    bool killed = kill_ms == 0;
    /*
     * Killed kill_ms after its first publish returned, so that a slow
     * start (a sanitizer's) is not all a run does.
     */
    while (in != NULL &&
           fscanf(in, " %c %u %u %u", &what, &h.run, &h.thread, &h.seq) ==
               4) {
        if (!killed && what == 'a') {
            struct timespec ts = { kill_ms / 1000,
                                   (long)(kill_ms % 1000) * 1000000 };
            nanosleep(&ts, NULL);
            kill(pid, SIGKILL);
            killed = true;
        }
        if (h.run >= MAX_RUNS || h.thread >= THREADS || h.seq >= MAX_SEQ) {
            faults++;
            continue;
        }
        size_t tag = tag_of(&h);
        if (what == 'a') {
            accepted[tag / 8] |= (uint8_t)(1u << (tag % 8));
        } else if (what == 'h') {
            handled[tag / 8] |= (uint8_t)(1u << (tag % 8));
        } else {
            fprintf(stderr, "crash: run %u: %s run %u thread %u seq %u\n",
                    run, what == 'o' ? "out of key order" : "bad payload",
                    h.run, h.thread, h.seq);
            faults++;
        }
    }
    if (in != NULL)
        fclose(in);
    if (!killed)
        kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    if (kill_ms == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        fprintf(stderr, "crash: the draining child failed (%d)\n", status);
        faults++;
    }
    return faults;
}

int
main(void)
{
    const char *env = getenv("CRASH_KILLS");
    unsigned kills = env != NULL ? (unsigned)atoi(env) : 20;
    if (kills + 1 > MAX_RUNS)
        kills = MAX_RUNS - 1;
    accepted = calloc(TAGS / 8, 1);
    handled = calloc(TAGS / 8, 1);
    if (accepted == NULL || handled == NULL)
        return 2;
    unsigned seed = (unsigned)time(NULL);
    const char *names[] = { "BATCH", "EVERY", "NONE" };
    unsigned faults = 0;
    for (int p = WEIR_SYNC_BATCH; p <= WEIR_SYNC_NONE; p++) {
        char dir[] = "/tmp/weir-crash-XXXXXX";
        if (mkdtemp(dir) == NULL)
            return 2;
        memset(accepted, 0, TAGS / 8);
        memset(handled, 0, TAGS / 8);
        for (unsigned run = 0; run < kills; run++)
            faults += run_child(dir, (weir_sync)p, run,
                                5 + (unsigned)rand_r(&seed) % 60);
        faults += run_child(dir, (weir_sync)p, kills, 0);
        uint64_t acc = 0, lost = 0, invented = 0;
        for (size_t i = 0; i < TAGS / 8; i++) {
            acc += (uint64_t)__builtin_popcount(accepted[i]);
            lost += (uint64_t)__builtin_popcount(accepted[i] & ~handled[i]);
        }
        /*
         * Handled but never reported accepted: a publish the kill cut
         * short after it reached the journal (at most one per publisher
         * thread and run, the one after its last accepted), or invented.
         */
        uint64_t cut = 0, torn = 0;
        for (unsigned run = 0; run <= kills; run++)
            for (uint32_t t = 0; t < THREADS; t++) {
                size_t base = tag_of(&(head){ run, t, 0 });
                uint32_t next = 0, extra = 0, in_batch = 0;
                for (uint32_t q = 0; q < MAX_SEQ; q++) {
                    size_t g = base + q;
                    bool a = accepted[g / 8] >> (g % 8) & 1;
                    bool h = handled[g / 8] >> (g % 8) & 1;
                    if (a)
                        next = q + 1;
                    /*
                     * The kill may cut a batch's reports short anywhere
                     * from its first.
                     */
                    uint32_t first = batch_of(q);
                    if (h && !a)
                        extra++, cut += q == next ||
                                        (first != UINT32_MAX &&
                                         first <= next && next <= q);
                    /* A batch is handled all or not at all. */
                    in_batch += first != UINT32_MAX && h;
                    if (first != UINT32_MAX &&
                        q == first + BATCH_SIZE - 1) {
                        torn += in_batch != 0 && in_batch != BATCH_SIZE;
                        in_batch = 0;
                    }
                }
                invented += extra;
            }
        invented -= cut;
        printf("crash %s: %u kills, %llu publishes accepted, %llu lost, "
               "%llu invented, %llu batches torn, %llu handled whose "
               "report the kill cut short\n",
               names[p], kills, (unsigned long long)acc,
               (unsigned long long)lost, (unsigned long long)invented,
               (unsigned long long)torn, (unsigned long long)cut);
        faults += (unsigned)(lost + invented + torn);
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0)
            faults++;
    }
    free(accepted);
    free(handled);
    return faults == 0 ? 0 : 1;
}
