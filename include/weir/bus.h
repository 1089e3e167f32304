/* SPDX-License-Identifier: MIT */
/*
 * weir/bus.h - publish/subscribe inside one process.
 *
 * A bus has topics; a subscription attaches a handler to a topic and runs
 * it on its own worker threads, fed by its own bounded queue.  Publishing
 * copies the payload once into an immutable, reference-counted message
 * that every subscription of the topic shares, places it in each
 * subscription's queue and returns: the publisher never runs handlers.
 *
 * Delivery semantics:
 *   - Fan-out: every subscription of a topic receives every message
 *     published to it after the subscription was made and before it was
 *     closed.  A topic with no subscription accepts the publish and counts
 *     it as unrouted.
 *   - Order: one worker sees its subscription's messages in publish order.
 *     With several workers, messages are handed out in publish order but
 *     may finish in any order.
 *   - Isolation: a slow or failing subscription holds up no other; only
 *     the BLOCK overflow policy makes a publisher wait, within its timeout.
 *   - A handler returns 0 to acknowledge; any other value is a failure.
 *     Without retries the message is then counted failed (or dead-lettered)
 *     and the worker goes on with the next one.
 *   - Nothing disappears uncounted: per subscription, whenever statistics
 *     are read with no publish in progress,
 *         routed = acked + failed + dead_lettered + dropped + queued
 *                  + in_flight.
 *   - Close drains the bus as a whole: publishes from outside are
 *     refused, while what the bus's own handlers publish (a pipeline's
 *     next stage, a dead letter) is still taken and delivered, so a
 *     pipeline of any depth empties within the drain timeout.  What is
 *     left when it runs out is reported as queued, and the forwards then
 *     refused in the bus's forwards_refused.  Messages in memory are
 *     lost if the process dies.
 *
 * Retries, dead letters, order, duplicates (weir_sub_opts):
 *   - Retry with backoff.  With max_attempts > 1, a message whose handler
 *     fails is delivered again after retry_backoff_ns * retry_multiplier^(k-1)
 *     (k: the attempt that failed), capped at retry_backoff_max_ns, drawn
 *     from [backoff/2, backoff] with retry_jitter; weir_msg_attempt says
 *     which delivery it is and weir_msg_last_error what the previous one
 *     returned.  While it waits it holds no worker: one timer thread of the
 *     bus keeps every waiting retry (delayed publishes have another).  It
 *     counts as in flight, and each retry in retried.
 *   - Dead letters.  After its last attempt a message is published to
 *     dead_letter_topic if set (counted dead_lettered), else counted
 *     failed.  The dead letter keeps the original's payload, key and id;
 *     its handlers also see weir_msg_origin_topic, weir_msg_attempt = the
 *     attempts made, and weir_msg_last_error.  Dead letters are not
 *     counted in the bus's published.  A dead letter that no subscription
 *     takes (all of them full with REJECT, or closed) counts as failed;
 *     one whose topic has no subscription at all (a misspelt name) counts
 *     as failed too, and in the bus's dead_letters_unrouted.
 *   - Per-key order.  With ordered_by_key, messages with the same key are
 *     handled one at a time, in publish order, retries included, while
 *     other keys run in parallel on the other workers; messages without a
 *     key go to any worker.  Head-of-line blocking: a message waiting for
 *     its retry holds back every later message of its key (not of other
 *     keys) until it is acked or given up.
 *   - Duplicate suppression.  With dedup_window_ns, a message whose key
 *     was seen within the window (among the last dedup_max_keys keys) is
 *     not handled: it is counted acked and duplicates.  The key is
 *     remembered when its first message is taken, before the handler runs.
 *   - At least once, at most once.  A handler may see a message more than
 *     once: retries re-deliver after a failure, even one that happened
 *     after the handler did its work (at-least-once).  With duplicate
 *     suppression a key is handled at most once per window, even if that
 *     handling failed for good (at-most-once per key).  Messages in memory
 *     are lost if the process dies.
 *   - Delayed delivery (weir_pub_opts.delay_ns): the message is routed
 *     when due, to the subscriptions the topic has then; equal due times
 *     keep publish order.  It gets its id, and counts in published, then.
 *   - Atomic batches (weir_batch_*): the messages of a batch become
 *     visible to handlers all at once on commit, or never.
 *
 * Durable topics (weir_bus_opts.journal_dir, weir/journal.h):
 *   - A publish to a durable topic (weir_bus_durable_topic, or one with
 *     a durable subscription) returns 0 only once the message is in the
 *     journal under the sync policy, and then whatever its subscriptions
 *     in memory did with it (each counts its refusals); any other result
 *     means it was not accepted, though one whose write or sync failed
 *     (WEIR_EIO) may have reached the disk and be handed out after a
 *     restart.  Under every policy a process that dies loses nothing
 *     that returned 0; a machine that loses power loses nothing under
 *     EVERY and BATCH, and under NONE what the kernel had not written.
 *   - A batch's messages to durable topics are journaled together, once
 *     every subscription in memory took its share and before any
 *     handler may see one: all of them with one write and one sync, and
 *     after a crash or a power loss the journal holds all of them or
 *     none.  A commit the journal refuses places nothing anywhere.
 *   - A delayed publish to a durable topic is journaled when published
 *     (accepted as any durable publish) and routed when due, as a
 *     durable publish then.  One that a close gives up (delayed_left),
 *     or that a crash interrupts, stays in the journal: the next bus on
 *     the directory routes it when due (the due time is kept as
 *     CLOCK_REALTIME; at once if it has passed; weir_bus_stats.delayed
 *     counts it from weir_bus_create on).  Until due it keeps its
 *     journal segment, and those after it, from being deleted.
 *   - A durable subscription (weir_sub_opts.durable, with a name) is fed
 *     from the journal by a thread of its own, at its own pace: its
 *     overflow policy is not used, nothing is dropped or rejected, and
 *     its capacity bounds only memory.  It acknowledges a message in the
 *     journal when the message is done for good (handler returned 0,
 *     dead-lettered, or failed after its last attempt), without a sync
 *     of its own: under EVERY and BATCH the next durable publish writes
 *     the acks with its message; otherwise they are written within
 *     10 ms, and a close writes what waits.  After a crash a message
 *     may come again (one acked in its last 10 ms), never be lost.
 *   - weir_bus_create on the same directory reads the journal back.  A
 *     durable subscription made again with the same name (any options)
 *     is handed first every message accepted and not acknowledged, in
 *     journal order (publish order per key, and for one worker),
 *     weir_msg_redelivered true, then new ones.  What was published
 *     while it was away (closed, or before the restart) waits for it; a
 *     name the journal does not know starts at the end.  weir_sub_close
 *     keeps its place; weir_bus_forget_durable drops it.  Ids go on
 *     after the journal's highest; a message handed out again keeps its
 *     id.  In-memory subscriptions of a durable topic work as usual.
 *   - weir_bus_close hands every durable subscription what the journal
 *     holds for it (the drain's forwards and dead letters too) and
 *     writes the acknowledgements, so a clean close followed by a
 *     restart hands out nothing again.  A dead letter to a durable topic
 *     is journaled with its origin topic, attempts and last error, which
 *     its handlers see after a restart too.
 *   - Segments are deleted once every durable subscription has
 *     acknowledged all of them.  One bus per directory (WEIR_EBUSY);
 *     WEIR_EIO for a disk that refuses; WEIR_ECORRUPT for damage before
 *     the journal's last record (a torn last record is cut: bus
 *     statistics, journal_truncated).
 *
 * Locks: the bus has one mutex, taken by subscribe, close and topic
 * creation, never by a publish of an existing topic and never while a
 * handler runs.  Handlers run with no weir lock held.  A publish waiting
 * for room in a full BLOCK queue holds nothing that weir_bus_subscribe
 * or weir_sub_close waits for: they never wait for it.  weir_bus_close
 * lets it place its message while the bus drains, within its timeout.
 * A publish to a durable topic stays in its topic's section while the
 * journal syncs (EVERY, BATCH): a subscribe or close of that topic waits
 * for the sync, never for a queue.
 */
#ifndef WEIR_BUS_H
#define WEIR_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "dedup.h"
#include "journal.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weir_bus weir_bus;
typedef struct weir_topic weir_topic;
typedef struct weir_sub weir_sub;
typedef struct weir_msg weir_msg;

/*
 * Limits.  A topic name is 1 to WEIR_TOPIC_MAX bytes of letters, digits
 * and the characters . _ - : / (the characters * and > are reserved for
 * wildcard patterns).  A key is a NUL-terminated string of at most
 * WEIR_KEY_MAX bytes.  Larger values are WEIR_EINVAL.
 */
#define WEIR_TOPIC_MAX     255
#define WEIR_KEY_MAX       255
#define WEIR_MAX_WORKERS   64
#define WEIR_MAX_CAPACITY  ((size_t)1 << 24)
#define WEIR_MAX_PAYLOAD   ((size_t)1 << 30)
#define WEIR_MAX_ATTEMPTS  1000

/*
 * weir_handler - called on a subscription's worker thread for each
 * message.  msg and everything reachable from it are valid only during
 * the call: copy what you need to keep.  Return 0 to acknowledge; any
 * other value counts the message as failed.  A handler may publish, and
 * subscribe or close other subscriptions; closing its own subscription or
 * its bus from inside the handler returns WEIR_EDEADLK.  A publish
 * without a timeout (or a batch commit with WEIR_FOREVER) from a handler
 * to its own subscription's full BLOCK queue waits for room while another
 * worker of that subscription could make it; when every other worker is
 * waiting the same way (at once with one worker), it returns WEIR_EDEADLK
 * instead of waiting for ever.  With a timeout it waits that long.
 */
typedef int (*weir_handler)(const weir_msg *msg, void *ctx);

/* weir_bus_opts - options for weir_bus_create; NULL or zeroed = defaults. */
typedef struct weir_bus_opts {
    unsigned reserved;                /* set to 0 */
    /* Durable topics (see "Durable topics" below). */
    const char *journal_dir;          /* NULL = no durable topics; created
                                         if missing (not its parents);
                                         copied */
    weir_sync   journal_sync;         /* 0 = WEIR_SYNC_BATCH */
    int64_t     journal_sync_wait_ns; /* BATCH: longest a publish waits
                                         to share a sync; 0 = 1 ms */
    size_t      journal_segment_bytes; /* 0 = 64 MiB; at least 1 MiB */
    size_t      journal_max_bytes;    /* 0 = no bound; else at least two
                                         segments; at the bound a durable
                                         publish returns WEIR_EAGAIN
                                         (nothing is deleted
                                         unacknowledged) */
} weir_bus_opts;

/* What a subscription does when its queue is full at publish time. */
typedef enum {
    WEIR_OVERFLOW_BLOCK = 0,     /* the publisher waits for room
                                    (its timeout) */
    WEIR_OVERFLOW_REJECT,        /* the publish returns WEIR_EAGAIN for it */
    WEIR_OVERFLOW_DROP_OLDEST,   /* the oldest queued message is dropped */
    WEIR_OVERFLOW_DROP_NEWEST    /* the new message is dropped */
} weir_overflow;

/* weir_sub_opts - options for weir_bus_subscribe; NULL or zeroed = defaults. */
typedef struct weir_sub_opts {
    const char   *name;          /* for statistics; NULL = the topic's name;
                                    copied */
    unsigned      workers;       /* 0 = 1; at most WEIR_MAX_WORKERS */
    size_t        capacity;      /* queue bound; 0 = 1024; at most
                                    WEIR_MAX_CAPACITY */
    weir_overflow overflow;      /* 0 = WEIR_OVERFLOW_BLOCK */
    double        rate_per_sec;  /* handler starts per second; 0 = unlimited */
    double        burst;         /* 0 = 1 when a rate is set */
    /*
     * Delivery guarantees (see "Retries, dead letters, order, duplicates"
     * above).
     */
    unsigned      max_attempts;          /* deliveries at most; 0 or 1 = no
                                            retry; at most WEIR_MAX_ATTEMPTS */
    int64_t       retry_backoff_ns;      /* first backoff; 0 = 10 ms */
    double        retry_multiplier;      /* 0 = 2.0; at least 1 */
    int64_t       retry_backoff_max_ns;  /* 0 = 1 s, or the first backoff if
                                            longer; else at least the first
                                            backoff */
    bool          retry_jitter;          /* spread retries over
                                            [backoff/2, backoff] */
    const char   *dead_letter_topic;     /* NULL = none; copied */
    bool          ordered_by_key;        /* same key: one at a time, in
                                            publish order */
    int64_t       dedup_window_ns;       /* 0 = no duplicate suppression */
    size_t        dedup_max_keys;        /* bound on remembered keys;
                                            0 = 65536 */
    bool          durable;               /* its place is kept in the
                                            journal under name (then
                                            required, unique per topic,
                                            stable across runs); see
                                            "Durable topics" */
} weir_sub_opts;

/* weir_pub_opts - options for a publish; NULL or zeroed = defaults. */
typedef struct weir_pub_opts {
    const char *key;             /* NULL = none; copied */
    int64_t     timeout_ns;      /* how long a publish may block on a full BLOCK
                                    queue: 0 (the default) or WEIR_FOREVER = no
                                    limit; WEIR_NOWAIT = not at all: a full
                                    BLOCK queue refuses at once (WEIR_EAGAIN,
                                    counted rejected); > 0 = that many ns, then
                                    WEIR_ETIMEDOUT */
    int64_t     delay_ns;        /* deliver no earlier than this; 0 = now */
} weir_pub_opts;

/*
 * weir_sub_stats - one subscription's counters.  Each is exact on its
 * own; together they are a snapshot taken without stopping anyone.
 */
typedef struct weir_sub_stats {
    uint64_t routed;     /* messages placed in the queue, or
                            dropped on the way in */
    uint64_t delivered;  /* handler calls */
    uint64_t acked;      /* handler calls that returned 0 */
    uint64_t failed;     /* handler calls that returned non-zero */
    uint64_t dropped;    /* by DROP_OLDEST or DROP_NEWEST */
    uint64_t rejected;   /* publishes turned away (REJECT full, BLOCK timed out,
                            would deadlock, no memory to wait, or refused by
                            the bus's close after its drain); not routed */
    uint64_t retried;    /* deliveries that failed and were scheduled again */
    uint64_t dead_lettered; /* given up and published to the dead-letter
                               topic */
    uint64_t queued;     /* routed, not yet taken by a worker; after a close,
                            left unhandled.  While a worker is taking a
                            message off the queue it still counts here,
                            so with new ones behind it a read may see
                            up to capacity + workers' takes */
    uint64_t high_water; /* most messages seen queued, at most the capacity; a
                            worker taking a burst estimates it from above */
    uint64_t in_flight;  /* taken by a worker, handler not yet returned */
    int64_t  latency_p50_ns, latency_p99_ns, latency_max_ns;
                         /* publish to handler return, over all handled messages
                            of all workers; p50/p99 are the top of a bucket
                            a quarter of a power of two wide (at most 25%
                            above the true value), never above
                            latency_max_ns, which is exact; the clock is read
                            after every 8th handler of a worker's batch, so a
                            value may include up to 7 later
                            handlers of the batch */
    uint64_t duplicates; /* skipped by duplicate suppression;
                            counted in acked too */
    uint64_t redelivered; /* durable: messages handed to it again, accepted
                             before a restart (or handed out before a
                             close) and not acknowledged */
} weir_sub_stats;

/* weir_bus_stats - counters of the whole bus. */
typedef struct weir_bus_stats {
    uint64_t published;  /* publishes accepted (routed anywhere or not) */
    uint64_t unrouted;   /* of those, published to a topic with no
                            subscription */
    uint64_t delayed;    /* delayed publishes accepted and not yet due */
    uint64_t delayed_left; /* delayed publishes given up by weir_bus_close
                              (or weir_bus_destroy): not due within its timeout,
                              or due and still waiting for room in a full BLOCK
                              queue when it ran out (that subscription does not
                              count it rejected); not counted in published */
    uint64_t forwards_refused; /* messages the bus's own handlers published
                                  (also delayed, in a batch, or as dead
                                  letters) that its close refused, wholly
                                  or for some of their subscriptions (each
                                  of which counts it rejected): its drain
                                  had run out of time */
    uint64_t dead_letters_unrouted; /* dead letters to a topic with no
                                       subscription (counted failed there) */
    /* The journal (all 0 without one). */
    uint64_t journal_bytes;     /* in its segment files */
    uint64_t journal_segments;
    uint64_t journal_syncs;     /* fdatasync calls for durable publishes */
    uint64_t journal_recovered; /* records read back by weir_bus_create */
    uint64_t journal_truncated; /* bytes weir_bus_create cut from the end
                                   of the last segment: a write torn by a
                                   crash (records never acknowledged to a
                                   publisher under EVERY or BATCH) */
} weir_bus_stats;

/*
 * weir_bus_create - make a bus and store it in *bus.  opts may be NULL.
 * With journal_dir, open (or make) the journal there and read it back.
 * Returns 0, WEIR_EINVAL (bus NULL, opts->reserved non-zero, a journal
 * option out of range), WEIR_EBUSY (another bus, of this process or
 * another, has the directory), WEIR_EIO (the directory cannot be made,
 * read or written), WEIR_ECORRUPT (the journal is damaged before its
 * last record) or WEIR_ENOMEM.  Free with weir_bus_destroy.
 */
int weir_bus_create(weir_bus **bus, const weir_bus_opts *opts);

/*
 * weir_bus_subscribe - run fn(msg, ctx) on its own workers for every
 * message published to topic from now on (durable: see "Durable topics";
 * it also returns WEIR_EINVAL without a journal or a name, WEIR_EEXIST
 * for a name subscribed already, WEIR_EIO).  opts and sub may be NULL; if
 * sub is not NULL it receives a handle for weir_sub_close and statistics,
 * valid until weir_sub_close returns or weir_bus_destroy.  Creates the
 * topic if needed.  Returns 0; WEIR_EINVAL (NULL bus, topic or fn, a bad
 * topic name, options out of range: workers or capacity over the maximum,
 * an unknown overflow policy, a rate or burst that is negative, NaN or
 * infinite, a rate above 1e9, or a burst below 1 with a rate set;
 * max_attempts over WEIR_MAX_ATTEMPTS, a negative backoff or dedup
 * window, a multiplier below 1, a backoff cap below the first backoff,
 * dedup_max_keys over WEIR_DEDUP_MAX_KEYS, a bad dead-letter topic name
 * or the subscription's own topic); WEIR_ECLOSED (the bus is closed);
 * WEIR_ENOMEM (memory or threads).  On failure nothing was subscribed.
 * Any thread, also from a handler.
 *
 * Memory: a subscription's queue takes 16 bytes per place of capacity,
 * rounded up to a power of two, allocated at once.  The first
 * subscription of a topic that has one worker, no delivery guarantee and
 * a policy other than DROP_OLDEST, with a capacity up to 65,536, takes
 * 64 bytes per place instead: while it is its topic's only subscription,
 * a message whose payload and key (with the key's NUL) fit in 23 bytes
 * is written whole into its queue rather than into a shared copy.  What
 * a handler sees is the same either way.
 */
int weir_bus_subscribe(weir_bus *bus, const char *topic, weir_handler fn,
                       void *ctx, const weir_sub_opts *opts, weir_sub **sub);

/*
 * weir_sub_close - unsubscribe: no message published after the call
 * starts reaches sub; those already queued, and the retries pending, are
 * handled within drain_timeout_ns (WEIR_FOREVER, WEIR_NOWAIT, or ns),
 * then the workers are joined and sub is freed.  Returns 0 (everything
 * drained) or WEIR_ETIMEDOUT (workers stopped after their current
 * message and some messages were released unhandled: see
 * weir_sub_close_stats to learn how many).  Either way sub is freed.
 * Returns WEIR_EINVAL for NULL sub or a bad timeout, WEIR_EDEADLK from one
 * of sub's own handlers, WEIR_ECLOSED if the bus was closed (the handle
 * then stays valid until weir_bus_destroy), WEIR_ENOMEM if there was no
 * memory for the topic's new list of subscriptions (nothing changed: sub
 * is still subscribed).  A publisher waiting for room in sub's full queue
 * is told WEIR_ECLOSED.  Blocks while a handler of sub runs; a handler
 * that never returns makes it wait for ever.
 */
int weir_sub_close(weir_sub *sub, int64_t drain_timeout_ns);

/*
 * weir_sub_close_stats - weir_sub_close, and when it returns 0 or
 * WEIR_ETIMEDOUT, sub's final statistics in *final (if not NULL): what
 * it handled, and as queued what it released unhandled.  Otherwise
 * *final is not written.
 */
int weir_sub_close_stats(weir_sub *sub, int64_t drain_timeout_ns,
                         weir_sub_stats *final);

/*
 * weir_sub_name - the name sub was given (weir_sub_opts.name, or its
 * topic's), valid as long as sub; NULL for NULL.  Any thread.
 */
const char *weir_sub_name(const weir_sub *sub);

/*
 * weir_bus_topic - look up topic, creating it if needed, and store a
 * handle valid until weir_bus_destroy in *out.  Publishing through the
 * handle skips the name lookup.  Returns 0, WEIR_EINVAL, WEIR_ECLOSED or
 * WEIR_ENOMEM.
 */
int weir_bus_topic(weir_bus *bus, const char *topic, weir_topic **out);

/*
 * weir_bus_durable_topic - declare topic durable (idempotent) and store
 * its handle in *out, as weir_bus_topic does.  Returns 0, WEIR_EINVAL
 * (NULL argument, a bad name, or a bus made without journal_dir),
 * WEIR_ECLOSED or WEIR_ENOMEM.  Any thread.
 */
int weir_bus_durable_topic(weir_bus *bus, const char *topic,
                           weir_topic **out);

/*
 * weir_bus_forget_durable - drop the durable subscription sub_name of
 * topic for good, so that it no longer holds segments of the journal.
 * Returns 0, WEIR_EINVAL (NULL argument, no journal), WEIR_ENOENT (the
 * journal does not know it), WEIR_EBUSY (it is subscribed now: close it
 * first), WEIR_EIO or WEIR_ENOMEM.  Any thread.
 */
int weir_bus_forget_durable(weir_bus *bus, const char *topic,
                            const char *sub_name);

/*
 * weir_bus_publish - copy len bytes at data (data may be NULL when len is
 * 0) into one message and place it in the queue of every subscription of
 * topic, following each one's overflow policy.  opts may be NULL.
 * Returns 0 when every subscription took it (or there is none);
 * WEIR_EAGAIN when a REJECT subscription was full (or a BLOCK one, with
 * opts->timeout_ns WEIR_NOWAIT); WEIR_ETIMEDOUT when a BLOCK subscription
 * stayed full past opts->timeout_ns; WEIR_EDEADLK when a handler
 * publishes, without a timeout, to its own subscription's full BLOCK
 * queue that no other worker of it could empty (see weir_handler);
 * WEIR_ENOMEM when there was no memory to note a full BLOCK queue to wait
 * for (beyond 8 at once); in each case the other subscriptions still got
 * the message, and when several apply the first of ETIMEDOUT, EDEADLK,
 * ENOMEM, EAGAIN is returned.  WEIR_ECLOSED after weir_bus_close (from
 * the bus's own handlers: once its drain is over, see weir_bus_close), or
 * when every subscription it was offered to was closed before it could
 * take it (a close while it waited for room): the message reached nobody
 * and is not counted published.  WEIR_EINVAL for NULL bus or topic, a bad
 * name or key, len over WEIR_MAX_PAYLOAD, NULL data with len > 0, a
 * timeout below WEIR_NOWAIT, or a negative delay; WEIR_ENOMEM (the
 * message could not be made).  The caller keeps data and the key.  Any
 * thread, also from a handler.  Message ids are unique and increasing per
 * bus, in the order messages are routed.
 *
 * With opts->delay_ns > 0 the call copies the message and returns 0 at
 * once (or WEIR_ECLOSED, WEIR_EINVAL, WEIR_ENOMEM); when it is due, the
 * bus's timer thread routes it to the topic's subscriptions of that
 * moment, each by its policy (a BLOCK queue waits up to timeout_ns, on
 * the bus's delay thread, holding back later delayed messages but never
 * retries, which have their own thread).  A delayed publish to a topic
 * that does not exist creates it.  To a durable topic it returns once
 * journaled, and also WEIR_EAGAIN or WEIR_EIO as a durable publish does
 * (see "Durable topics").
 */
int weir_bus_publish(weir_bus *bus, const char *topic, const void *data,
                     size_t len, const weir_pub_opts *opts);

/* weir_topic_publish - as weir_bus_publish, on a handle from weir_bus_topic. */
int weir_topic_publish(weir_topic *topic, const void *data, size_t len,
                       const weir_pub_opts *opts);

/*
 * weir_bus_close - stop accepting publishes from outside the bus (they
 * return WEIR_ECLOSED; one already waiting for room still gets it, or,
 * if the drain runs out first, is refused by the subscriptions it waits
 * for, counted rejected there), deliver the delayed messages that come
 * due within drain_timeout_ns, and drain the bus as a whole within the
 * same timeout (one deadline for all): every subscription handles what
 * is queued and finishes its retries, and what its handlers publish
 * meanwhile (delayed publishes and batches too) is accepted and handled
 * too, until no subscription has anything queued or in flight, no
 * delayed message is left and no weir_sub_close is under way.  Then it
 * refuses those publishes too and joins every worker thread.  Returns 0,
 * or WEIR_ETIMEDOUT if messages were left unhandled (see each
 * subscription's queued count, and the bus's delayed_left and
 * forwards_refused), WEIR_ECLOSED if already closed, WEIR_EDEADLK from a
 * handler of this bus, WEIR_EINVAL for NULL or a bad timeout.  A
 * weir_sub_close still under way at the deadline goes on without it:
 * join the thread that called it before weir_bus_destroy.  Handlers that
 * forward to each other in a cycle for ever never let the bus go quiet:
 * only a finite timeout ends such a close.  So do two subscriptions that
 * dead-letter to each other's topic with handlers that keep failing (weir
 * refuses only a dead-letter topic that is the subscription's own).
 * Statistics stay readable
 * until weir_bus_destroy.
 */
int weir_bus_close(weir_bus *bus, int64_t drain_timeout_ns);

/*
 * weir_bus_destroy - free the bus, its topics and subscriptions.  Closes
 * it first if needed, draining queues without limit but without waiting
 * for timers: delayed messages not yet due are given up (delayed_left),
 * retries not yet due are left (queued), and a failure meanwhile is
 * given up at once.  Handlers that forward to each other for ever make
 * it wait for ever: close with a timeout first.  No other call on the bus
 * or its handles may run during or after it.  Accepts NULL.
 */
void weir_bus_destroy(weir_bus *bus);

/*
 * Statistics: readable from any thread at any time, also after close
 * until weir_bus_destroy; a few dozen atomic loads.  Return 0 or
 * WEIR_EINVAL (NULL argument).
 */
int weir_sub_get_stats(const weir_sub *sub, weir_sub_stats *out);
int weir_bus_get_stats(const weir_bus *bus, weir_bus_stats *out);

/*
 * Messages, as a handler sees them.  Valid during the handler call only.
 * weir_msg_data points at the payload copy (aligned for any type; NULL
 * never, even for 0 bytes), weir_msg_key is NULL when published without
 * a key, weir_msg_timestamp_ns is the CLOCK_MONOTONIC time of publish,
 * weir_msg_attempt is 1 on the first delivery.  All return 0 or NULL for
 * a NULL msg.
 *
 * The timestamp is read as the publish starts, never earlier than a
 * clock_gettime(CLOCK_MONOTONIC) that returned before the publish was
 * called.  Where the kernel keeps that clock with the CPU's time-stamp
 * counter (x86-64), a publish without a timeout or a delay reads the
 * counter itself, calibrated against the clock (~13 ns against ~30 for
 * clock_gettime when publishes are frequent), and the timestamp may then
 * be up to a few tens of nanoseconds late: on a very short publish, a
 * little past a clock reading taken as it returns.  So timestamps follow
 * publish order only to within that: a publish with a timeout (exact)
 * right after one without may carry a timestamp a few tens of ns before
 * its predecessor's.  Ids, not timestamps, give the order.  The latency
 * statistics use the same reading at both ends.
 */
const void *weir_msg_data(const weir_msg *m);
size_t weir_msg_size(const weir_msg *m);
const char *weir_msg_topic(const weir_msg *m);
const char *weir_msg_key(const weir_msg *m);
uint64_t weir_msg_id(const weir_msg *m);
int64_t weir_msg_timestamp_ns(const weir_msg *m);
unsigned weir_msg_attempt(const weir_msg *m);

/*
 * Dead letters (see above): weir_msg_origin_topic is the topic the
 * message failed on, NULL for a message that is not a dead letter;
 * weir_msg_last_error is what the handler returned on the previous
 * delivery (on a dead letter: on the original's last), 0 if none.
 * Both return NULL or 0 for a NULL m.
 */
const char *weir_msg_origin_topic(const weir_msg *m);
int weir_msg_last_error(const weir_msg *m);

/*
 * weir_msg_redelivered - true for a message a durable subscription is
 * handed again: accepted before a restart (or handed out before its
 * subscription closed) and not acknowledged; an earlier delivery may or
 * may not have run.  false for NULL.
 */
bool weir_msg_redelivered(const weir_msg *m);

/*
 * Atomic batches: the in-process form of a transactional publish.
 *
 * weir_batch_begin - start an empty batch on bus in *batch.  Returns 0,
 * WEIR_EINVAL (NULL argument), WEIR_ECLOSED (closed; a handler of the bus
 * may always begin one: once the drain is over, what it stages is refused
 * at publish or commit, see weir_bus_close) or WEIR_ENOMEM.  A batch
 * belongs to one thread at a time; commit or abort it before
 * weir_bus_destroy.
 *
 * weir_batch_publish - stage a copy of the message, as weir_bus_publish
 * would publish it (creating the topic if needed); nothing is visible
 * yet.  Returns 0, WEIR_EINVAL (as for weir_bus_publish, or a delay:
 * delay_ns must be 0 in a batch), WEIR_ECLOSED or WEIR_ENOMEM; the batch
 * stays usable either way.  opts->timeout_ns is ignored: the commit's
 * timeout applies.
 *
 * weir_batch_commit - place every staged message in the queue of every
 * subscription of its topic, so that handlers see all of them or none.
 * Waits up to timeout_ns (WEIR_NOWAIT, ns, WEIR_FOREVER) for room in
 * BLOCK queues.  Returns 0 (all placed; overflow policies that drop still
 * apply), or places none and returns WEIR_EAGAIN (a REJECT queue was full,
 * a BLOCK queue was full with a timeout of WEIR_NOWAIT or 0, or one
 * subscription's share of the batch exceeds its capacity),
 * WEIR_ETIMEDOUT (a BLOCK queue stayed full), WEIR_EDEADLK (with
 * WEIR_FOREVER, a handler's batch for its own subscription's full queue,
 * which no other worker of it could empty), WEIR_ECLOSED (the bus is
 * closed: from a handler, once its drain is over), WEIR_ENOMEM; with
 * messages to durable topics also WEIR_EAGAIN (the journal is at
 * journal_max_bytes) or WEIR_EIO, as a durable publish; WEIR_EINVAL for
 * NULL or a bad timeout.  Frees the batch whatever it returns.
 *
 * weir_batch_abort - drop the staged messages and free the batch; no
 * trace is left.  Accepts NULL.
 */
typedef struct weir_batch weir_batch;
int weir_batch_begin(weir_bus *bus, weir_batch **batch);
int weir_batch_publish(weir_batch *batch, const char *topic, const void *data,
                       size_t len, const weir_pub_opts *opts);
int weir_batch_commit(weir_batch *batch, int64_t timeout_ns);
void weir_batch_abort(weir_batch *batch);

#ifdef __cplusplus
}
#endif

#endif /* WEIR_BUS_H */
