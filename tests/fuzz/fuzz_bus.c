/* SPDX-License-Identifier: MIT */
/*
 * fuzz_bus.c - a bus driven by a sequence of calls decoded from the
 * input: subscriptions with random options (workers, capacity, each
 * overflow policy, retries and backoff, per-key order, duplicate
 * suppression, a dead-letter topic, a rate limit), publishes with random
 * topics, keys, sizes, delays and timeouts, batches committed or
 * aborted, subscriptions closed.  Everything is called from the fuzzing
 * thread; handlers run on the bus's workers, check what they are given
 * and ack or fail as the payload says, and never publish, so between two
 * steps no publish of ours is in progress and the books must balance.
 *
 * Checked:
 *   - after every step, for each open subscription: routed = acked +
 *     failed + dead_lettered + dropped + queued + in_flight, with no
 *     count wrapped; high_water within the capacity, and queued too
 *     (but for what workers are taking) where only this thread
 *     publishes to the topic;
 *   - in each handler: the payload, its size, the key and the topic are
 *     what was published; a subscription with one worker sees first
 *     deliveries in publish order, one with ordered_by_key each key's
 *     messages in publish order (retries included);
 *   - at the end (the bus closed with a 5 s timeout, which must drain
 *     this small load): nothing queued or in flight anywhere, and the
 *     handlers' own counts match delivered, acked and the failures;
 *     where only this thread published to a topic, routed + rejected
 *     match the messages offered to the subscription.
 * Timeouts are WEIR_NOWAIT or a few ms, backoffs at most 1 ms, rates at
 * least 20,000/s and steps few, so that an input costs milliseconds.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "weir.h"

enum {
    TOPICS = 6,     /* t0..t3, then dl0 and dl1 */
    KEYS = 5,       /* index 0: no key */
    SUBS_MAX = 8,
    STEPS_MAX = 96,
    HEADER = 12,    /* seq 4, size 4, fail_until, flags, key, spare */
    PAYLOAD_MAX = 1100,
};

enum { F_DELAYED = 1, F_BATCH = 2 };

static const char *const topic_name[TOPICS] = {
    "t0", "t1", "t2", "t3", "dl0", "dl1",
};

static char long_key[WEIR_KEY_MAX + 1];
static const char *key_of[KEYS] = { NULL, "a", "bb", "key:3", long_key };

typedef struct sstate {
    weir_sub *sub;
    bool open, closed;
    int topic;
    unsigned workers;
    bool ordered;
    size_t capacity;
    weir_sub_opts opts;         /* as given, to report a failure with */
    /* Counted by the handlers. */
    _Atomic uint64_t calls, oks, fails;
    _Atomic uint32_t last_of_key[KEYS];
    _Atomic uint32_t last_first;
    /* Counted by the fuzzing thread. */
    uint64_t offered, batch_ok, batch_failed;
    weir_sub_stats final;
} sstate;

static sstate subs[SUBS_MAX];
static int nsubs;
/* A topic something other than this thread publishes to. */
static bool shared_topic[TOPICS];
static uint32_t next_seq;

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void
put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The byte at i of a payload of size bytes with sequence number seq. */
static uint8_t
fill_byte(uint32_t seq, size_t size, size_t i)
{
    return (uint8_t)(seq * 31 + size * 7 + i);
}

static int
handler(const weir_msg *m, void *ctx)
{
    sstate *s = ctx;
    atomic_fetch_add_explicit(&s->calls, 1, memory_order_relaxed);
    const uint8_t *p = weir_msg_data(m);
    size_t size = weir_msg_size(m);
    const char *origin = weir_msg_origin_topic(m);
    unsigned attempt = weir_msg_attempt(m);
    FZ_CHECK(p != NULL, "no data");
    FZ_CHECK(strcmp(weir_msg_topic(m), topic_name[s->topic]) == 0,
             "topic %s on %s", weir_msg_topic(m), topic_name[s->topic]);
    FZ_CHECK(origin == NULL || strcmp(origin, topic_name[s->topic]) != 0,
             "a dead letter from its own topic");
    FZ_CHECK(attempt >= 1, "attempt %u", attempt);
    bool fail = false;
    if (size < HEADER) {
        /* Too small for a header: seq 0, key unknown, always acked. */
        for (size_t i = 0; i < size; i++)
            FZ_CHECK(p[i] == fill_byte(0, size, i), "tiny payload");
    } else {
        uint32_t seq = get32(p);
        FZ_CHECK(get32(p + 4) == size, "size %zu, sent %u", size,
                 get32(p + 4));
        for (size_t i = HEADER; i < size; i++)
            FZ_CHECK(p[i] == fill_byte(seq, size, i), "payload byte %zu",
                     i);
        unsigned k = p[10] % KEYS;
        const char *key = weir_msg_key(m);
        FZ_CHECK((key == NULL) == (key_of[k] == NULL) &&
                     (key == NULL || strcmp(key, key_of[k]) == 0),
                 "key %s, sent %s", key ? key : "(none)",
                 key_of[k] ? key_of[k] : "(none)");
        /*
         * A dead letter fails only on its first hop, from a t topic to a
         * dl one: dead-letter topics may form a cycle, and a message
         * failing round it for ever would never let the bus drain.
         */
        if (origin == NULL)
            fail = p[8] == 255 || attempt <= p[8];
        else if (s->topic >= 4 && origin[0] == 't')
            fail = p[8] == 255 || attempt <= p[8];
        /*
         * Order: only for messages routed as they were published (not
         * delayed, batched or dead letters, whose routing order is not
         * their sequence order).
         */
        if (origin == NULL && (p[9] & (F_DELAYED | F_BATCH)) == 0) {
            if (s->ordered && k != 0) {
                uint32_t last = atomic_load(&s->last_of_key[k]);
                FZ_CHECK(seq >= last, "key %u: seq %u after %u", k, seq,
                         last);
                atomic_store(&s->last_of_key[k], seq);
            } else if (!s->ordered && s->workers == 1 && attempt == 1) {
                uint32_t last = atomic_load(&s->last_first);
                FZ_CHECK(seq > last, "one worker: seq %u after %u", seq,
                         last);
                atomic_store(&s->last_first, seq);
            }
        }
    }
    atomic_fetch_add_explicit(fail ? &s->fails : &s->oks, 1,
                              memory_order_relaxed);
    return fail ? -1 : 0;
}

/* A payload in buf; returns its size. */
static size_t
make_payload(fz *f, uint8_t *buf, unsigned key, unsigned flags)
{
    static const size_t base[] = { 0, 1, 12, 16, 24, 64, 440, 1000 };
    size_t size = base[fz_below(f, 8)] + fz_below(f, 16);
    uint8_t fail_until = fz_u8(f);
    if (fail_until != 255)
        fail_until %= 4;
    uint32_t seq = size < HEADER ? 0 : ++next_seq;
    for (size_t i = 0; i < size; i++)
        buf[i] = fill_byte(seq, size, i);
    if (size >= HEADER) {
        put32(buf, seq);
        put32(buf + 4, (uint32_t)size);
        buf[8] = fail_until;
        buf[9] = (uint8_t)flags;
        buf[10] = (uint8_t)key;
    }
    return size;
}

static int64_t
pick_timeout(fz *f)
{
    switch (fz_below(f, 6)) {
    case 0:
        return 0;           /* publish options: no limit; calls: once */
    case 1:
        return (int64_t)(1 + fz_below(f, 200)) * WEIR_USEC;
    default:
        return WEIR_NOWAIT;
    }
}

static void
do_subscribe(weir_bus *bus, fz *f)
{
    if (nsubs == SUBS_MAX)
        return;
    sstate *s = &subs[nsubs];
    memset(s, 0, sizeof(*s));
    s->topic = (int)fz_below(f, TOPICS);
    weir_sub_opts o = { 0 };
    uint8_t bits = fz_u8(f);
    o.name = bits & 1 ? "a-sub" : NULL;
    o.workers = fz_below(f, 4);       /* 0 = 1 */
    o.capacity = fz_below(f, 9);      /* 0 = 1024 */
    o.overflow = (weir_overflow)fz_below(f, 4);
    if (bits & 2) {
        o.rate_per_sec = 20000.0 + 1000.0 * fz_u8(f);
        o.burst = fz_below(f, 9);     /* 0 = 1 */
    }
    if (bits & 4) {
        static const double mult[] = { 0, 1, 1.5, 3 };
        o.max_attempts = fz_below(f, 5);
        o.retry_backoff_ns = (int64_t)(1 + fz_below(f, 200)) * WEIR_USEC;
        o.retry_multiplier = mult[fz_below(f, 4)];
        /* 0 would be 1 s: a few retries could then cost seconds. */
        o.retry_backoff_max_ns = (int64_t)(200 + fz_below(f, 300)) *
                                 WEIR_USEC;
        o.retry_jitter = bits & 8;
    }
    if (bits & 16) {
        /* Any topic but its own; mostly the dead-letter ones. */
        int dl = (int)fz_below(f, TOPICS);
        if (dl != s->topic)
            o.dead_letter_topic = topic_name[dl];
    }
    o.ordered_by_key = bits & 32;
    if (bits & 64) {
        o.dedup_window_ns = (int64_t)(1 + fz_u8(f)) * 10 * WEIR_USEC;
        o.dedup_max_keys = fz_below(f, 17); /* 0 = 65536 */
    }
    int rc = weir_bus_subscribe(bus, topic_name[s->topic], handler, s, &o,
                                &s->sub);
    FZ_CHECK(rc == 0, "subscribe rc %d", rc);
    if (o.dead_letter_topic != NULL)
        for (int t = 0; t < TOPICS; t++)
            if (strcmp(topic_name[t], o.dead_letter_topic) == 0)
                shared_topic[t] = true;
    s->open = true;
    s->opts = o;
    s->workers = o.workers == 0 ? 1 : o.workers;
    s->ordered = o.ordered_by_key;
    s->capacity = o.capacity == 0 ? 1024 : o.capacity;
    nsubs++;
}

static void
do_publish(weir_bus *bus, fz *f, weir_batch *batch)
{
    static uint8_t buf[PAYLOAD_MAX + 32];
    int t = (int)fz_below(f, TOPICS);
    unsigned key = fz_below(f, KEYS);
    weir_pub_opts po = { .key = key_of[key] };
    uint8_t how = fz_u8(f);
    unsigned flags = batch != NULL ? F_BATCH : 0;
    if (batch == NULL && (how & 3) == 0) {
        po.delay_ns = (int64_t)(1 + fz_below(f, 500)) * WEIR_USEC;
        flags |= F_DELAYED;
    }
    po.timeout_ns = pick_timeout(f);
    size_t size = make_payload(f, buf, key, flags);
    if (batch != NULL) {
        int rc = weir_batch_publish(batch, topic_name[t], buf, size, &po);
        FZ_CHECK(rc == 0, "batch_publish rc %d", rc);
        return;
    }
    int rc;
    if (how & 4) {
        weir_topic *h;
        FZ_CHECK(weir_bus_topic(bus, topic_name[t], &h) == 0, "topic");
        rc = weir_topic_publish(h, buf, size, &po);
    } else {
        rc = weir_bus_publish(bus, topic_name[t], buf, size, &po);
    }
    if (po.delay_ns > 0) {
        FZ_CHECK(rc == 0, "delayed publish rc %d", rc);
        shared_topic[t] = true;
        return;
    }
    FZ_CHECK(rc == 0 || rc == WEIR_EAGAIN || rc == WEIR_ETIMEDOUT,
             "publish rc %d", rc);
    for (int i = 0; i < nsubs; i++)
        if (subs[i].open && subs[i].topic == t)
            subs[i].offered++;
}

/* The messages a batch staged per topic, for its commit's books. */
static unsigned staged[TOPICS];

static void
do_batch(weir_bus *bus, fz *f, weir_batch **batch)
{
    if (*batch == NULL) {
        FZ_CHECK(weir_batch_begin(bus, batch) == 0, "batch_begin");
        memset(staged, 0, sizeof(staged));
        /* A delay is refused in a batch, and the batch stays usable. */
        weir_pub_opts po = { .delay_ns = WEIR_MSEC };
        FZ_CHECK(weir_batch_publish(*batch, "t0", "x", 1, &po) ==
                     WEIR_EINVAL, "delayed batch_publish");
        return;
    }
    uint8_t what = fz_u8(f);
    if (what % 4 == 0) {
        weir_batch_abort(*batch);
    } else {
        int64_t t = pick_timeout(f);
        int rc = weir_batch_commit(*batch, t);
        FZ_CHECK(rc == 0 || rc == WEIR_EAGAIN || rc == WEIR_ETIMEDOUT,
                 "commit rc %d", rc);
        for (int i = 0; i < nsubs; i++)
            if (subs[i].open) {
                if (rc == 0)
                    subs[i].batch_ok += staged[subs[i].topic];
                else
                    subs[i].batch_failed += staged[subs[i].topic];
            }
    }
    *batch = NULL;
}

static void
do_close_sub(fz *f)
{
    if (nsubs == 0)
        return;
    sstate *s = &subs[fz_below(f, (unsigned)nsubs)];
    if (!s->open)
        return;
    int64_t t = fz_u8(f) & 1 ? WEIR_NOWAIT
                             : (int64_t)(1 + fz_below(f, 500)) * WEIR_USEC;
    int rc = weir_sub_close_stats(s->sub, t, &s->final);
    FZ_CHECK(rc == 0 || rc == WEIR_ETIMEDOUT, "sub_close rc %d", rc);
    if (rc == 0)
        FZ_CHECK(s->final.queued == 0, "closed with %ju queued",
                 (uintmax_t)s->final.queued);
    s->open = false;
    s->closed = true;
}

/* What a failed check of s's books prints first. */
static void
describe(const sstate *s)
{
    const weir_sub_opts *o = &s->opts;
    fprintf(stderr, "sub on %s: workers %u capacity %zu overflow %d "
            "rate %g burst %g attempts %u ordered %d dedup %jd/%zu dl %s\n",
            topic_name[s->topic], o->workers, o->capacity, (int)o->overflow,
            o->rate_per_sec, o->burst, o->max_attempts, (int)o->ordered_by_key,
            (intmax_t)o->dedup_window_ns, o->dedup_max_keys,
            o->dead_letter_topic ? o->dead_letter_topic : "-");
}

#define SUB_CHECK(s, cond, ...)                                          \
    do {                                                                 \
        if (!(cond))                                                     \
            describe(s);                                                 \
        FZ_CHECK(cond, __VA_ARGS__);                                     \
    } while (0)

static void
check_identity(const sstate *s, const weir_sub_stats *st)
{
    uint64_t sum = st->acked + st->failed + st->dead_lettered + st->dropped +
                   st->queued + st->in_flight;
    SUB_CHECK(s, st->routed == sum, "routed %ju != %ju", (uintmax_t)st->routed,
             (uintmax_t)sum);
    /* The derived counts: a wrapped one would be near 2^64. */
    SUB_CHECK(s, st->queued <= st->routed && st->in_flight <= st->routed,
             "queued %ju in_flight %ju routed %ju",
             (uintmax_t)st->queued, (uintmax_t)st->in_flight,
             (uintmax_t)st->routed);
    SUB_CHECK(s, st->high_water <= s->capacity, "high_water %ju over %zu",
             (uintmax_t)st->high_water, s->capacity);
    /*
     * A worker counts what it took as started just after taking it off
     * the queue, so until then those count as queued while their places
     * may be filled again: one worker takes up to the queue's depth at
     * once, several one each.
     */
    size_t taking = s->workers == 1 ? s->capacity : s->workers;
    if (!shared_topic[s->topic])
        SUB_CHECK(s, st->queued <= s->capacity + taking,
                  "queued %ju over %zu + %zu", (uintmax_t)st->queued,
                  s->capacity, taking);
}

static void
check_books(void)
{
    for (int i = 0; i < nsubs; i++) {
        sstate *s = &subs[i];
        if (!s->open)
            continue;
        weir_sub_stats st;
        SUB_CHECK(s, weir_sub_get_stats(s->sub, &st) == 0, "get_stats");
        check_identity(s, &st);
    }
}

/* After the bus's close (or the subscription's): the final books. */
static void
check_final(const sstate *s, const weir_sub_stats *st, bool drained)
{
    check_identity(s, st);
    SUB_CHECK(s, st->in_flight == 0, "in_flight %ju left",
             (uintmax_t)st->in_flight);
    if (drained)
        SUB_CHECK(s, st->queued == 0, "queued %ju left", (uintmax_t)st->queued);
    uint64_t calls = atomic_load(&s->calls), oks = atomic_load(&s->oks),
             fails = atomic_load(&s->fails);
    SUB_CHECK(s, st->delivered == calls, "delivered %ju, handler calls %ju",
             (uintmax_t)st->delivered, (uintmax_t)calls);
    SUB_CHECK(s, st->acked == oks + st->duplicates, "acked %ju, handler acks "
             "%ju + duplicates %ju", (uintmax_t)st->acked, (uintmax_t)oks,
             (uintmax_t)st->duplicates);
    SUB_CHECK(s, st->failed + st->dead_lettered + st->retried == fails,
             "failed %ju + dead_lettered %ju + retried %ju, handler "
             "failures %ju", (uintmax_t)st->failed,
             (uintmax_t)st->dead_lettered, (uintmax_t)st->retried,
             (uintmax_t)fails);
    if (!shared_topic[s->topic]) {
        uint64_t in = st->routed + st->rejected;
        uint64_t lo = s->offered + s->batch_ok, hi = lo + s->batch_failed;
        SUB_CHECK(s, in >= lo && in <= hi && st->routed <= lo,
                 "routed %ju + rejected %ju, offered %ju..%ju",
                 (uintmax_t)st->routed, (uintmax_t)st->rejected,
                 (uintmax_t)lo, (uintmax_t)hi);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = { data, size };
    memset(long_key, 'k', WEIR_KEY_MAX);
    nsubs = 0;
    next_seq = 0;
    memset(shared_topic, 0, sizeof(shared_topic));

    weir_bus *bus;
    FZ_CHECK(weir_bus_create(&bus, NULL) == 0, "bus_create");
    weir_batch *batch = NULL;
    for (int step = 0; step < STEPS_MAX && fz_more(&f); step++) {
        switch (fz_below(&f, 8)) {
        case 0:
            do_subscribe(bus, &f);
            break;
        case 1:
            do_close_sub(&f);
            break;
        case 2:
            do_batch(bus, &f, &batch);
            break;
        case 3:
            if (batch != NULL) {
                int t0 = (int)(f.n > 0 ? f.p[0] % TOPICS : 0);
                do_publish(bus, &f, batch);
                staged[t0]++;
                break;
            }
            do_publish(bus, &f, NULL);
            break;
        default:
            do_publish(bus, &f, NULL);
            break;
        }
        check_books();
    }
    weir_batch_abort(batch);

    int rc = weir_bus_close(bus, 5 * WEIR_SEC);
    FZ_CHECK(rc == 0, "bus_close rc %d", rc);
    weir_bus_stats bs;
    FZ_CHECK(weir_bus_get_stats(bus, &bs) == 0, "bus_get_stats");
    FZ_CHECK(bs.delayed == 0 && bs.delayed_left == 0 &&
                 bs.forwards_refused == 0,
             "bus: delayed %ju, delayed_left %ju, forwards_refused %ju",
             (uintmax_t)bs.delayed, (uintmax_t)bs.delayed_left,
             (uintmax_t)bs.forwards_refused);
    FZ_CHECK(bs.unrouted <= bs.published, "unrouted over published");
    for (int i = 0; i < nsubs; i++) {
        sstate *s = &subs[i];
        if (s->closed) {
            check_final(s, &s->final, false);
            continue;
        }
        weir_sub_stats st;
        FZ_CHECK(weir_sub_get_stats(s->sub, &st) == 0, "get_stats");
        check_final(s, &st, true);
    }
    weir_bus_destroy(bus);
    return 0;
}
