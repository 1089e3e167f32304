/* SPDX-License-Identifier: MIT */
/*
 * sub.c - subscriptions: their life, their worker threads and the
 * plain worker loop (batches), close and statistics.  A worker runs this
 * loop or, for a subscription with delivery guarantees, deliver.c's;
 * what the two share, the books included, is work.c's.  Their queue, as
 * the bus uses it, is place.c's.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "clock_internal.h"
#include "deliver_internal.h"
#include "durable_internal.h"
#include "queue_internal.h"
#include "place_internal.h"
#include "sub_internal.h"
#include "thread_internal.h"
#include "topic_internal.h"
#include "work_internal.h"

/*
 * A solo worker's batch shorter than this is followed by a yield: see
 * worker_main.
 */
enum { GATHER_BELOW = 8 };

static bool
bad_number(double v)
{
    return !isfinite(v) || v < 0;
}

int
weiri_sub_create(weir_bus *bus, weir_topic *t, weir_handler fn, void *ctx,
                 const weir_sub_opts *opts, weir_sub **out)
{
    weir_sub_opts o = { 0 };
    if (opts != NULL)
        o = *opts;
    if (o.workers == 0)
        o.workers = 1;
    if (o.capacity == 0)
        o.capacity = 1024;
    if (o.rate_per_sec > 0 && o.burst == 0)
        o.burst = 1;
    if (o.workers > WEIR_MAX_WORKERS || o.capacity > WEIR_MAX_CAPACITY ||
        (unsigned)o.overflow > WEIR_OVERFLOW_DROP_NEWEST ||
        bad_number(o.rate_per_sec) || bad_number(o.burst) ||
        o.rate_per_sec > 1e9 || (o.rate_per_sec > 0 && o.burst < 1))
        return WEIR_EINVAL;
    /* Delivery guarantees; 0 means the default for each. */
    int64_t first = o.retry_backoff_ns > 0 ? o.retry_backoff_ns
                                           : 10 * WEIR_MSEC;
    if (o.max_attempts > WEIR_MAX_ATTEMPTS || o.retry_backoff_ns < 0 ||
        o.retry_backoff_max_ns < 0 || o.dedup_window_ns < 0 ||
        bad_number(o.retry_multiplier) ||
        (o.retry_multiplier != 0 && o.retry_multiplier < 1) ||
        (o.retry_backoff_max_ns != 0 && o.retry_backoff_max_ns < first) ||
        o.dedup_max_keys > WEIR_DEDUP_MAX_KEYS)
        return WEIR_EINVAL;
    weir_topic *dead_letter = NULL;
    if (o.dead_letter_topic != NULL) {
        size_t len;
        if (!weiri_topic_name_ok(o.dead_letter_topic, &len) ||
            strcmp(o.dead_letter_topic, t->name) == 0)
            return WEIR_EINVAL;
        /*
         * Under bus->mu (weir_bus_subscribe); topics live as long as the
         * bus.
         */
        int rc = weiri_topic_get(bus, o.dead_letter_topic, len, &dead_letter);
        if (rc != 0)
            return rc;
    }

    weir_sub *s = weiri_alloc_array(1, sizeof(*s));
    if (s == NULL)
        return WEIR_ENOMEM;
    s->bus = bus;
    s->serial = ++bus->subs_made; /* under bus->mu (weir_bus_subscribe) */
    s->topic = t;
    s->fn = fn;
    s->ctx = ctx;
    /* Durable: the journal holds what the queue cannot; nothing dropped. */
    s->overflow = o.durable ? WEIR_OVERFLOW_BLOCK : o.overflow;
    s->nworkers = o.workers;
    s->dead_letter = dead_letter;
    const char *name = o.name != NULL ? o.name : t->name;
    s->name = weiri_malloc(strlen(name) + 1);
    /* Aligned: each worker's histogram is written by that worker alone. */
    s->workers = weiri_alloc_array(o.workers, sizeof(weiri_worker));
    int rc = WEIR_ENOMEM;
    if (s->name == NULL || s->workers == NULL)
        goto fail;
    for (unsigned i = 0; i < o.workers; i++)
        s->workers[i].sub = s;
    strcpy(s->name, name);
    if ((rc = weiri_event_init(&s->wake)) != 0)
        goto fail;
    if (o.rate_per_sec > 0) {
        s->limited = true;
        if ((rc = weir_limiter_init(&s->limiter, o.rate_per_sec, o.burst)) != 0)
            goto fail_event;
    }
    if ((rc = weiri_deliver_setup(s, &o)) != 0)
        goto fail_event;
    /* Under bus->mu, so the count is exact. */
    const weiri_subset *set = atomic_load_explicit(&t->subs,
                                                   memory_order_relaxed);
    rc = weiri_sub_mailbox_open(s, o.capacity,
                                !o.durable && (set == NULL || set->n == 0));
    if (rc != 0)
        goto fail_deliver;
    /*
     * Fed by its feeder at the pace of the journal's syncs: a worker
     * that yielded for its next message would hold a CPU just when a
     * publisher's sync ends.
     */
    if (o.durable && weiri_journal_paced(bus->journal))
        weiri_queue_patient(s->queue);
    *out = s;
    return 0;
fail_deliver:
    weiri_deliver_teardown(s);
fail_event:
    weiri_event_destroy(&s->wake);
fail:
    weiri_free(s->workers);
    weiri_free(s->name);
    weiri_free(s);
    return rc;
}

/*
 * Latency needs a clock reading after the handler, which costs up to 50
 * ns on some virtual machines, as much as a fast handler and the rest of
 * the delivery together.  So the clock is read after every CLOCK_EVERY-th
 * handler of a batch and after its last, and each message's latency is
 * taken at the first reading after its handler returned: it may include
 * up to CLOCK_EVERY - 1 later (fast, since they fit in a batch) handlers.
 */
enum { CLOCK_EVERY = 8 };

/* Record the latency of batch[from..to) at the time now, and let them go. */
static void
settle(weiri_worker *w, void **batch, long from, long to)
{
    int64_t now = weiri_stamp_ns();
    for (long j = from; j < to; j++)
        weiri_work_settle(w, batch[j], now);
}

/*
 * Run the handler on batch[0..n-1] and account for them, the counters
 * moving once per batch.  Returns false if the subscription is aborting:
 * the messages not yet handled were released and count as queued again.
 */
static bool
handle_batch(weiri_worker *w, void **batch, long n)
{
    weir_sub *s = w->sub;
    uint64_t ok = 0;
    long i, settled = 0;
    for (i = 0; i < n; i++) {
        if (atomic_load_explicit(&s->abort, memory_order_relaxed) ||
            (s->limited && !weiri_work_permit(s)))
            break;
        weiri_body *b = batch[i];
        if (!weiri_work_admit(s, b)) {
            /* Out of the batch, as if never taken: shift the rest down. */
            memmove(&batch[i], &batch[i + 1],
                    (size_t)(n - i - 1) * sizeof(*batch));
            n--;
            i--;
            continue;
        }
        weir_msg m = { b, 1, 0 };
        ok += s->fn(&m, s->ctx) == 0;
        if (i + 1 - settled == CLOCK_EVERY) {
            settle(w, batch, settled, i + 1);
            settled = i + 1;
        }
    }
    if (settled < i)
        settle(w, batch, settled, i);
    weiri_work_done(s, (uint64_t)i, ok, (uint64_t)i - ok, 0);
    if (i == n)
        return true;
    /* What was started goes back to queued; a batch's was never started. */
    uint64_t unstart = 0;
    for (; i < n; i++) {
        unstart += ((weiri_body *)batch[i])->gate == NULL;
        weiri_body_release(batch[i], 1);
    }
    weiri_work_put_back(s, unstart);
    return false;
}

static void *
worker_main(void *arg)
{
    weiri_worker *w = arg;
    weir_sub *s = w->sub;
    void *batch[WEIRI_SOLO_BATCH];
    size_t want = s->nworkers == 1 ? WEIRI_SOLO_BATCH : 1;
    weiri_current_sub = s;
    if (s->careful)
        weiri_deliver_run(w);
    while (!s->careful) {
        long n = weiri_sub_take(s, batch, want, WEIR_FOREVER);
        if (n < 0)
            break; /* closed and drained */
        weiri_work_took(s, batch, (size_t)n, want);
        if (!handle_batch(w, batch, n))
            break;
        /*
         * A short batch means this worker keeps up with its publishers
         * and would next take their messages one or two at a time, each
         * pulling lines the publisher is still writing.  One yield first
         * lets a few gather (~1 us), and hands the CPU to whoever needs
         * it: a gain at one subscription, no loss at four or in paced
         * latency (bench/NOTES.md).
         */
        if ((size_t)n < GATHER_BELOW && want > 1)
            weiri_yield();
    }
    weiri_current_sub = NULL;
    /*
     * seq_cst, before the notify: pairs with weiri_sub_drain's load of
     * live after its prepare, so the last exit's wake is never missed.
     */
    if (atomic_fetch_sub(&s->live, 1) == 1)
        weiri_event_notify(&s->wake, UINT32_MAX);
    return NULL;
}

int
weiri_sub_start(weir_sub *s)
{
    /* Before any worker runs (thread start orders it): no pairing. */
    atomic_store(&s->live, s->nworkers);
    for (unsigned i = 0; i < s->nworkers; i++, s->running++) {
        if (weiri_thread_start(&s->workers[i].thread, worker_main,
                               &s->workers[i]) != 0) {
            /*
             * Stop the ones already running; they have nothing to do.
             * seq_cst, as a worker's exit: the drain reads it.
             */
            atomic_fetch_sub(&s->live, s->nworkers - i);
            weiri_sub_shut(s);
            weiri_sub_drain(s, WEIRI_NO_DEADLINE);
            return WEIR_ENOMEM;
        }
    }
    return 0;
}

int
weiri_sub_drain(weir_sub *s, int64_t deadline)
{
    weiri_sub_shut(s);
    for (;;) {
        uint32_t e = weiri_event_prepare(&s->wake);
        /* seq_cst, after the prepare: see worker_main's exit. */
        if (atomic_load(&s->live) == 0) {
            weiri_event_cancel(&s->wake);
            break;
        }
        if (weiri_event_wait(&s->wake, e, deadline) == WEIR_ETIMEDOUT &&
            atomic_load(&s->live) != 0) {
            /*
             * seq_cst, before the notify: pairs with the loads of abort
             * that workers make after preparing a wait on s->wake
             * (weiri_work_permit, await_retries).
             */
            atomic_store(&s->abort, true);
            weiri_event_notify(&s->wake, UINT32_MAX);
            break;
        }
    }
    for (unsigned i = 0; i < s->running; i++)
        weiri_thread_join(s->workers[i].thread);
    s->running = 0;
    weiri_deliver_release_left(s);
    /*
     * Release what is left, up to the last place claimed before the
     * close: one claimed and not yet filled is filled soon, for its
     * publisher waits for nothing in between, and left there it would
     * never be released.
     */
    for (unsigned pauses = 0;;) {
        void *left;
        long n = weiri_sub_take(s, &left, 1, WEIR_NOWAIT);
        if (n == WEIR_ECLOSED)
            break;
        if (n == 1)
            weiri_sub_drop_queued(s, left, true);
        else
            weiri_pause(pauses++);
    }
    /*
     * Publishers that waited for room outside their section were told
     * of the shut queue; the last of them to let go frees us to free s.
     * Acquire: pairs with weiri_sub_unpin.
     */
    for (unsigned pauses = 0;
         atomic_load_explicit(&s->pins, memory_order_acquire) != 0;)
        weiri_pause(pauses++);
    /*
     * A worker stopped by the deadline may have had nothing left to do:
     * only what the books show unhandled is a time-out.
     */
    weir_sub_stats st;
    weir_sub_get_stats(s, &st);
    return st.queued + st.in_flight > 0 ? WEIR_ETIMEDOUT : 0;
}

void
weiri_sub_free(weir_sub *s)
{
    /* Handed out and not acknowledged: handed out again next time. */
    if (s->jsub != NULL)
        weiri_journal_detach(s->jsub);
    weiri_deliver_teardown(s);
    weiri_sub_mailbox_free(s);
    weiri_event_destroy(&s->wake);
    weiri_free(s->workers);
    weiri_free(s->name);
    weiri_free(s);
}

int
weir_sub_close(weir_sub *sub, int64_t drain_timeout_ns)
{
    return weir_sub_close_stats(sub, drain_timeout_ns, NULL);
}

int
weir_sub_close_stats(weir_sub *sub, int64_t drain_timeout_ns,
                     weir_sub_stats *final)
{
    if (sub == NULL || weiri_bad_timeout(drain_timeout_ns))
        return WEIR_EINVAL;
    if (weiri_in_handler_of(sub->bus, sub))
        return WEIR_EDEADLK;
    int64_t deadline = weiri_deadline(drain_timeout_ns);
    weir_bus *bus = sub->bus;
    weiri_subset *old;
    pthread_mutex_lock(&bus->mu);
    /* Under mu, as close_bus's store: a plain check of the flag. */
    if (atomic_load(&bus->closed)) {
        pthread_mutex_unlock(&bus->mu);
        return WEIR_ECLOSED;
    }
    /*
     * Without memory for a smaller snapshot, refuse rather than
     * half-close.  A durable subscription is in no snapshot: its feeder
     * places its messages.
     */
    old = NULL;
    if (sub->jsub == NULL &&
        weiri_topic_swap(sub->topic, sub, false, &old) != 0) {
        pthread_mutex_unlock(&bus->mu);
        return WEIR_ENOMEM;
    }
    if (sub->prev != NULL)
        sub->prev->next = sub->next;
    else
        bus->all = sub->next;
    if (sub->next != NULL)
        sub->next->prev = sub->prev;
    /*
     * Out of bus->all, yet its handlers may still forward: a bus close
     * that starts now waits for this one to end (close_bus's quiet).
     * Under mu, which that close takes before it looks: no pairing.
     */
    atomic_fetch_add(&bus->closing_subs, 1);
    pthread_mutex_unlock(&bus->mu);

    /* What the feeder had not placed stays in the journal. */
    weiri_durable_stop(sub);
    /* Publishers blocked on our full queue give up (ECLOSED, not counted). */
    weiri_sub_shut(sub);
    weiri_topic_quiesce(sub->topic);
    weiri_free(old);
    int rc = weiri_sub_drain(sub, deadline);
    if (final != NULL)
        weir_sub_get_stats(sub, final);
    weiri_sub_free(sub);
    /* seq_cst: after every forward of its handlers; see close_bus's quiet. */
    atomic_fetch_sub(&bus->closing_subs, 1);
    return rc;
}

const char *
weir_sub_name(const weir_sub *sub)
{
    return sub != NULL ? sub->name : NULL;
}

int
weir_sub_get_stats(const weir_sub *sub, weir_sub_stats *out)
{
    if (sub == NULL || out == NULL)
        return WEIR_EINVAL;
    weiri_work_counts(sub, out);
    /*
     * Each worker's histogram sits in its own struct: summed one by one,
     * never read as an array.  Fixed at subscribe, freed only with s.
     */
    weiri_hist_sum sum = { { 0 }, 0, 0 };
    for (unsigned i = 0; i < sub->nworkers; i++)
        weiri_hist_sum_add(&sum, &sub->workers[i].latency);
    out->latency_p50_ns = weiri_hist_sum_percentile(&sum, 0.50);
    out->latency_p99_ns = weiri_hist_sum_percentile(&sum, 0.99);
    out->latency_max_ns = sum.max;
    out->redelivered = atomic_load_explicit(&sub->redelivered,
                                            memory_order_relaxed);
    return 0;
}

bool
weiri_sub_quiet(const weir_sub *s, uint64_t *moves)
{
    /* Acquire: pairs with weiri_sub_unpin; the pins before the counters. */
    bool pinned = atomic_load_explicit(&s->pins, memory_order_acquire) != 0;
    weir_sub_stats st;
    weiri_work_counts(s, &st);
    /*
     * What destroy gave up counts as queued, but no worker will take it.
     * Read after the stats, and moved before started by its writer
     * (weiri_work_put_back; both seq_cst), so never counted short.
     */
    uint64_t left = atomic_load(&s->left);
    uint64_t waiting_now = st.queued > left ? st.queued - left : 0;
    /* Relaxed: a sum compared with itself; the counts gave the order. */
    *moves += weiri_sub_pushed(s) + st.delivered + st.acked + st.failed +
              st.dead_lettered + st.dropped + st.retried + st.rejected +
              atomic_load_explicit(&s->voided, memory_order_relaxed);
    return !pinned && waiting_now == 0 && st.in_flight == 0;
}
