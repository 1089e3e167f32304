/* SPDX-License-Identifier: MIT */
/*
 * bus.c - the bus: creation, topics, subscribing, publishing by topic
 * name, close (the drain of the bus as a whole) and destroy.  The
 * publish path itself is publish.c's.
 */
#include <stdlib.h>

#include "alloc_internal.h"
#include "deliver_internal.h"
#include "durable_internal.h"
#include "place_internal.h"
#include "publish_internal.h"
#include "sub_internal.h"
#include "topic_internal.h"
#include "clock_internal.h"

/* The journal's options, from the bus's: 0, or WEIR_EINVAL. */
static int
journal_opts(const weir_bus_opts *o, weiri_log_opts *out)
{
    if ((unsigned)o->journal_sync > WEIR_SYNC_NONE ||
        o->journal_sync_wait_ns < 0 ||
        (o->journal_segment_bytes != 0 &&
         (o->journal_segment_bytes < WEIRI_LOG_SEGMENT_MIN ||
          o->journal_segment_bytes > ((size_t)1 << 40))) ||
        o->journal_dir[0] == '\0')
        return WEIR_EINVAL;
    *out = (weiri_log_opts){ .dir = o->journal_dir,
                             .sync = o->journal_sync,
                             .sync_wait_ns = o->journal_sync_wait_ns,
                             .segment_bytes = o->journal_segment_bytes,
                             .max_bytes = o->journal_max_bytes };
    return 0;
}

/*
 * From now on t's publishes go to the journal first.  Release: pairs
 * with a publish's acquire load, which then finds the journal (fixed at
 * create) ready.
 */
static void
make_durable(weir_topic *t)
{
    atomic_store_explicit(&t->durable, true, memory_order_release);
}

/* A durable delayed message read back at open, on the timer again. */
static int
rearm(void *ctx, uint64_t no, int64_t due, const weiri_jmsg *m)
{
    weir_bus *bus = ctx;
    weir_topic *t;
    /* Under mu, as every topic is made: a timer may already fire. */
    pthread_mutex_lock(&bus->mu);
    int rc = weiri_topic_get(bus, m->topic, m->topic_len, &t);
    pthread_mutex_unlock(&bus->mu);
    if (rc != 0)
        return rc;
    make_durable(t);
    return weiri_publish_rearm(t, m, no, due);
}

int
weir_bus_create(weir_bus **bus, const weir_bus_opts *opts)
{
    if (bus == NULL)
        return WEIR_EINVAL;
    *bus = NULL;
    if (opts != NULL && opts->reserved != 0)
        return WEIR_EINVAL;
    weiri_log_opts lo;
    bool journaled = opts != NULL && opts->journal_dir != NULL;
    if (journaled && journal_opts(opts, &lo) != 0)
        return WEIR_EINVAL;
    weir_bus *b = weiri_alloc_array(1, sizeof(*b));
    if (b == NULL)
        return WEIR_ENOMEM;
    if (pthread_mutex_init(&b->mu, NULL) != 0)
        goto fail_mu;
    if (pthread_mutex_init(&b->grace_mu, NULL) != 0)
        goto fail_grace;
    if (weir_mpmc_init(&b->bodies, WEIRI_BODY_POOL) != 0)
        goto fail_bodies;
    if (weiri_timer_init(&b->retries, true) != 0)
        goto fail_retries;
    if (weiri_timer_init(&b->delays, false) != 0)
        goto fail_delays;
    /*
     * The first stamp checks whether the TSC may serve (lib/base/clock.c),
     * which reads a file: better here than in the first publish.
     */
    (void)weiri_stamp_ns();
    weiri_body_setup();
    if (journaled) {
        int rc = weiri_journal_open(&b->journal, &lo);
        if (rc != 0) {
            weiri_timer_stop(&b->delays);
            weiri_timer_stop(&b->retries);
            weir_mpmc_destroy(&b->bodies);
            pthread_mutex_destroy(&b->grace_mu);
            pthread_mutex_destroy(&b->mu);
            weiri_free(b);
            return rc;
        }
        /*
         * Ids go on after the journal's: unique across runs.  Counted as
         * published from here (see weir_bus_get_stats).
         */
        b->id_base = weiri_journal_max_id(b->journal);
        atomic_store_explicit(&b->next_id, b->id_base, memory_order_relaxed);
        /* Delayed messages not yet due go back on the timer. */
        rc = weiri_journal_each_later(b->journal, rearm, b);
        if (rc != 0) {
            weir_bus_destroy(b);
            return rc;
        }
    }
    *bus = b;
    return 0;
fail_delays:
    weiri_timer_stop(&b->retries);
fail_retries:
    weir_mpmc_destroy(&b->bodies);
fail_bodies:
    pthread_mutex_destroy(&b->grace_mu);
fail_grace:
    pthread_mutex_destroy(&b->mu);
fail_mu:
    weiri_free(b);
    return WEIR_ENOMEM;
}

static bool
bad_timeout(int64_t timeout_ns)
{
    return weiri_bad_timeout(timeout_ns);
}

int
weir_bus_topic(weir_bus *bus, const char *topic, weir_topic **out)
{
    size_t len;
    if (bus == NULL || topic == NULL || out == NULL ||
        !weiri_topic_name_ok(topic, &len))
        return WEIR_EINVAL;
    pthread_mutex_lock(&bus->mu);
    int rc = weiri_bus_refuses(bus) ? WEIR_ECLOSED
                                    : weiri_topic_get(bus, topic, len, out);
    pthread_mutex_unlock(&bus->mu);
    return rc;
}

int
weir_bus_durable_topic(weir_bus *bus, const char *topic, weir_topic **out)
{
    if (bus == NULL || bus->journal == NULL)
        return WEIR_EINVAL;
    int rc = weir_bus_topic(bus, topic, out);
    if (rc == 0)
        make_durable(*out);
    return rc;
}

int
weir_bus_forget_durable(weir_bus *bus, const char *topic,
                        const char *sub_name)
{
    if (bus == NULL || topic == NULL || sub_name == NULL ||
        bus->journal == NULL)
        return WEIR_EINVAL;
    return weiri_journal_forget(bus->journal, topic, sub_name);
}

/*
 * A durable subscription s of t: made durable, attached to its place in
 * the journal (what it had not acknowledged comes first), fed by its
 * own thread instead of publishes.  Under bus->mu.
 */
static int
attach_durable(weir_bus *bus, weir_topic *t, weir_sub *s, const char *name)
{
    int rc = weiri_journal_attach(bus->journal, t->name, name, &s->jsub);
    if (rc == 0)
        make_durable(t);
    return rc;
}

int
weir_bus_subscribe(weir_bus *bus, const char *topic, weir_handler fn,
                   void *ctx, const weir_sub_opts *opts, weir_sub **sub)
{
    size_t len;
    if (bus == NULL || topic == NULL || fn == NULL ||
        !weiri_topic_name_ok(topic, &len))
        return WEIR_EINVAL;
    bool durable = opts != NULL && opts->durable;
    if (durable && (bus->journal == NULL || opts->name == NULL ||
                    opts->name[0] == '\0'))
        return WEIR_EINVAL;
    pthread_mutex_lock(&bus->mu);
    weir_topic *t = NULL;
    weir_sub *s = NULL;
    weiri_subset *old = NULL;
    /* Under mu, as close_bus's store: a plain check of the flag. */
    int rc = atomic_load(&bus->closed) ? WEIR_ECLOSED
                                       : weiri_topic_get(bus, topic, len, &t);
    if (rc == 0)
        rc = weiri_sub_create(bus, t, fn, ctx, opts, &s);
    if (rc == 0 && durable && (rc = attach_durable(bus, t, s, opts->name))) {
        weiri_sub_free(s);
        s = NULL;
    }
    if (rc == 0 && (rc = weiri_sub_start(s)) != 0) {
        weiri_sub_free(s);
        s = NULL;
    }
    if (rc == 0 && durable && (rc = weiri_durable_start(s)) != 0) {
        weiri_sub_drain(s, WEIRI_NO_DEADLINE);
        weiri_sub_free(s);
        s = NULL;
    }
    if (rc == 0 && !durable &&
        (rc = weiri_topic_swap(t, s, true, &old)) != 0) {
        weiri_sub_drain(s, WEIRI_NO_DEADLINE);
        weiri_sub_free(s);
        s = NULL;
    }
    if (rc == 0) {
        s->next = bus->all;
        if (bus->all != NULL)
            bus->all->prev = s;
        bus->all = s;
    }
    pthread_mutex_unlock(&bus->mu);
    if (rc != 0)
        return rc;
    /*
     * The snapshot we replaced may still be in a publisher's hands (a
     * durable subscription replaced none).
     */
    if (!durable)
        weiri_topic_quiesce(t);
    weiri_free(old);
    if (sub != NULL)
        *sub = s;
    return 0;
}


int
weir_bus_publish(weir_bus *bus, const char *topic, const void *data,
                 size_t len, const weir_pub_opts *opts)
{
    size_t name_len;
    if (bus == NULL || topic == NULL || !weiri_topic_name_ok(topic, &name_len))
        return WEIR_EINVAL;
    weir_topic *t = weiri_topic_find(bus, topic, name_len);
    if (t != NULL)
        return weir_topic_publish(t, data, len, opts);
    /* A delayed message goes to whoever subscribes by the time it is due. */
    if (opts != NULL && opts->delay_ns > 0) {
        int rc = weir_bus_topic(bus, topic, &t);
        if (rc == WEIR_ECLOSED)
            return weiri_bus_forwards_refused(bus, 1);
        return rc != 0 ? rc : weir_topic_publish(t, data, len, opts);
    }
    /* No topic means no subscription: validate as a publish would, count. */
    size_t key_len;
    if (weiri_check_publish(data, len, opts, &key_len) != 0)
        return WEIR_EINVAL;
    if (weiri_publish_refused(bus))
        return WEIR_ECLOSED;
    atomic_fetch_add_explicit(&bus->unrouted, 1, memory_order_relaxed);
    return 0;
}

static void
count_left(weiri_timed *e, void *bus)
{
    atomic_fetch_add_explicit(&((weir_bus *)bus)->delayed_left, 1,
                              memory_order_relaxed);
    weiri_free(e->item);
}

/*
 * Refuse every later delayed publish, handlers' too, and give up those
 * not delivered yet (counted delayed_left).  One being delivered stops
 * waiting for room (weiri_sub_wait) within 5 ms: wait for it, so that
 * when close returns every delayed message is delivered or counted left.
 */
static void
give_up_delayed(weir_bus *bus)
{
    weiri_timer_seal(&bus->delays);
    weiri_timer_take(&bus->delays, NULL, count_left, bus);
    /*
     * seq_cst: pairs with deliver_delayed's first load (one popped just
     * before the take counts itself left if that load comes after this
     * store, and is routed, waited for below, if before) and with the
     * stop flag that weiri_sub_wait polls, which ends a delivery waiting
     * for room.
     */
    atomic_store(&bus->delays_over, true);
    weiri_timer_await_idle(&bus->delays, WEIRI_NO_DEADLINE);
}

/* Whether every durable subscription's feeder has placed all it has. */
static bool
fed(void *arg)
{
    weir_bus *bus = arg;
    for (weir_sub *s = bus->all; s != NULL; s = s->next)
        if (s->jsub != NULL && !weiri_durable_caught_up(s))
            return false;
    return true;
}

/*
 * Whether the closed bus is quiet: no subscription closing on its own,
 * no delayed message waiting or being delivered, no publish waiting for
 * room, every durable subscription fed, and every subscription quiet
 * (weiri_sub_quiet), in two looks in a row between which no
 * subscription's counters moved.  One look is not
 * enough: a handler of a subscription looked at later may forward to one
 * looked at earlier, then finish before its own look; in two, that
 * forward shows as a move.  The three counts are read first in each look
 * (seq_cst): each falls to 0 only after what it stood for was placed.
 * The list is fixed while the bus is closed.
 */
static bool
quiet(void *arg)
{
    weir_bus *bus = arg;
    uint64_t moves[2] = { 0, 0 };
    for (int look = 0; look < 2; look++) {
        if (atomic_load(&bus->closing_subs) != 0 ||
            atomic_load(&bus->waiters) != 0 ||
            weiri_timer_busy(&bus->delays) != 0 || !fed(bus))
            return false;
        for (const weir_sub *s = bus->all; s != NULL; s = s->next)
            if (!weiri_sub_quiet(s, &moves[look]))
                return false;
    }
    return moves[0] == moves[1];
}

/*
 * weir_bus_close; wait_delayed false (destroy): give up the delayed
 * messages and the retries not yet due at once rather than wait for them.
 */
static int
close_bus(weir_bus *bus, int64_t drain_timeout_ns, bool wait_delayed)
{
    int64_t deadline = weiri_deadline(drain_timeout_ns);
    pthread_mutex_lock(&bus->mu);
    if (atomic_load(&bus->closed)) {
        pthread_mutex_unlock(&bus->mu);
        return WEIR_ECLOSED;
    }
    /*
     * From here no subscription is added or removed: the list is ours.
     * seq_cst: pairs with the load in a publish's read section
     * (weiri_bus_refuses), so that either the quiesce below sees the
     * section or the section sees closed.
     */
    atomic_store(&bus->closed, true);
    pthread_mutex_unlock(&bus->mu);
    /*
     * What this close leaves, if anything, shows in these and the queues.
     * Counts compared with themselves after the drain (a delta, so any
     * order would do).  A handler of a weir_sub_close still under way
     * at the deadline is not joined by this close: a forward of its
     * refused later is counted, but may miss this comparison.
     */
    uint64_t left = atomic_load(&bus->delayed_left);
    uint64_t refused = atomic_load(&bus->forwards_refused);
    int rc = 0;
    if (!wait_delayed) {
        give_up_delayed(bus);
        weiri_deliver_give_up_retries(bus);
    }
    /*
     * Publishes from outside that saw the bus open (delayed ones too) end
     * their read sections, which checked closed, before anything below
     * looks; one still to wait for room counts in bus->waiters.
     */
    /* seq_cst: pairs with the release that publishes a new topic. */
    for (size_t b = 0; b < WEIRI_TOPIC_BUCKETS; b++)
        for (weir_topic *t = atomic_load(&bus->buckets[b]); t != NULL;
             t = t->next)
            weiri_topic_quiesce(t);
    /*
     * Drain the bus as a whole: delayed messages that come due in time
     * are delivered, and the workers' forwards are still taken, so a
     * pipeline of any depth empties.  Then give up what is still delayed,
     * refuse the forwards too, and shut and drain every subscription,
     * which is quick if the bus went quiet.
     */
    (void)weiri_poll_until(quiet, bus, deadline);
    /*
     * Quiet includes every durable subscription handed all the journal
     * holds for it (forwards and dead letters of the drain too), so after
     * a clean close a restart hands out nothing again.  Their feeders
     * stop now; what is left waits in the journal.
     */
    for (weir_sub *s = bus->all; s != NULL; s = s->next)
        weiri_durable_stop(s);
    give_up_delayed(bus);
    /*
     * seq_cst, before the queues are shut: pairs with the loads of
     * sealed after a refusal (weiri_bus_refuses, weiri_sub_refused, the
     * batch commit), so a refusal by a shut queue is known for the
     * seal's and counted as such.
     */
    atomic_store(&bus->sealed, true);
    /*
     * A handler's publish that found the bus unsealed may still be
     * placing its message: its read section ends before any queue is
     * shut, so that it is placed with every subscription, or refused
     * (and counted) by every one.  Only a publish still to wait for room
     * can meet a shut queue after taking a place elsewhere; it counts
     * itself (weir_topic_publish, weiri_publish_relay).
     */
    for (size_t b = 0; b < WEIRI_TOPIC_BUCKETS; b++)
        for (weir_topic *t = atomic_load(&bus->buckets[b]); t != NULL;
             t = t->next)
            weiri_topic_quiesce(t);
    for (weir_sub *s = bus->all; s != NULL; s = s->next)
        weiri_sub_shut(s);
    /*
     * A publish still to wait for room meets a shut queue at once: once
     * none is left, nothing from outside is inside the bus.
     */
    /* seq_cst: pairs with offer_rest's decrement after its waits. */
    for (unsigned pauses = 0; atomic_load(&bus->waiters) != 0;)
        weiri_pause(pauses++);
    for (weir_sub *s = bus->all; s != NULL; s = s->next)
        if (weiri_sub_drain(s, deadline) != 0)
            rc = WEIR_ETIMEDOUT;
    /*
     * The acks of what the drain handled, written now (nothing is left
     * to carry them): a clean close then a restart hands out nothing
     * again, destroyed or not.
     */
    for (weir_sub *s = bus->all; s != NULL; s = s->next)
        if (s->jsub != NULL)
            (void)weiri_journal_write_acks(s->jsub);
    /*
     * Out of time only if something was left: a weir_sub_close still
     * under way, or a publish refused at the seal, left nothing of ours.
     */
    if (atomic_load(&bus->delayed_left) != left ||
        atomic_load(&bus->forwards_refused) != refused)
        rc = WEIR_ETIMEDOUT;
    return rc;
}

int
weir_bus_close(weir_bus *bus, int64_t drain_timeout_ns)
{
    if (bus == NULL || bad_timeout(drain_timeout_ns))
        return WEIR_EINVAL;
    if (weiri_in_handler_of(bus, NULL))
        return WEIR_EDEADLK;
    return close_bus(bus, drain_timeout_ns, true);
}

void
weir_bus_destroy(weir_bus *bus)
{
    if (bus == NULL)
        return;
    /* No call may run with destroy: a plain check of the flag. */
    if (!atomic_load(&bus->closed))
        close_bus(bus, WEIR_FOREVER, false);
    /*
     * Every subscription is drained, so no retry is left, and close
     * delivered or gave up every delayed message.  Both timers stop
     * before any subscription is freed.
     */
    weiri_timer_stop(&bus->delays);
    weiri_timer_stop(&bus->retries);
    for (weir_sub *s = bus->all, *next; s != NULL; s = next) {
        next = s->next;
        weiri_sub_free(s);
    }
    /* Every subscription detached: the acks are written, then synced. */
    (void)weiri_journal_close(bus->journal);
    weiri_topic_free_all(bus);
    for (size_t i = 0; i < WEIRI_READER_SLOTS; i++)
        weiri_free(bus->readers[i].spare);
    weiri_body_pool_drain(&bus->bodies);
    weir_mpmc_destroy(&bus->bodies);
    pthread_mutex_destroy(&bus->grace_mu);
    pthread_mutex_destroy(&bus->mu);
    weiri_free(bus);
}

int
weir_bus_get_stats(const weir_bus *bus, weir_bus_stats *out)
{
    if (bus == NULL || out == NULL)
        return WEIR_EINVAL;
    weir_bus *b = (weir_bus *)bus; /* atomics are read-only here */
    uint64_t unrouted = atomic_load_explicit(&b->unrouted,
                                             memory_order_relaxed);
    /*
     * Ids taken back first (acquire, pairing with the release of each
     * take-back, which follows its id's): so every id taken back is
     * counted in next_id as read after, and the difference never wraps.
     */
    uint64_t unused = atomic_load_explicit(&b->unused_ids,
                                           memory_order_acquire);
    out->published = atomic_load_explicit(&b->next_id, memory_order_relaxed) -
                     b->id_base + unrouted - unused;
    out->unrouted = unrouted;
    out->delayed = weiri_timer_busy(&b->delays);
    out->delayed_left = atomic_load_explicit(&b->delayed_left,
                                             memory_order_relaxed);
    out->forwards_refused = atomic_load_explicit(&b->forwards_refused,
                                                 memory_order_relaxed);
    out->dead_letters_unrouted = atomic_load_explicit(&b->dead_letters_unrouted,
                                                      memory_order_relaxed);
    weiri_log_stats js = { 0 };
    if (b->journal != NULL)
        weiri_journal_get_stats(b->journal, &js);
    out->journal_bytes = js.bytes;
    out->journal_segments = js.segments;
    out->journal_syncs = js.syncs;
    out->journal_recovered = js.recovered;
    out->journal_truncated = js.truncated;
    return 0;
}
