/* SPDX-License-Identifier: MIT */
/*
 * bus_internal.h - PRIVATE to lib/: the structures the files of lib/bus
 * share (the bus, its topics and read slots, a subscription and its
 * workers).  Each module's functions are declared in its own header
 * (lib/README.md lists them).
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
#include "journal_internal.h"
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
    struct weir_topic *next;       /* hash chain; fixed before the topic is
                                      published */
    weir_bus *bus;
    _Atomic(weiri_subset *) subs;  /* current snapshot, NULL if none; written
                                      under bus->mu */
    /*
     * Read sections that found every slot of bus->readers taken count
     * themselves here, per epoch parity, so that a writer can wait for the
     * ones that started before it changed subs.
     */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic uint64_t shared[2];
    _Atomic unsigned epoch;        /* parity new sections count under; under
                                      bus->grace_mu */
    _Atomic bool durable;          /* its publishes go to the journal first;
                                      set once, under bus->mu */
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
 * topic's store when the slot already names it was slower; see
 * bench/NOTES.md.)  Each slot has its own line.
 * A thread tries the slot it had last, so a publishing thread keeps
 * reusing one line.
 */
#define WEIRI_READER_SLOTS 64

typedef struct weiri_reader {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic uint64_t mark;         /* 0: free; else 1 + the epoch its holder
                                      entered under */
    _Atomic(weir_topic *) topic;   /* the holder's topic; stale while free */
    weiri_body *spare;             /* the next publish's body
                                      (weiri_body_ahead), or NULL; only the
                                      holder touches it */
} weiri_reader;

struct weir_bus {
    pthread_mutex_t mu;            /* guards topic creation, every subs
                                      snapshot change, the subscription list
                                      and closing */
    pthread_mutex_t grace_mu;      /* serialises weiri_topic_quiesce, which
                                      moves epoch */
    _Atomic(weir_topic *) buckets[WEIRI_TOPIC_BUCKETS]; /* chains only grow;
                                                           read lock-free */
    weir_sub *all;                 /* every subscription not closed on its own;
                                      under mu */
    uint64_t subs_made;            /* serials handed out (weir_sub.serial);
                                      under mu */
    _Atomic unsigned closing_subs; /* weir_sub_close calls past taking their
                                      subscription out of all, not yet done */
    _Atomic unsigned waiters;      /* publishes between their read section
                                      and the end of their waits for room */
    weir_mpmc bodies;              /* free small message bodies
                                      (msg_internal.h) */
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
    _Atomic uint64_t next_id;      /* message ids handed out; written by every
                                      routed publish */
    _Atomic uint64_t unrouted;     /* publishes to a topic with no
                                      subscription */
    weiri_journal *journal;        /* or NULL: no durable topics; fixed */
    uint64_t id_base;              /* the journal's highest id at create */
    _Atomic uint64_t unused_ids;   /* ids handed to batches that then aborted */
    /* Read sections (see weiri_reader). */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic uint64_t epoch;        /* moved by weiri_topic_quiesce, under
                                      grace_mu */
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
    bool limited;                  /* a rate was set: limiter paces handler
                                      starts */
    weir_limiter limiter;
    unsigned nworkers;             /* as configured; fixed */
    unsigned running;              /* workers started and not yet joined */
    struct weiri_worker *workers;  /* nworkers of them */
    char *name;                    /* for statistics */
    weir_sub *next, *prev;         /* in bus->all; under bus->mu */
    _Atomic bool abort;            /* the drain timed out: stop handling */
    _Atomic unsigned live;         /* workers that have not exited */
    /*
     * Publishers waiting for room outside their read section
     * (publish.c's wait_for_room, for every kind of publish):
     * each pins s there, so s is not freed under it; its closer waits
     * for none to be left (weiri_sub_drain).
     */
    _Atomic unsigned pins;
    _Atomic unsigned self_waits;   /* own workers waiting for room in s
                                      (weiri_sub_wait_begin) */
    weiri_event wake;              /* workers waiting for a permit, and the
                                      closer waiting for live == 0, sleep
                                      here */
    /* Written by publishers (routed is counted by the queue itself). */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic uint64_t dropped, dropped_in, rejected;
    /* Written by workers. */
    WEIR_ALIGNAS(WEIR_CACHELINE)
    _Atomic uint64_t started, delivered, acked, failed, high_water;
    _Atomic uint64_t retried, dead_lettered, duplicates;
    _Atomic uint64_t voided;       /* placed by a batch commit that then
                                      aborted */
    _Atomic bool gated;            /* a batch commit has placed in it; set
                                      once by a commit (relaxed, before that
                                      place), read by every take: here for
                                      the takes */
    _Atomic uint64_t left;         /* taken, then released unhandled (counted
                                      queued): weiri_work_put_back */

    /*
     * Durable (durable.c): fed from the journal by a thread of its own,
     * never from publishes; fixed at subscribe.
     */
    weiri_jsub *jsub;              /* or NULL */
    pthread_t feeder;
    bool feeding;                  /* the feeder runs, to be joined */
    _Atomic bool feed_stop;        /* the feeder is to stop */
    _Atomic bool feed_failed;      /* a record could not be read back: the
                                      feeder stopped for good */
    _Atomic uint64_t redelivered;  /* written by the feeder */

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
     * (its callback, deliver.c's retry_due, runs under it).  Nothing else
     * is taken while either is held, and no handler runs under them.
     */
    pthread_mutex_t mu;            /* careful only: guards ready and keys */
    pthread_mutex_t take_mu;       /* ordered: one worker at a time takes
                                      from the queue */
    weiri_delivery *ready, *ready_tail; /* retries that came due, oldest
                                           first */
    _Atomic size_t ready_n;        /* how many are on ready */
    _Atomic size_t pending;        /* retries scheduled and not yet taken off
                                      ready */
    _Atomic uint32_t kick;         /* moves when ready gains one; see
                                      deliver.c */
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

/* Acks a worker of a durable subscription gathers into one record. */
enum { WEIRI_WORKER_ACKS = 32 };

/*
 * One worker thread of a subscription, with the histogram it alone
 * writes, and the journal entries it finished and has not yet acked.
 */
typedef struct weiri_worker {
    WEIR_ALIGNAS(WEIR_CACHELINE)
    weiri_hist latency;            /* publish to handler return */
    weir_sub *sub;
    pthread_t thread;
    unsigned nacks;
    uint64_t acks[WEIRI_WORKER_ACKS];
} weiri_worker;

#endif /* WEIR_BUS_INTERNAL_H */
