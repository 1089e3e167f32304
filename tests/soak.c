/* SPDX-License-Identifier: MIT */
/*
 * soak.c - weir's bus under a random mix for WEIR_SOAK_SECONDS (default
 * 60), round after round: publishers on several threads (plain, keyed,
 * delayed and batched publishes), subscriptions with random options
 * (workers, capacity, every overflow policy, rate limits, retries with
 * backoff, dead letters, per-key order, duplicate suppression) opened
 * and closed while they run, handlers that fail, are slow, or forward
 * to the next topic, and a bus closed (with time to drain) and made anew
 * each round.
 *
 * Every message carries a tag of its own in its payload, so the soak
 * keeps its own books, apart from the library's.  After each close it
 * proves:
 *   - each subscription's statistics balance, nothing is left queued or
 *     in flight, and its handler finished as many messages as its books
 *     say, none of them twice;
 *   - a subscription that lived the whole round, with no policy that
 *     may drop or skip, finished every message published to its topic
 *     with success (return 0; to a durable topic, only the durable
 *     subscriptions are promised it): none lost;
 *   - every message a handler saw was published to that topic, with the
 *     payload it was published with: none invented;
 *   - with ordered_by_key, each publisher's keyed messages were handled
 *     in publish order;
 *   - the bus's published count equals the publishes the soak saw
 *     accepted, and the dead-letter topic got exactly the messages the
 *     subscriptions dead-lettered;
 *   - memory comes back: every block the library allocated (counted
 *     through weir_set_allocator) is freed by each round's destroy, and
 *     resident memory after the last round is within a bound of the
 *     8th's (plain builds of 16 rounds or more; sanitized builds have
 *     LSan).
 * A watchdog thread fails the run, printing every open subscription's
 * statistics, if nothing moves for 10 s.  `make soak` runs it; `make
 * check` runs a few seconds of it.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weir.h"

enum {
    TOPICS = 4,
    SUBS_MAX = 64,
    PUBLISHERS = 3,
    KEYS = 8,         /* keys per publisher */
    TAGS = 1 << 22,   /* messages a round may tag */
    FIRST_SUBS = 6,   /* subscribed before the publishers start */
    KEPT = 3,         /* of those, never closed before the bus */
    STUCK_SECONDS = 10,
    WARM_ROUNDS = 8,  /* rounds before memory is compared with itself */
};

/* Flags of a tag, beside its topic (the low two bits). */
enum {
    TAG_USED = 0x04,    /* allocated: a publish of it was tried */
    TAG_DURABLE = 0x08, /* to a durable topic: 0 says the journal took it,
                           whatever a subscription in memory did */
    TAG_LATER = 0x40,   /* delayed (routed when due, to whom the topic has
                           then) or batched: not counted one by one */
    TAG_WHOLE = 0x80,   /* the publish returned 0: every subscription of
                           the topic at the time took it */
};

/* What every payload starts with; the rest is the tag's low byte. */
typedef struct head {
    uint32_t tag;
    uint16_t pub; /* PUBLISHERS: a forward, no key */
    uint16_t key;
    uint32_t kseq; /* per publisher and key, in publish order */
} head;

typedef struct sub_state {
    weir_sub *sub;
    weir_sub_opts opts;
    bool slow, forwards, first;
    int topic;
    _Atomic uint64_t finished; /* handler calls that ended a message */
    _Atomic uint8_t *seen;     /* a bit per tag: finished */
    _Atomic uint32_t last_kseq[PUBLISHERS][KEYS];
    weir_sub_stats final;
    bool closing;              /* close begun: no stats read by others */
    bool closed;               /* final holds its close's statistics */
} sub_state;

static weir_bus *bus;
static bool journaled;       /* this round's bus has a journal */
static _Atomic bool topic_durable[TOPICS]; /* set before it may be */
static char journal_dir[64];
static sub_state subs[SUBS_MAX];
static _Atomic int nsubs;
static _Atomic bool stop;
static _Atomic uint64_t progress, published_seen, delayed_seen;
static _Atomic uint64_t handled_total, published_total, proven;
static _Atomic uint64_t durable_handled;
static _Atomic uint64_t twice, invented, out_of_order;
static _Atomic uint64_t dead_count;
static _Atomic uint32_t next_tag;
static _Atomic uint8_t tag_flags[TAGS];
static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *const names[TOPICS] = { "t0", "t1", "t2", "t3" };

/*
 * The library's allocations, counted through its allocator hook: every
 * block it holds is given back by weir_bus_destroy, round after round.
 */
static _Atomic long live_blocks;

static void *
count_malloc(size_t n, void *ctx)
{
    (void)ctx;
    void *p = malloc(n);
    if (p != NULL)
        atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return p;
}

static void *
count_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    void *q = realloc(p, n);
    if (q != NULL && p == NULL)
        atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return q;
}

static void
count_free(void *p, void *ctx)
{
    (void)ctx;
    if (p != NULL)
        atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
    free(p);
}

static void *
count_aligned(size_t align, size_t n, void *ctx)
{
    (void)ctx;
    void *p = aligned_alloc(align, n);
    if (p != NULL)
        atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return p;
}

static uint64_t
rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void
moved(void)
{
    atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
}

/* A new tag for topic t, or UINT32_MAX when the round has used them all. */
static uint32_t
tag_new(int t, uint8_t flags)
{
    uint32_t tag = atomic_fetch_add(&next_tag, 1);
    if (tag >= TAGS)
        return UINT32_MAX;
    if (atomic_load(&topic_durable[t]))
        flags |= TAG_DURABLE;
    atomic_store(&tag_flags[tag], (uint8_t)(t | TAG_USED | flags));
    return tag;
}

static size_t
payload_make(unsigned char *p, size_t len, const head *h)
{
    memcpy(p, h, sizeof(*h));
    memset(p + sizeof(*h), (int)(h->tag & 0xff), len - sizeof(*h));
    return len;
}

/* The bus counts a publish (an id taken) unless it was refused whole. */
static bool
counts_published(int rc)
{
    return rc == 0 || rc == WEIR_EAGAIN || rc == WEIR_ETIMEDOUT ||
           rc == WEIR_EDEADLK;
}

/* Reads the head of m; false if m was never published as it is. */
static bool
payload_check(const weir_msg *m, head *h)
{
    size_t n = weir_msg_size(m);
    const unsigned char *p = weir_msg_data(m);
    if (n < sizeof(*h))
        return false;
    memcpy(h, p, sizeof(*h));
    if (h->tag >= TAGS || h->tag >= atomic_load(&next_tag))
        return false;
    for (size_t i = sizeof(*h); i < n; i++)
        if (p[i] != (unsigned char)(h->tag & 0xff))
            return false;
    return h->pub <= PUBLISHERS && (h->pub == PUBLISHERS || h->key < KEYS);
}

/*
 * Per topic, what the soak saw: single publishes the bus counted (and
 * so every subscription there all round routed or rejected once), and
 * delayed or batched messages, routed or rejected by some later or
 * never.  Delays and batches go to the last two topics only, so that
 * the first two keep an exact count.
 */
typedef struct topic_count {
    _Atomic uint64_t single, later;
} topic_count;

static topic_count counts[TOPICS];

static void
count_single(int t, int rc)
{
    if (counts_published(rc)) {
        atomic_fetch_add(&published_seen, 1);
        atomic_fetch_add(&counts[t].single, 1);
    }
}

static void
forward(const sub_state *s, size_t size)
{
    int t = s->topic + 1;
    uint32_t tag = tag_new(t, 0);
    if (tag == UINT32_MAX)
        return;
    unsigned char p[64];
    head h = { .tag = tag, .pub = PUBLISHERS };
    int rc = weir_bus_publish(bus, names[t], p, payload_make(p, size, &h),
                              NULL);
    if (rc == 0)
        atomic_fetch_or(&tag_flags[tag], TAG_WHOLE);
    count_single(t, rc);
}

static int
handler(const weir_msg *m, void *ctx)
{
    sub_state *s = ctx;
    head h;
    moved();
    if (!payload_check(m, &h) ||
        (atomic_load(&tag_flags[h.tag]) & 3) != s->topic) {
        atomic_fetch_add(&invented, 1);
        return 0;
    }
    bool keyed = weir_msg_key(m) != NULL;
    if (s->opts.ordered_by_key && keyed) {
        _Atomic uint32_t *last = &s->last_kseq[h.pub][h.key];
        if (h.kseq < atomic_load(last))
            atomic_fetch_add(&out_of_order, 1);
        atomic_store(last, h.kseq);
    }
    uint64_t x = (uint64_t)h.tag * 0x9E3779B97F4A7C15ull +
                 weir_msg_attempt(m);
    int rc = rnd(&x) % 8 == 0 ? -1 : 0;
    if (s->slow && rnd(&x) % 64 == 0) {
        struct timespec ts = { 0, 100000 };
        nanosleep(&ts, NULL);
    }
    if (s->forwards && rc == 0 && s->topic + 1 < TOPICS)
        forward(s, weir_msg_size(m));
    unsigned max = s->opts.max_attempts == 0 ? 1 : s->opts.max_attempts;
    if (rc == 0 || weir_msg_attempt(m) >= max) {
        atomic_fetch_add(&s->finished, 1);
        uint8_t bit = (uint8_t)(1u << (h.tag % 8));
        if (atomic_fetch_or(&s->seen[h.tag / 8], bit) & bit)
            atomic_fetch_add(&twice, 1);
        atomic_fetch_add_explicit(&handled_total, 1, memory_order_relaxed);
    }
    return rc;
}

static int
dead_handler(const weir_msg *m, void *ctx)
{
    (void)ctx;
    head h;
    moved();
    if (!payload_check(m, &h) || weir_msg_origin_topic(m) == NULL)
        atomic_fetch_add(&invented, 1);
    atomic_fetch_add(&dead_count, 1);
    return 0;
}

static void
subscribe_random(uint64_t *x, bool first)
{
    int i = atomic_load(&nsubs);
    if (i == SUBS_MAX)
        return;
    sub_state *s = &subs[i];
    _Atomic uint8_t *seen = s->seen;
    memset(s, 0, sizeof(*s));
    s->seen = seen;
    memset((void *)s->seen, 0, TAGS / 8);
    s->first = first;
    s->topic = (int)(rnd(x) % TOPICS);
    s->slow = rnd(x) % 4 == 0;
    s->forwards = rnd(x) % 2 == 0;
    weir_sub_opts o = {
        .workers = 1 + (unsigned)(rnd(x) % 4),
        .capacity = 1 + rnd(x) % 256,
        .overflow = (weir_overflow)(rnd(x) % 4),
        .max_attempts = 1 + (unsigned)(rnd(x) % 3),
        .retry_backoff_ns = 1 + (int64_t)(rnd(x) % WEIR_MSEC),
        .ordered_by_key = rnd(x) % 3 == 0,
    };
    if (rnd(x) % 4 == 0)
        o.rate_per_sec = 50000, o.burst = 64;
    if (rnd(x) % 3 == 0)
        o.dead_letter_topic = "dead";
    if (rnd(x) % 5 == 0)
        o.dedup_window_ns = (int64_t)(rnd(x) % (10 * WEIR_MSEC)),
        o.dedup_max_keys = 1 + rnd(x) % 32;
    /* A forwarding stage never blocks on a full BLOCK queue downstream. */
    if (s->forwards && o.overflow == WEIR_OVERFLOW_BLOCK)
        o.overflow = WEIR_OVERFLOW_REJECT;
    /*
     * Durable: fed from the journal, so it neither drops nor rejects
     * (its policy is not used), and its topic becomes durable.
     */
    char name[16];
    if (journaled && rnd(x) % 4 == 0) {
        snprintf(name, sizeof(name), "d%d", i);
        o.durable = true;
        o.name = name;
        /* Before the topic turns durable, so no publish escapes it. */
        atomic_store(&topic_durable[s->topic], true);
    }
    s->opts = o;
    if (o.durable)
        s->opts.overflow = WEIR_OVERFLOW_BLOCK;
    if (weir_bus_subscribe(bus, names[s->topic], handler, s, &o, &s->sub) ==
        0)
        atomic_store(&nsubs, i + 1);
}

static int
publish_batch(int t, size_t len, head *h, weir_pub_opts *o,
              uint32_t *kseq)
{
    int u = t + 1;
    unsigned char p[64];
    uint32_t tag[2] = { tag_new(t, TAG_LATER), tag_new(u, TAG_LATER) };
    if (tag[0] == UINT32_MAX || tag[1] == UINT32_MAX)
        return -1;
    weir_batch *b;
    int rc = weir_batch_begin(bus, &b);
    if (rc != 0)
        return rc;
    h->tag = tag[0];
    rc = weir_batch_publish(b, names[t], p, payload_make(p, len, h), o);
    h->tag = tag[1];
    h->kseq = o->key != NULL ? ++*kseq : 0;
    if (rc == 0)
        rc = weir_batch_publish(b, names[u], p, payload_make(p, len, h), o);
    if (rc != 0) {
        weir_batch_abort(b);
        return rc;
    }
    atomic_fetch_add(&counts[t].later, 1);
    atomic_fetch_add(&counts[u].later, 1);
    rc = weir_batch_commit(b, WEIR_MSEC);
    if (rc == 0) {
        atomic_fetch_or(&tag_flags[tag[0]], TAG_WHOLE);
        atomic_fetch_or(&tag_flags[tag[1]], TAG_WHOLE);
        atomic_fetch_add(&published_seen, 2);
    }
    return rc;
}

static int
publish_one(uint64_t *x, unsigned pub, uint32_t kseq[KEYS])
{
    int t = (int)(rnd(x) % TOPICS);
    size_t len = sizeof(head) + rnd(x) % (64 - sizeof(head));
    unsigned char p[64];
    unsigned key = (unsigned)(rnd(x) % KEYS);
    char keys[12];
    snprintf(keys, sizeof(keys), "k%u.%u", pub, key);
    weir_pub_opts o = { .timeout_ns = WEIR_MSEC };
    bool keyed = rnd(x) % 2;
    head h = { .pub = (uint16_t)pub, .key = (uint16_t)key };
    if (keyed)
        o.key = keys;
    uint64_t kind = rnd(x) % 32;
    if (kind == 0 && t >= TOPICS - 2) {
        h.kseq = keyed ? ++kseq[key] : 0;
        return publish_batch(TOPICS - 2, len, &h, &o, &kseq[key]);
    }
    /* Due times reorder: a delayed message carries no key to check. */
    if (kind < 3 && t >= TOPICS - 2)
        o.delay_ns = (int64_t)(rnd(x) % WEIR_MSEC), o.key = NULL;
    h.kseq = o.key != NULL ? ++kseq[key] : 0;
    uint8_t later = o.delay_ns > 0 ? TAG_LATER : 0;
    if ((h.tag = tag_new(t, later)) == UINT32_MAX)
        return -1;
    int rc = weir_bus_publish(bus, names[t], p, payload_make(p, len, &h),
                              &o);
    if (rc == 0)
        atomic_fetch_or(&tag_flags[h.tag], TAG_WHOLE);
    if (later && counts_published(rc)) {
        atomic_fetch_add(&published_seen, 1);
        atomic_fetch_add(&delayed_seen, 1);
        atomic_fetch_add(&counts[t].later, 1);
    } else if (!later) {
        count_single(t, rc);
    }
    return rc;
}

static void *
publisher(void *arg)
{
    unsigned pub = (unsigned)(uintptr_t)arg;
    uint64_t x = (pub + 1) * 2654435761u + 1;
    uint32_t kseq[KEYS] = { 0 };
    while (!atomic_load(&stop)) {
        moved();
        if (publish_one(&x, pub, kseq) == -1) {
            struct timespec ts = { 0, 1000000 }; /* out of tags */
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void
print_stats(const char *what, const weir_sub_stats *f)
{
    fprintf(stderr,
            "  %s: routed %llu delivered %llu acked %llu failed %llu "
            "dropped %llu rejected %llu retried %llu dead %llu queued %llu "
            "in_flight %llu duplicates %llu\n",
            what, (unsigned long long)f->routed,
            (unsigned long long)f->delivered, (unsigned long long)f->acked,
            (unsigned long long)f->failed, (unsigned long long)f->dropped,
            (unsigned long long)f->rejected, (unsigned long long)f->retried,
            (unsigned long long)f->dead_lettered,
            (unsigned long long)f->queued, (unsigned long long)f->in_flight,
            (unsigned long long)f->duplicates);
}

/*
 * Fails the run when nothing moves for STUCK_SECONDS: publishers,
 * handlers and the main loop all count progress.  Prints what every
 * subscription not being closed holds (one being closed may be freed).
 */
static void *
watchdog(void *arg)
{
    (void)arg;
    uint64_t last = atomic_load(&progress);
    int still = 0;
    for (;;) {
        sleep(1);
        uint64_t now = atomic_load(&progress);
        still = now == last ? still + 1 : 0;
        last = now;
        if (still < STUCK_SECONDS)
            continue;
        fprintf(stderr, "soak: nothing moved for %d s\n", STUCK_SECONDS);
        if (pthread_mutex_trylock(&watch_mu) == 0) {
            int n = atomic_load(&nsubs);
            for (int i = 0; i < n; i++) {
                char what[48];
                weir_sub_stats f;
                snprintf(what, sizeof(what), "sub %d on %s", i,
                         names[subs[i].topic]);
                if (subs[i].closing)
                    print_stats(what, &subs[i].final);
                else if (weir_sub_get_stats(subs[i].sub, &f) == 0)
                    print_stats(what, &f);
            }
        }
        _exit(3);
    }
    return NULL;
}

/* Checks one subscription's final books; returns the number of faults. */
static int
check(const sub_state *s, int round, int i)
{
    const weir_sub_stats *f = &s->final;
    int bad = 0;
    char what[48];
    snprintf(what, sizeof(what), "round %d sub %d", round, i);
    uint64_t right = f->acked + f->failed + f->dead_lettered + f->dropped +
                     f->queued + f->in_flight;
    if (f->routed != right) {
        fprintf(stderr, "%s: routed %llu != %llu\n", what,
                (unsigned long long)f->routed, (unsigned long long)right);
        bad++;
    }
    if (f->queued != 0 || f->in_flight != 0) {
        fprintf(stderr, "%s: left queued or in flight\n", what);
        bad++;
    }
    uint64_t done = f->acked + f->failed + f->dead_lettered - f->duplicates;
    if (atomic_load(&s->finished) != done) {
        fprintf(stderr, "%s: handler finished %llu, books %llu\n", what,
                (unsigned long long)atomic_load(&s->finished),
                (unsigned long long)done);
        bad++;
    }
    /*
     * Each single publish to the topic the bus counted was routed to a
     * subscription there all round, or rejected by it: exactly, on the
     * topics with no delays or batches.
     */
    const topic_count *c = &counts[s->topic];
    uint64_t met = f->routed + f->rejected;
    if (s->first && !s->closed &&
        (met < atomic_load(&c->single) ||
         met > atomic_load(&c->single) + atomic_load(&c->later))) {
        fprintf(stderr, "%s: routed %llu + rejected %llu, published %llu "
                "single and %llu delayed or batched\n", what,
                (unsigned long long)f->routed,
                (unsigned long long)f->rejected,
                (unsigned long long)atomic_load(&c->single),
                (unsigned long long)atomic_load(&c->later));
        bad++;
    }
    /*
     * None lost: a subscription there all round, that neither drops nor
     * skips duplicates, finished (acked, or failed or dead-lettered for
     * good) every message whose publish returned 0.  A delayed one is
     * routed when due, and REJECT may refuse it then: not counted.
     */
    bool keeps_all = s->first && !s->closed &&
                     (s->opts.overflow == WEIR_OVERFLOW_BLOCK ||
                      s->opts.overflow == WEIR_OVERFLOW_REJECT) &&
                     s->opts.dedup_window_ns == 0;
    if (!keeps_all)
        return bad;
    uint32_t n = atomic_load(&next_tag);
    uint64_t missing = 0;
    for (uint32_t tag = 0; tag < n && tag < TAGS; tag++) {
        uint8_t fl = atomic_load(&tag_flags[tag]);
        if ((fl & 3) != s->topic || !(fl & TAG_WHOLE) || (fl & TAG_LATER))
            continue;
        if ((fl & TAG_DURABLE) && !s->opts.durable)
            continue;
        if (!(atomic_load(&s->seen[tag / 8]) & (1u << (tag % 8))))
            missing++;
        atomic_fetch_add(&proven, 1);
    }
    if (missing > 0) {
        fprintf(stderr, "%s: %llu messages published to it with success "
                "never handled\n", what, (unsigned long long)missing);
        bad++;
    }
    return bad;
}

static double
seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
resident_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Opens and closes subscriptions while the publishers run. */
static int
churn(uint64_t *x, int round)
{
    int faults = 0;
    double round_end = seconds_now() + 1.0;
    while (seconds_now() < round_end) {
        struct timespec ts = { 0, 20000000 };
        nanosleep(&ts, NULL);
        moved();
        int n = atomic_load(&nsubs);
        if (rnd(x) % 3 != 0 || n == 0) {
            subscribe_random(x, false);
            continue;
        }
        /* The first KEPT stay all round, for the exact counts. */
        if (n <= KEPT)
            continue;
        sub_state *s = &subs[KEPT + rnd(x) % (uint64_t)(n - KEPT)];
        if (s->closed)
            continue;
        pthread_mutex_lock(&watch_mu);
        s->closing = true;
        pthread_mutex_unlock(&watch_mu);
        int rc = weir_sub_close_stats(s->sub, 10 * WEIR_SEC, &s->final);
        /* Closed (and freed) either way; late is a fault. */
        s->closed = rc == 0 || rc == WEIR_ETIMEDOUT;
        if (rc != 0) {
            fprintf(stderr, "round %d: sub close %d\n", round, rc);
            faults++;
        }
    }
    return faults;
}

/* One round: a bus made, soaked, closed, checked, destroyed. */
static int
round_run(uint64_t *x, int round, weir_sub_stats *dead_final)
{
    int faults = 0;
    /* Every other round has a journal, and durable subscriptions. */
    journaled = round % 2 == 1;
    weir_bus_opts bo = { .journal_dir = journal_dir,
                         .journal_sync = WEIR_SYNC_NONE };
    if (journaled) {
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", journal_dir);
        if (system(cmd) != 0)
            return 1;
    }
    int crc = weir_bus_create(&bus, journaled ? &bo : NULL);
    if (crc != 0) {
        fprintf(stderr, "round %d: create %d\n", round, crc);
        return 1;
    }
    atomic_store(&nsubs, 0);
    atomic_store(&stop, false);
    atomic_store(&next_tag, 0);
    for (int t = 0; t < TOPICS; t++)
        atomic_store(&topic_durable[t], false);
    memset((void *)tag_flags, 0, sizeof(tag_flags));
    atomic_store(&published_seen, 0);
    atomic_store(&delayed_seen, 0);
    for (int t = 0; t < TOPICS; t++)
        atomic_store(&counts[t].single, 0), atomic_store(&counts[t].later, 0);
    atomic_store(&dead_count, 0);
    weir_sub *dl;
    if (weir_bus_subscribe(bus, "dead", dead_handler, NULL, NULL, &dl))
        return 1;
    for (int i = 0; i < FIRST_SUBS; i++)
        subscribe_random(x, true);
    pthread_t th[PUBLISHERS];
    for (uintptr_t i = 0; i < PUBLISHERS; i++)
        if (pthread_create(&th[i], NULL, publisher, (void *)i) != 0)
            return 1;
    faults += churn(x, round);
    atomic_store(&stop, true);
    for (int i = 0; i < PUBLISHERS; i++)
        pthread_join(th[i], NULL);
    int rc = weir_bus_close(bus, 30 * WEIR_SEC);
    if (rc != 0) {
        fprintf(stderr, "round %d: close %d\n", round, rc);
        faults++;
    }
    pthread_mutex_lock(&watch_mu);
    int n = atomic_load(&nsubs);
    uint64_t dead_lettered = 0;
    for (int i = 0; i < n; i++) {
        if (!subs[i].closed)
            weir_sub_get_stats(subs[i].sub, &subs[i].final);
        faults += check(&subs[i], round, i);
        dead_lettered += subs[i].final.dead_lettered;
        if (subs[i].opts.durable)
            atomic_fetch_add(&durable_handled,
                             atomic_load(&subs[i].finished));
    }
    weir_bus_stats bs;
    weir_bus_get_stats(bus, &bs);
    weir_sub_get_stats(dl, dead_final);
    /*
     * The bus counts what the soak saw accepted; a delayed message that
     * comes due when every subscription of its topic is closing reaches
     * nobody and is no publish, which the soak cannot see.
     */
    uint64_t seen = atomic_load(&published_seen);
    atomic_fetch_add(&published_total, seen);
    uint64_t bus_saw = bs.published + bs.delayed_left;
    if (bus_saw > seen || bus_saw + atomic_load(&delayed_seen) < seen) {
        fprintf(stderr, "round %d: bus published %llu (+%llu delayed left), "
                "publishes seen %llu (%llu delayed)\n", round,
                (unsigned long long)bs.published,
                (unsigned long long)bs.delayed_left,
                (unsigned long long)seen,
                (unsigned long long)atomic_load(&delayed_seen));
        faults++;
    }
    if (dead_final->routed != dead_lettered ||
        atomic_load(&dead_count) != dead_lettered) {
        fprintf(stderr, "round %d: %llu dead-lettered, dead topic routed "
                "%llu, handled %llu\n", round,
                (unsigned long long)dead_lettered,
                (unsigned long long)dead_final->routed,
                (unsigned long long)atomic_load(&dead_count));
        faults++;
    }
    weir_bus_destroy(bus);
    bus = NULL;
    atomic_store(&nsubs, 0);
    pthread_mutex_unlock(&watch_mu);
    /* Every block the library took this round came back. */
    if (atomic_load(&live_blocks) != 0) {
        fprintf(stderr, "round %d: %ld blocks of the library left after "
                "destroy\n", round, atomic_load(&live_blocks));
        faults++;
    }
    return faults;
}

int
main(void)
{
#ifndef WEIR_TEST_SANITIZED
    /*
     * One arena: with one per thread, which glibc makes as threads come
     * and go, resident memory grows for fragments the arenas keep while
     * the heap in use stays flat; then it could not show a leak.
     */
    mallopt(M_ARENA_MAX, 1);
#endif
    weir_allocator counting = { count_malloc, count_realloc, count_free,
                                count_aligned, NULL };
    if (weir_set_allocator(&counting) != 0)
        return 2;
    snprintf(journal_dir, sizeof(journal_dir), "/tmp/weir-soak-%d",
             (int)getpid());
    const char *env = getenv("WEIR_SOAK_SECONDS");
    double seconds = env != NULL ? atof(env) : 60;
    for (int i = 0; i < SUBS_MAX; i++)
        if ((subs[i].seen = calloc(TAGS / 8, 1)) == NULL)
            return 2;
    pthread_t wd;
    if (pthread_create(&wd, NULL, watchdog, NULL) != 0)
        return 2;
    double start = seconds_now(), end = start + seconds;
    uint64_t x = 88172645463325252ull;
    int faults = 0, rounds = 0;
    long base_kib = -1, last_kib = -1;
    do {
        weir_sub_stats dead;
        faults += round_run(&x, rounds, &dead);
        rounds++;
#ifndef WEIR_TEST_SANITIZED
        malloc_trim(0);
#endif
        last_kib = resident_kib();
        /*
         * The C library keeps what it freed in per-thread arenas, which
         * it fills in the first rounds (the journal's rounds add
         * threads): the baseline is taken once they are warm.
         */
        if (rounds == WARM_ROUNDS)
            base_kib = last_kib;
    } while (seconds_now() < end && faults == 0);
    if (atomic_load(&twice) != 0 || atomic_load(&invented) != 0 ||
        atomic_load(&out_of_order) != 0) {
        fprintf(stderr, "soak: %llu finished twice, %llu invented, %llu "
                "out of key order\n",
                (unsigned long long)atomic_load(&twice),
                (unsigned long long)atomic_load(&invented),
                (unsigned long long)atomic_load(&out_of_order));
        faults++;
    }
#ifndef WEIR_TEST_SANITIZED
    /* A leak of a few bytes a message would be tens of MiB by now. */
    if (base_kib > 0 && rounds >= 2 * WARM_ROUNDS &&
        last_kib - base_kib > 16 * 1024) {
        fprintf(stderr, "soak: resident memory grew from %ld to %ld KiB\n",
                base_kib, last_kib);
        faults++;
    }
#endif
    double took = seconds_now() - start;
    uint64_t handled = atomic_load(&handled_total);
    printf("soak: %d rounds in %.1f s, %llu publishes accepted, %llu "
           "messages finished (%.0f/s; %llu by durable subscriptions), "
           "%llu of them traced one by one, resident %ld -> %ld KiB, "
           "%d faults\n",
           rounds, took, (unsigned long long)atomic_load(&published_total),
           (unsigned long long)handled, (double)handled / took,
           (unsigned long long)atomic_load(&durable_handled),
           (unsigned long long)atomic_load(&proven), base_kib, last_kib,
           faults);
    for (int i = 0; i < SUBS_MAX; i++)
        free((void *)subs[i].seen);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", journal_dir);
    if (system(cmd) != 0)
        faults++;
    return faults == 0 ? 0 : 1;
}
