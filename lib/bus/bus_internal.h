/* SPDX-License-Identifier: MIT */
/*
 * bus_internal.h - PRIVATE to lib/: the structures shared by bus.c
 * (the bus and publishing), topic.c (the topic registry and the
 * subscription snapshots), sub.c (subscriptions and their workers) and
 * place.c (a subscription's queue as the bus uses it).
 *
 * Lock order: bus->mu, then bus->grace_mu; nothing else is ever held
 * together with them, no weir lock is held while a handler runs, and a
 * publish takes neither.
 */
#ifndef WEIR_BUS_INTERNAL_H
#define WEIR_BUS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "weir/bus.h"
#include "weir/dedup.h"
#include "weir/limiter.h"
#include "weir/queue.h"

#include "histogram_internal.h"
#include "inbox_internal.h"
#include "msg_internal.h"
#include "timer_internal.h"
#include "wait_internal.h"

/*
 * The subscriptions of a topic as publishers see them: an immutable array
 * replaced as a whole (copy on write) when a subscription comes or goes,
 * and freed only after every publisher that could have loaded it has left
 * (weiri_topic_quiesce).
 */
typedef struct weiri_subset {
    size_t n;
    weir_sub *subs[];
} weiri_subset;

struct weir_topic {
    struct weir_topic *next;       /* hash chain; fixed before the topic is published */
    weir_bus *bus;
    _Atomic(weiri_subset *) subs;  /* current snapshot, NULL if none; written under bus->mu */
    /*
     * Read sections that found every slot of bus->readers taken count
     * themselves here, per epoch parity, so that a writer can wait for the
     * ones that started before it changed subs.
     */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic uint64_t shared[2];
    _Atomic unsigned epoch;        /* parity new sections count under; under bus->grace_mu */
    size_t name_len;
    char name[];                   /* NUL-terminated */
};

#define WEIRI_TOPIC_BUCKETS 256

/*
 * A publisher's read section (weiri_topic_enter/leave) takes one of these
 * slots, marking it with the bus's epoch (a CAS) and its topic (a seq_cst
 * store, on x86 locked too), both before the publish writes anything, and
 * frees it with a plain store: a locked instruction there would wait for
 * the stores of the publish to reach other cores' caches.  (Skipping the
 * topic's store when the slot already names it measured 4% slower.)  Each
 * slot has its own line.
 * A thread tries the slot it had last, so a publishing thread keeps
 * reusing one line.
 */
#define WEIRI_READER_SLOTS 64

typedef struct weiri_reader {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic uint64_t mark;         /* 0: free; else 1 + the epoch its holder entered under */
    _Atomic(weir_topic *) topic;   /* the holder's topic; stale while free */
    weiri_body *spare;             /* the next publish's body (weiri_body_ahead), or
                                      NULL; only the holder touches it */
} weiri_reader;

struct weir_bus {
    pthread_mutex_t mu;            /* guards topic creation, every subs snapshot change,
                                      the subscription list and closing */
    pthread_mutex_t grace_mu;      /* serialises weiri_topic_quiesce, which moves epoch */
    _Atomic(weir_topic *) buckets[WEIRI_TOPIC_BUCKETS]; /* chains only grow; read lock-free */
    weir_sub *all;                 /* every subscription not closed on its own; under mu */
    uint64_t subs_made;            /* serials handed out (weir_sub.serial);
                                      under mu */
    _Atomic unsigned closing_subs; /* weir_sub_close calls past taking their
                                      subscription out of all, not yet done */
    _Atomic unsigned waiters;      /* publishes between their read section
                                      and the end of their waits for room */
    weir_mpmc bodies;              /* free small message bodies (msg_internal.h) */
    /*
     * Two timers, so that a retry never waits behind a delayed message: a
     * due delayed message may wait for room in a BLOCK queue on its
     * timer's thread, a due retry only joins a list.
     */
    weiri_timer retries;           /* retries after a backoff */
    weiri_timer delays;            /* delayed publishes */
    /*
     * Close in two steps (see close_bus): closed refuses publishes from
     * outside the bus's own workers, which may still forward while the
     * bus drains as a whole; sealed, once it is quiet or out of time,
     * refuses those too, and the queues are shut.
     */
    _Atomic bool closed;
    _Atomic bool sealed;
    _Atomic bool delays_over;      /* close has given up what was not due */
    _Atomic uint64_t delayed_left; /* delayed publishes given up at close */
    _Atomic uint64_t forwards_refused; /* workers' publishes refused by a
                                          sealed bus */
    _Atomic uint64_t dead_letters_unrouted; /* to a topic with no
                                               subscription */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic uint64_t next_id;      /* message ids handed out; written by every routed publish */
    _Atomic uint64_t unrouted;     /* publishes to a topic with no subscription */
    _Atomic uint64_t unused_ids;   /* ids handed to batches that then aborted */
    /* Read sections (see weiri_reader). */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic uint64_t epoch;        /* moved by weiri_topic_quiesce, under grace_mu */
    weiri_reader readers[WEIRI_READER_SLOTS];
};

struct weir_sub {
    weir_bus *bus;
    uint64_t serial;               /* unique in its bus; fixed at subscribe */
    weir_topic *topic;
    weir_handler fn;
    void *ctx;
    /*
     * Where its messages wait: an inbox when one worker takes them and no
     * publisher ever takes one back out (not careful, not DROP_OLDEST),
     * else a weir_queue.  Exactly one is set, fixed at subscribe.
     */
    weiri_inbox *inbox;
    weir_queue *queue;
    weir_overflow overflow;
    bool limited;                  /* a rate was set: limiter paces handler starts */
    weir_limiter limiter;
    unsigned nworkers;             /* as configured; fixed */
    unsigned running;              /* workers started and not yet joined */
    struct weiri_worker *workers;  /* nworkers of them */
    char *name;                    /* for statistics */
    weir_sub *next, *prev;         /* in bus->all; under bus->mu */
    _Atomic bool abort;            /* the drain timed out: stop handling */
    _Atomic unsigned live;         /* workers that have not exited */
    /*
     * Publishers waiting for room outside their read section (fanout):
     * each pins s there, so s is not freed under it; its closer waits
     * for none to be left (weiri_sub_drain).
     */
    _Atomic unsigned pins;
    _Atomic unsigned self_waits;   /* own workers waiting for room in s
                                      (weiri_sub_wait_begin) */
    weiri_event wake;              /* workers waiting for a permit, and the closer
                                      waiting for live == 0, sleep here */
    /* Written by publishers (routed is counted by the queue itself). */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic uint64_t dropped, dropped_in, rejected;
    /* Written by workers. */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic uint64_t started, delivered, acked, failed, high_water;
    _Atomic uint64_t retried, dead_lettered, duplicates;
    _Atomic uint64_t voided;       /* placed by a batch commit that then aborted */
    _Atomic bool gated;            /* a batch commit has placed in it; set
                                      once by a commit (relaxed, before that
                                      place), read by every take: here for
                                      the takes */
    _Atomic uint64_t left;         /* taken, then released unhandled (counted
                                      queued): retries given up by destroy */

    /*
     * Delivery guarantees (deliver.c), fixed at subscribe.  careful: any
     * of them is on, and the workers run deliver.c's loop, one message
     * at a time, instead of sub.c's batches.
     */
    bool careful;
    bool ordered;                  /* ordered_by_key */
    bool jitter;
    unsigned max_attempts;         /* at least 1 */
    int64_t backoff, backoff_max;  /* ns */
    double multiplier;
    weir_topic *dead_letter;       /* or NULL */
    weir_dedup *dedup;             /* or NULL */
    /*
     * Lock order (deliver.c): take_mu, then mu; a timer's lock, then mu
     * (weiri_sub_retry_due runs under it).  Nothing else is taken while
     * either is held, and no handler runs under them.
     */
    pthread_mutex_t mu;            /* careful only: guards ready and keys */
    pthread_mutex_t take_mu;       /* ordered: one worker at a time takes
                                      from the queue */
    weiri_delivery *ready, *ready_tail; /* retries that came due, oldest first */
    _Atomic size_t ready_n;        /* how many are on ready */
    _Atomic size_t pending;        /* retries scheduled and not yet taken off ready */
    _Atomic uint32_t kick;         /* moves when ready gains one; see deliver.c */
    struct weiri_key **keys;       /* ordered: keys with a message in hand */
    size_t nkeys, key_buckets;
    uint64_t key_seed[2];          /* ordered: SipHash seed of keys, random */
};

/*
 * Messages a worker takes per pop.  One worker takes a burst, so one wake
 * serves many messages; with several workers one at a time, so a slow
 * message never holds back others that an idle worker could take.
 */
enum { WEIRI_SOLO_BATCH = 64 };

/* One worker thread of a subscription, with the histogram it alone writes. */
typedef struct weiri_worker {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    weiri_hist latency;            /* publish to handler return */
    weir_sub *sub;
    pthread_t thread;
} weiri_worker;

/* topic.c */
bool weiri_topic_name_ok(const char *name, size_t *len);
weir_topic *weiri_topic_find(weir_bus *bus, const char *name, size_t len);
int weiri_topic_get(weir_bus *bus, const char *name, size_t len,
                    weir_topic **out);               /* under bus->mu */
/*
 * weiri_topic_swap - under bus->mu: publish a snapshot of t's
 * subscriptions with s added (add) or removed, and hand back the old one.
 * The caller frees it after weiri_topic_quiesce, called without bus->mu
 * (a publisher being waited for may be preempted, or allocating).
 * Returns 0 or WEIR_ENOMEM (nothing changed).
 */
int weiri_topic_swap(weir_topic *t, weir_sub *s, bool add, weiri_subset **old);
void weiri_topic_quiesce(weir_topic *t);
void weiri_topic_free_all(weir_bus *bus);
/*
 * A publisher's read section: the snapshot, and every subscription in
 * it, stays valid until leave.  Sections may nest (a batch holds one per
 * topic); each has its own ticket.  Inline, for every publish enters
 * one: the common case (the read slot this thread had last is free)
 * here, the rest in topic.c, which explains the protocol.
 */
const weiri_subset *weiri_topic_enter_slow(weir_topic *t, unsigned *ticket);

/* The read slot this thread took last: where its next section looks first. */
extern _Thread_local unsigned weiri_reader_hint;

static inline const weiri_subset *
weiri_topic_enter(weir_topic *t, unsigned *ticket)
{
    unsigned i = weiri_reader_hint;
    if (i < WEIRI_READER_SLOTS) {
        weiri_reader *r = &t->bus->readers[i];
        uint64_t free_mark = 0;
        uint64_t mark = atomic_load(&t->bus->epoch) + 1;
        if (atomic_load_explicit(&r->mark, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&r->mark, &free_mark, mark)) {
            /* seq_cst, a locked instruction on x86: see weiri_reader. */
            atomic_store(&r->topic, t);
            *ticket = i;
            return atomic_load(&t->subs);
        }
    }
    return weiri_topic_enter_slow(t, ticket);
}

static inline void
weiri_topic_leave(weir_topic *t, unsigned ticket)
{
    /*
     * Release: our reads of the snapshot and of its subscriptions finish
     * before the slot reads free.  A plain store on x86.
     */
    if (ticket < WEIRI_READER_SLOTS)
        atomic_store_explicit(&t->bus->readers[ticket].mark, 0, memory_order_release);
    else
        atomic_fetch_sub_explicit(&t->shared[ticket - WEIRI_READER_SLOTS], 1,
                                  memory_order_release);
}

/*
 * weiri_subset_has - whether set, a snapshot read in a section, holds
 * sub: the very one, by its serial, not a later one at its address (sub
 * is dereferenced only once found, so it may have been freed).
 */
static inline bool
weiri_subset_has(const weiri_subset *set, const weir_sub *sub,
                 uint64_t serial)
{
    for (size_t j = 0; set != NULL && j < set->n; j++)
        if (set->subs[j] == sub)
            return sub->serial == serial;
    return false;
}

/*
 * A publish's deadline when its timeout was WEIR_NOWAIT: a full BLOCK
 * queue refuses it at once (WEIR_EAGAIN), as a full REJECT one does.
 */
#define WEIRI_NOWAIT_DEADLINE INT64_MIN

/* sub.c: subscriptions and their workers */
int weiri_sub_create(weir_bus *bus, weir_topic *t, weir_handler fn,
                     void *ctx, const weir_sub_opts *opts, weir_sub **out);
int weiri_sub_start(weir_sub *s);
/*
 * weiri_sub_quiet - whether s has nothing queued, in flight or pinned,
 * adding to *moves a sum of counters that only grow, so that two equal
 * sums over the same subscriptions mean none of them moved in between.
 */
bool weiri_sub_quiet(const weir_sub *s, uint64_t *moves);
/*
 * weiri_sub_drain - shut s, let its workers drain it until the deadline,
 * then stop and join them and release what is left (counted queued).
 * Returns 0, or WEIR_ETIMEDOUT if messages were left.
 */
int weiri_sub_drain(weir_sub *s, int64_t deadline);
void weiri_sub_free(weir_sub *s);
bool weiri_sub_await_permit(weir_sub *s);
/*
 * weiri_sub_took - a worker of s took batch[0..n-1] off its queue,
 * asking for want: count started those of no batch, and note the depth
 * they show.
 */
void weiri_sub_took(weir_sub *s, void *const *batch, size_t n, size_t want);
/*
 * weiri_sub_admit - whether a message a worker took is to be handled:
 * one of a batch waits for its commit's decision and is counted started
 * if it committed, released if not (the abort counted it voided).
 * Inline: a worker asks for every message, and most have no batch.
 */
bool weiri_sub_admit_gated(weir_sub *s, weiri_body *b);

static inline bool
weiri_sub_admit(weir_sub *s, weiri_body *b)
{
    return b->gate == NULL || weiri_sub_admit_gated(s, b);
}

/* place.c: a subscription's queue, as the bus and its workers use it */
/* The subscription whose worker this thread is, if any (set by sub.c). */
extern _Thread_local const weir_sub *weiri_current_sub;
bool weiri_in_handler_of(const weir_bus *bus, const weir_sub *sub);
/*
 * weiri_bus_refuses - whether a publish by the calling thread is refused
 * for the bus's close: from outside once it is closed, from its own
 * workers once it is sealed.
 */
bool weiri_bus_refuses(weir_bus *bus);
/*
 * weiri_sub_offer - place b (one reference for s) by s's policy without
 * waiting.  Returns 0 (placed, or dropped by a DROP policy), WEIR_EAGAIN
 * (REJECT, full; counted rejected), WEIR_ECLOSED (s is shut; not
 * counted), the reference then released; or WEIRI_MUST_WAIT: s is a full
 * BLOCK queue and the reference is still the caller's, to pass to
 * weiri_sub_wait outside the read section, s pinned for that wait.
 */
#define WEIRI_MUST_WAIT 1
int weiri_sub_offer(weir_sub *s, weiri_body *b);
/*
 * weiri_sub_wait - place b in s's BLOCK queue, waiting for room until
 * the deadline, and while *stop (if not NULL) is false.  Returns 0;
 * WEIR_ETIMEDOUT (counted rejected); WEIR_EDEADLK (counted rejected): the
 * caller is a worker of s and every other one is waiting the same way,
 * so no one would make room; WEIR_ECLOSED (s shut, or *stop ended the
 * wait; not counted).  The reference is released on every non-zero
 * return.
 */
int weiri_sub_wait(weir_sub *s, weiri_body *b, int64_t deadline,
                   const _Atomic bool *stop);
/*
 * weiri_sub_wait_begin - before the calling thread waits for room in s,
 * without limit if unbounded: false when that wait is unbounded, the
 * caller is a worker of s and every other worker of s waits so too, for
 * then nobody is left to make room (WEIR_EDEADLK).  On true, call
 * weiri_sub_wait_end after the wait.  s is touched only if the caller
 * is its worker.
 */
bool weiri_sub_wait_begin(const weir_bus *bus, weir_sub *s, bool unbounded);
void weiri_sub_wait_end(const weir_bus *bus, weir_sub *s);
/* Pin s while waiting outside a read section (see weir_sub.pins). */
void weiri_sub_pin(weir_sub *s);
void weiri_sub_unpin(weir_sub *s);
/*
 * The rest, on whichever kind of queue s has:
 * weiri_sub_claim / weiri_sub_fill: as weiri_queue_claim / fill.
 * weiri_sub_place: push without waiting (0, WEIR_EAGAIN, WEIR_ECLOSED).
 * weiri_sub_has_room: closed, or room for need more now.
 * weiri_sub_shut: refuse every later message.
 * weiri_sub_take: take up to n, as weir_queue_pop_burst.
 * weiri_sub_waiting: placed and not yet taken, now.
 * weiri_sub_pushed: ever placed (only grows).
 * weiri_sub_drop_queued: let go of one taken off the queue without a
 * worker: counted dropped (left false) or, left by a close, queued.
 */
int weiri_sub_claim(weir_sub *s, size_t *pos);
void weiri_sub_fill(weir_sub *s, size_t pos, weiri_body *b);
int weiri_sub_place(weir_sub *s, weiri_body *b);
size_t weiri_sub_capacity(const weir_sub *s);
bool weiri_sub_has_room(const weir_sub *s, size_t need);
void weiri_sub_shut(weir_sub *s);
long weiri_sub_take(weir_sub *s, void **batch, size_t n, int64_t timeout_ns);
size_t weiri_sub_waiting(const weir_sub *s);
uint64_t weiri_sub_pushed(const weir_sub *s);
void weiri_sub_drop_queued(weir_sub *s, weiri_body *b, bool left);

/* deliver.c: the careful workers (see weir_sub.careful) */
int weiri_deliver_setup(weir_sub *s, const weir_sub_opts *o);
void weiri_deliver_teardown(weir_sub *s);
/* A careful worker's life: returns when it is to exit. */
void weiri_deliver_run(weiri_worker *w);
/* After the workers are joined: release what they left, counted as queued. */
void weiri_deliver_release_left(weir_sub *s);
/*
 * weiri_deliver_give_up_retries - refuse new retries on bus (a failure
 * is then given up at once) and release the pending ones, counted as
 * queued: weir_bus_destroy does not wait for backoffs.
 */
void weiri_deliver_give_up_retries(weir_bus *bus);

/* bus.c */
/* What became of a body the bus offered to a topic's subscriptions. */
typedef struct weiri_routed {
    size_t placed;   /* subscriptions that took it; SIZE_MAX: the topic had none */
    size_t gone;     /* refusals because of a close: a closed queue, or a wait
                        for room that *stop ended */
} weiri_routed;
/*
 * weiri_bus_relay - offer b, a dead letter (written, refs 0, with the id
 * of the message it came from), to every subscription of topic by their
 * policies, a full BLOCK queue waiting until *stop turns true.  It keeps
 * its id and is never counted unrouted.  Returns how many subscriptions
 * took it; SIZE_MAX if the topic had none (b is released).
 */
size_t weiri_bus_relay(weir_topic *topic, weiri_body *b, const _Atomic bool *stop);
/*
 * weiri_bus_forwards_refused - count n publishes refused for the bus's
 * close in forwards_refused, if the caller is one of its workers.
 * Returns WEIR_ECLOSED.
 */
int weiri_bus_forwards_refused(weir_bus *bus, uint64_t n);
/*
 * weiri_check_publish - the argument checks of every publish, routed or
 * not: 0 or WEIR_EINVAL.  *key_len receives the key's length (0 without
 * a key).  Inline for a publish without options; weiri_check_pub_opts
 * checks those.
 */
int weiri_check_pub_opts(const weir_pub_opts *opts, size_t *key_len);

static inline int
weiri_check_publish(const void *data, size_t len, const weir_pub_opts *opts,
                    size_t *key_len)
{
    *key_len = 0;
    if ((data == NULL && len > 0) || len > WEIR_MAX_PAYLOAD)
        return WEIR_EINVAL;
    return opts == NULL ? 0 : weiri_check_pub_opts(opts, key_len);
}

#endif /* WEIR_BUS_INTERNAL_H */
