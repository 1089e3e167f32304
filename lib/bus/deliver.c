/* SPDX-License-Identifier: MIT */
/*
 * deliver.c - the careful workers: retries with backoff, dead letters,
 * per-key order and duplicate suppression (weir_sub.careful).
 *
 * A careful worker takes one message at a time, from two sources: the
 * subscription's ready list (retries whose backoff has passed, put there
 * by the bus's timer thread) first, then its queue.  A worker asleep in
 * the queue is woken for a ready retry through s->kick (see
 * weiri_queue_pop_kickable).  A failed delivery with attempts left goes
 * to the timer and the worker moves on: no worker ever sleeps through a
 * backoff.
 *
 * Per-key order.  A key with a message in hand (being handled, or
 * waiting for its retry) has an entry in s->keys; a worker that takes a
 * later message of that key parks it on the entry, in arrival order,
 * which is publish order since one queue feeds every worker.  Whoever
 * finishes the message in hand takes the next parked one itself, so a
 * key is handled one message at a time, in order, retries included; the
 * entry goes when nothing of its key is left in hand (keys.c keeps the
 * entries).
 *
 * Accounting (see work.c).  A message is started when taken off the
 * queue and stays in flight, through parking and retries, until acked,
 * failed or dead-lettered.  A message a close leaves behind is un-started
 * and released, so it counts as queued, as in sub.c.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "clock_internal.h"
#include "deliver_internal.h"
#include "keys_internal.h"
#include "publish_internal.h"
#include "queue_internal.h"
#include "work_internal.h"


int
weiri_deliver_setup(weir_sub *s, const weir_sub_opts *o)
{
    s->max_attempts = o->max_attempts > 1 ? o->max_attempts : 1;
    s->backoff = o->retry_backoff_ns > 0 ? o->retry_backoff_ns : 10 * WEIR_MSEC;
    /* The default cap never undercuts a first backoff set above it. */
    s->backoff_max = o->retry_backoff_max_ns > 0 ? o->retry_backoff_max_ns
                     : s->backoff > WEIR_SEC      ? s->backoff
                                                  : WEIR_SEC;
    s->multiplier = o->retry_multiplier > 0 ? o->retry_multiplier : 2.0;
    s->jitter = o->retry_jitter;
    s->ordered = o->ordered_by_key;
    /* Durable: only the careful loop acknowledges one by one. */
    s->careful = s->max_attempts > 1 || o->dead_letter_topic != NULL ||
                 s->ordered || o->dedup_window_ns > 0 || o->durable;
    if (!s->careful)
        return 0;
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        return WEIR_ENOMEM;
    if (pthread_mutex_init(&s->take_mu, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        return WEIR_ENOMEM;
    }
    if (o->dedup_window_ns > 0 &&
        weir_dedup_create(&s->dedup, o->dedup_max_keys,
                          o->dedup_window_ns) != 0) {
        pthread_mutex_destroy(&s->take_mu);
        pthread_mutex_destroy(&s->mu);
        return WEIR_ENOMEM;
    }
    if (s->ordered)
        weiri_keys_setup(s);
    return 0;
}

void
weiri_deliver_teardown(weir_sub *s)
{
    if (!s->careful)
        return;
    weir_dedup_destroy(s->dedup);
    weiri_keys_teardown(s);
    pthread_mutex_destroy(&s->take_mu);
    pthread_mutex_destroy(&s->mu);
}

/* --- the ready list, fed by the timer ------------------------------------- */

/*
 * Put d on s's ready list and wake a worker for it: a retry come due
 * (retry_due, under the retries timer's lock), or a key's next message
 * going behind one.
 */
static void
ready_add(weir_sub *s, weiri_delivery *d)
{
    d->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->ready_tail != NULL)
        s->ready_tail->next = d;
    else
        s->ready = d;
    s->ready_tail = d;
    /*
     * seq_cst: ordered before the kick below, so a worker that sees the
     * kick move (weiri_queue_pop_kickable) finds ready_n > 0.  Workers
     * read it without mu as a hint; the list itself is read under mu.
     */
    atomic_fetch_add(&s->ready_n, 1);
    pthread_mutex_unlock(&s->mu);
    /*
     * seq_cst, before the wakes: pairs with the load of kick in
     * weiri_deliver_run, taken before its worker looks at ready_n and
     * then sleeps in the queue only while kick has not moved.
     */
    atomic_fetch_add(&s->kick, 1);
    weiri_queue_wake_consumers(s->queue);
    weiri_event_notify(&s->wake, UINT32_MAX);
}

/*
 * A retry in hand is over: taken off the ready list, refused by the
 * timer, or dropped.  seq_cst, before the notify: await_retries reads
 * pending after preparing its wait, so the wake for the last one is
 * never missed, and a worker waiting only for it may exit.
 */
static void
pending_done(weir_sub *s)
{
    if (atomic_fetch_sub(&s->pending, 1) == 1)
        weiri_event_notify(&s->wake, UINT32_MAX);
}

/*
 * A key's next message goes on the ready list as a retry would, pending
 * too, so the workers wait for it before they exit (await_retries).
 * seq_cst: counted pending before it can be taken (pending_done).
 */
static void
ready_hand_on(weir_sub *s, weiri_delivery *d)
{
    atomic_fetch_add(&s->pending, 1);
    ready_add(s, d);
}

/* The retries timer's callback: target is the subscription, item d. */
static void
retry_due(const weiri_timed *e)
{
    ready_add(e->target, e->item);
}

static weiri_delivery *
take_ready(weir_sub *s)
{
    /* seq_cst: a worker reads it after the kick it waited on (run). */
    if (atomic_load(&s->ready_n) == 0)
        return NULL;
    pthread_mutex_lock(&s->mu);
    weiri_delivery *d = s->ready;
    if (d != NULL) {
        s->ready = d->next;
        if (s->ready == NULL)
            s->ready_tail = NULL;
        atomic_fetch_sub(&s->ready_n, 1); /* under mu, as the add */
    }
    pthread_mutex_unlock(&s->mu);
    if (d != NULL)
        pending_done(s);
    return d;
}

/*
 * The queue is closed and drained: wait while retries are pending.  true:
 * one is ready; false: exit (none pending, or aborting).
 */
static bool
await_retries(weir_sub *s)
{
    for (;;) {
        uint32_t e = weiri_event_prepare(&s->wake);
        /*
         * seq_cst, after the prepare: each pairs with a store or RMW
         * followed by a notify of s->wake (the abort in weiri_sub_drain,
         * ready_add, pending_done), so a change after these loads wakes
         * the wait below.
         */
        if (atomic_load(&s->abort) || atomic_load(&s->ready_n) > 0 ||
            atomic_load(&s->pending) == 0) {
            weiri_event_cancel(&s->wake);
            return !atomic_load(&s->abort) && atomic_load(&s->pending) > 0;
        }
        weiri_event_wait(&s->wake, e, WEIRI_NO_DEADLINE);
    }
}

/* --- one delivery --------------------------------------------------------- */

/* The backoff after the attempt-th delivery failed. */
static int64_t
backoff_after(const weir_sub *s, unsigned attempt)
{
    double b = (double)s->backoff;
    for (unsigned i = 1; i < attempt && b < (double)s->backoff_max; i++)
        b *= s->multiplier;
    if (b > (double)s->backoff_max)
        b = (double)s->backoff_max;
    if (s->jitter) {
        /* xorshift64: a private, lock-free stream per worker thread. */
        static _Thread_local uint64_t x;
        if (x == 0)
            x = (uint64_t)weiri_now_ns() | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b = b / 2 + b / 2 * (double)(x >> 11) / (double)(1ull << 53);
    }
    /* 2^62 ns is 146 years: a cap that keeps the conversion defined. */
    return b < 0x1p62 ? (int64_t)b : (int64_t)1 << 62;
}

/*
 * After the last attempt: true if it became a dead letter (one is set
 * and some subscription of its topic took it); else it is failed, and,
 * when the topic has no subscription at all, counted by the bus: a
 * misspelt dead-letter topic shows.  weir_bus_close takes it while it
 * drains, as any forward of a worker.
 */
static bool
give_up(weir_sub *s, const weiri_body *b, unsigned attempts, int rc)
{
    weir_bus *bus = s->bus;
    if (s->dead_letter == NULL)
        return false;
    weiri_body *dl = weiri_body_create(&bus->bodies, s->dead_letter->name,
                                       b->data, b->size, b->key,
                                       b->key ? strlen(b->key) : 0,
                                       weiri_stamp_ns(), 0);
    if (dl == NULL)
        return false;
    dl->id = b->id;
    dl->origin = b->topic;
    dl->attempt_base = attempts;
    dl->origin_error = rc;
    /* A full BLOCK queue holds us only until our close runs out of time. */
    weiri_routed r = weiri_publish_relay(s->dead_letter, dl, &s->abort);
    if (r.nobody)
        atomic_fetch_add_explicit(&bus->dead_letters_unrouted, 1,
                                  memory_order_relaxed);
    return r.placed > 0;
}

/* A message the worker cannot handle because the subscription aborts. */
static void
leave(weir_sub *s, weiri_delivery *d)
{
    weiri_work_put_back(s, 1);
    weiri_body_release(d->body, 1);
    if (d->heap)
        weiri_free(d);
}

/*
 * Handle d until it is acked, given up or scheduled for a retry; then, if
 * it held its key, go on with the key's next parked message.  d is owned
 * by the caller's worker and freed or handed on here.
 */
/*
 * Write the acks w gathered, as one record: when it has as many as a
 * record takes, before it may wait for a message, and as it stops (so a
 * close writes what it drained).  Unwritten, an ack only means that its
 * message comes again after a crash, as an ack not yet synced does.  An
 * ack that cannot be written means the same.
 */
_Static_assert((int)WEIRI_WORKER_ACKS <= (int)WEIRI_JOURNAL_ACK_MAX,
               "a worker's acks fit one record");

static void
flush_acks(weiri_worker *w)
{
    if (w->nacks == 0)
        return;
    (void)weiri_journal_ack_many(w->sub->jsub, w->acks, w->nacks);
    w->nacks = 0;
}

static void
handle(weiri_worker *w, weiri_delivery *d)
{
    weir_sub *s = w->sub;
    while (d != NULL) {
        weiri_body *b = d->body;
        if (atomic_load_explicit(&s->abort, memory_order_relaxed) ||
            (s->limited && !weiri_work_permit(s))) {
            leave(s, d);
            return;
        }
        int rc = 0;
        uint64_t calls = 0;
        if (d->attempt == 1 && s->dedup != NULL && b->key != NULL &&
            weir_dedup_check_and_insert(s->dedup, b->key,
                                        strlen(b->key)) == 0) {
            atomic_fetch_add_explicit(&s->duplicates, 1, memory_order_relaxed);
        } else {
            weir_msg m = { b, d->attempt, d->last_error };
            rc = s->fn(&m, s->ctx);
            calls = 1;
        }
        /* A delivery on the worker's stack moves to the heap to wait. */
        if (rc != 0 && d->attempt < s->max_attempts && !d->heap) {
            weiri_delivery *h = weiri_malloc(sizeof(*h));
            if (h != NULL) {
                *h = *d;
                h->heap = true;
                d = h;
            }
        }
        /* Without memory to wait in, the message is given up, counted. */
        if (rc != 0 && d->attempt < s->max_attempts && d->heap) {
            weiri_timed e = { .due = weiri_deadline(backoff_after(s,
                                                                 d->attempt)),
                              .fire = retry_due, .target = s, .item = d };
            d->attempt++;
            d->last_error = rc;
            /* seq_cst: see pending_done. */
            atomic_fetch_add(&s->pending, 1);
            /*
             * Counted before it is scheduled: once it is, another worker
             * may handle it and finish the message before this one runs
             * again, and a finished message's retries must all show.
             */
            atomic_fetch_add_explicit(&s->retried, 1, memory_order_relaxed);
            weiri_work_done(s, calls, 0, 0, 0);
            calls = 0;
            if (weiri_timer_add(&s->bus->retries, e) == 0)
                return; /* its key, if any, stays in hand */
            atomic_fetch_sub_explicit(&s->retried, 1, memory_order_relaxed);
            pending_done(s);
            d->attempt--;
        }
        bool dead = false;
        if (rc != 0) {
            /* The call shows before a dead letter may wait for room. */
            weiri_work_done(s, calls, 0, 0, 0);
            calls = 0;
            dead = give_up(s, b, d->attempt, rc);
        }
        weiri_work_done(s, calls, rc == 0, rc != 0 && !dead, dead);
        /*
         * Done for good: a durable subscription acknowledges it in the
         * journal (failed for good too, as the books count it), with the
         * worker's next acks (see flush_acks).
         */
        if (s->jsub != NULL) {
            w->acks[w->nacks++] = b->jentry;
            if (w->nacks == WEIRI_WORKER_ACKS)
                flush_acks(w);
        }
        weiri_delivery *next = weiri_key_next(s, d);
        weiri_work_settle(w, b, weiri_stamp_ns());
        if (d->heap)
            weiri_free(d);
        d = next;
        /*
         * A retry that came due goes before the key's next message: that
         * one joins the ready list behind it (holding its key, so its
         * order holds), rather than a chain of them holding the retry up.
         */
        if (d != NULL && atomic_load(&s->ready_n) > 0) {
            ready_hand_on(s, d);
            return;
        }
    }
}

/*
 * A message just taken off the queue: wrap it (in *local unless it may
 * have to wait behind its key) and mind its key.  Returns it to handle
 * now, or NULL (voided, or parked behind its key).
 */
static weiri_delivery *
arrive(weir_sub *s, weiri_body *b, weiri_delivery *local)
{
    if (!weiri_work_admit(s, b))
        return NULL;
    if (!s->ordered || b->key == NULL) {
        *local = (weiri_delivery){ .body = b, .attempt = 1 };
        return local;
    }
    weiri_delivery *d;
    /* Never lose a message to a failed malloc: wait for memory instead. */
    while ((d = weiri_malloc(sizeof(*d))) == NULL) {
        /* seq_cst: as every read of abort, a flag read for itself. */
        if (atomic_load(&s->abort)) {
            weiri_work_put_back(s, 1);
            weiri_body_release(b, 1);
            return NULL;
        }
        weiri_yield();
    }
    *d = (weiri_delivery){ .body = b, .attempt = 1, .heap = true };
    return weiri_key_claim(s, d) ? d : NULL; /* NULL: parked behind its key */
}

void
weiri_deliver_run(weiri_worker *w)
{
    weir_sub *s = w->sub;
    void *items[WEIRI_SOLO_BATCH];
    size_t want = s->nworkers == 1 ? WEIRI_SOLO_BATCH : 1;
    /*
     * With per-key order and several workers, taking a message and
     * claiming its key are one step, so keys are claimed in queue order:
     * otherwise a worker preempted between the two would let a later
     * message of the key overtake it.  One worker at a time waits in the
     * queue.  A lone worker claims in order anyway.
     */
    bool serial = s->ordered && s->nworkers > 1;
    /* abort: seq_cst, as in await_retries; the drain notifies after it. */
    while (!atomic_load(&s->abort)) {
        weiri_delivery local, *d = take_ready(s);
        if (d != NULL) {
            handle(w, d);
            continue;
        }
        /*
         * kick before ready_n (both seq_cst; see ready_add): a retry made
         * ready after this look moves kick, and the pop returns at once.
         */
        uint32_t seen = atomic_load(&s->kick);
        if (atomic_load(&s->ready_n) > 0)
            continue;
        if (w->nacks > 0 && weir_queue_size(s->queue) == 0)
            flush_acks(w);
        if (serial)
            pthread_mutex_lock(&s->take_mu);
        long n = weiri_queue_pop_kickable(s->queue, items, want, &s->kick,
                                          seen);
        if (n > 0)
            weiri_work_took(s, items, (size_t)n, want);
        if (serial) {
            d = n > 0 ? arrive(s, items[0], &local) : NULL;
            pthread_mutex_unlock(&s->take_mu);
            if (d != NULL)
                handle(w, d);
        } else {
            for (long i = 0; i < n; i++) {
                /*
                 * A retry that came due goes before the rest of the
                 * batch, or it would wait behind up to 63 handlers (and
                 * their permits, when rate-limited).  Per-key order
                 * holds: a retry keeps its key in hand, so later
                 * messages of the key park behind it.
                 */
                weiri_delivery *due;
                /*
                 * Relaxed look first: one missed now is taken at the
                 * next message, and most messages find none.
                 */
                while (atomic_load_explicit(&s->ready_n,
                                            memory_order_relaxed) > 0 &&
                       (due = take_ready(s)) != NULL)
                    handle(w, due);
                if ((d = arrive(s, items[i], &local)) != NULL)
                    handle(w, d); /* leaves the message if aborting */
            }
        }
        if (n < 0 && !await_retries(s))
            break;
    }
    flush_acks(w);
}

/* --- after the workers are gone ------------------------------------------- */

static bool
not_ours(const weiri_timed *e, void *sub)
{
    return e->target != sub;
}

static void
drop_retry(weiri_timed *e, void *unused)
{
    (void)unused;
    weir_sub *s = e->target;
    leave(s, e->item);
    pending_done(s);
}

/*
 * As drop_retry while the workers still run (destroy): the later
 * messages of the dropped one's key are not dropped with it, but handed
 * to a worker as a ready delivery.  Under the timer's lock, which may be
 * held while taking s->mu.
 */
static void
drop_retry_hand_on(weiri_timed *e, void *unused)
{
    weir_sub *s = e->target;
    weiri_delivery *d = e->item;
    weiri_delivery *next = weiri_key_next(s, d);
    if (next != NULL)
        ready_hand_on(s, next);
    drop_retry(e, unused);
}

void
weiri_deliver_give_up_retries(weir_bus *bus)
{
    weiri_timer_seal(&bus->retries);
    weiri_timer_take(&bus->retries, NULL, drop_retry_hand_on, NULL);
}

void
weiri_deliver_release_left(weir_sub *s)
{
    if (!s->careful)
        return;
    weiri_timer_take(&s->bus->retries, not_ours, drop_retry, s);
    for (weiri_delivery *d = s->ready, *next; d != NULL; d = next) {
        next = d->next;
        pending_done(s);
        leave(s, d);
    }
    s->ready = s->ready_tail = NULL;
    atomic_store(&s->ready_n, 0); /* the workers are joined: none reads it */
    weiri_keys_release(s, leave);
}
