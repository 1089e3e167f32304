/* SPDX-License-Identifier: MIT */
/*
 * bus.c - the bus: creation, subscribing, publishing, close and destroy.
 *
 * A publish looks its topic up without a lock (topic.c), enters the
 * topic's read section, copies the payload once into a body with one
 * reference per subscription, places it with each (place.c) and leaves;
 * see fanout for the order of those steps.  A topic's lone subscription
 * may take a small message written whole into its inbox instead.  The
 * bus-wide state a publish writes is the id counter and the read slot
 * its thread keeps reusing.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "bus_internal.h"
#include "clock_internal.h"

int
weir_bus_create(weir_bus **bus, const weir_bus_opts *opts)
{
    if (bus == NULL)
        return WEIR_EINVAL;
    *bus = NULL;
    if (opts != NULL && opts->reserved != 0)
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
    if (weiri_timer_init(&b->retries, WEIRI_TIMED_RETRY, b) != 0)
        goto fail_retries;
    if (weiri_timer_init(&b->delays, WEIRI_TIMED_DELAYED, b) != 0)
        goto fail_delays;
    /*
     * The first stamp checks whether the TSC may serve (lib/base/clock.c),
     * which reads a file: better here than in the first publish.
     */
    (void)weiri_stamp_ns();
    weiri_body_setup();
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
weir_bus_subscribe(weir_bus *bus, const char *topic, weir_handler fn,
                   void *ctx, const weir_sub_opts *opts, weir_sub **sub)
{
    size_t len;
    if (bus == NULL || topic == NULL || fn == NULL ||
        !weiri_topic_name_ok(topic, &len))
        return WEIR_EINVAL;
    pthread_mutex_lock(&bus->mu);
    weir_topic *t = NULL;
    weir_sub *s = NULL;
    weiri_subset *old = NULL;
    int rc = atomic_load(&bus->closed) ? WEIR_ECLOSED
                                       : weiri_topic_get(bus, topic, len, &t);
    if (rc == 0)
        rc = weiri_sub_create(bus, t, fn, ctx, opts, &s);
    if (rc == 0 && (rc = weiri_sub_start(s)) != 0) {
        weiri_sub_free(s);
        s = NULL;
    }
    if (rc == 0 && (rc = weiri_topic_swap(t, s, true, &old)) != 0) {
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
    /* The snapshot we replaced may still be in a publisher's hands. */
    weiri_topic_quiesce(t);
    free(old);
    if (sub != NULL)
        *sub = s;
    return 0;
}

int
weiri_check_pub_opts(const weir_pub_opts *opts, size_t *key_len)
{
    if (weiri_bad_timeout(opts->timeout_ns) || opts->delay_ns < 0)
        return WEIR_EINVAL;
    if (opts->key != NULL &&
        (*key_len = strnlen(opts->key, WEIR_KEY_MAX + 1)) > WEIR_KEY_MAX)
        return WEIR_EINVAL;
    return 0;
}

/* A publish's message, for a body that fanout makes itself. */
typedef struct body_src {
    const void *data;
    size_t size;
    const char *key;
    size_t key_len;
    int64_t timestamp_ns;
} body_src;

/* Write src into b, a body for topic with refs holders. */
static void
fill_from(weiri_body *b, weir_topic *topic, const body_src *src, size_t refs)
{
    weiri_body_fill(b, &topic->bus->bodies, topic->name, src->data, src->size,
                    src->key, src->key_len, src->timestamp_ns, (uint32_t)refs);
}

/*
 * A message for a topic whose one subscription has an inbox: written
 * straight into a place of it, when there is one free (false: there is
 * not, or the inbox is closed; nothing was done).  No body, no reference:
 * the slot is the one copy (inbox_internal.h).  As in fanout, both locked
 * instructions come before the writes.
 */
static bool
publish_in_place(weir_sub *s, const body_src *src, weiri_routed *out)
{
    size_t pos;
    if (weiri_inbox_claim(s->inbox, &pos) != 0)
        return false;
    uint64_t id = atomic_fetch_add_explicit(&s->bus->next_id, 1,
                                            memory_order_relaxed) + 1;
    /*
     * The next place's line, on its way while this one is written (see
     * weiri_body_ahead): a publisher mostly claims places in a row.
     */
    weiri_inbox_prefetch(s->inbox, pos + 1);
    weiri_inbox_fill_copy(s->inbox, pos, id, src->timestamp_ns, src->data,
                          src->size, src->key, src->key_len);
    *out = (weiri_routed){ .placed = 1 };
    return true;
}

/*
 * How many subscriptions of a publish get their queue place claimed
 * before the body is written; the others are offered it after.  Room to
 * note WAIT_INLINE full BLOCK queues on the stack; more take memory.
 */
enum { CLAIM_FIRST = 8, WAIT_INLINE = 8 };

/* A full BLOCK queue fanout waits for after its section: whose, which. */
typedef struct noted {
    weir_sub *sub;
    uint64_t serial;   /* sub's: tells it from a later one at its address */
} noted;

/*
 * Make room in *waits (stack, WAIT_INLINE long, while it lasts) for one
 * more subscription after nwait, out of n at most.  false: no memory.
 */
static bool
room_to_wait(noted **waits, noted *stack, size_t nwait, size_t n)
{
    if (nwait < WAIT_INLINE || *waits != stack)
        return true;
    noted *heap = malloc(n * sizeof(*heap));
    if (heap == NULL)
        return false;
    memcpy(heap, *waits, nwait * sizeof(*heap));
    *waits = heap;
    return true;
}

/*
 * Count what one subscription made of a publish into *out, and keep in
 * *result the one return code it gives: the first of ETIMEDOUT, EDEADLK,
 * ENOMEM, EAGAIN, ECLOSED that any subscription gave.
 */
static void
note(weiri_routed *out, int *result, int rc)
{
    static const int rank[] = { WEIR_ECLOSED, WEIR_EAGAIN, WEIR_ENOMEM,
                                WEIR_EDEADLK, WEIR_ETIMEDOUT };
    if (rc == 0) {
        out->placed++;
        return;
    }
    out->gone += rc == WEIR_ECLOSED;
    int have = -1, got = -1;
    for (int i = 0; i < (int)(sizeof(rank) / sizeof(rank[0])); i++) {
        have = rank[i] == *result ? i : have;
        got = rank[i] == rc ? i : got;
    }
    if (got > have)
        *result = rc;
}

/*
 * Wait for room in w's queue, outside any read section, for b (holding
 * a reference for it).  The topic's section is entered again first, to
 * find w still subscribed (the same one: its serial) and pin it there,
 * so that its close, which waits for its pins, does not free it under
 * us.  One closed meanwhile is never touched: its reference is dropped,
 * as refused for a close.  A close thus waits only for the publishers
 * waiting on the subscription it closes, whose wait the shut queue ends.
 */
static void
wait_for_room(weir_topic *topic, const noted *w, weiri_body *b,
              int64_t deadline, const _Atomic bool *stop, weiri_routed *out,
              int *result)
{
    unsigned ticket;
    const weiri_subset *set = weiri_topic_enter(topic, &ticket);
    weir_sub *s = weiri_subset_has(set, w->sub, w->serial) ? w->sub : NULL;
    if (s != NULL)
        weiri_sub_pin(s);
    weiri_topic_leave(topic, ticket);
    if (s == NULL) {
        weiri_body_release(b, 1);
        note(out, result, WEIR_ECLOSED);
        return;
    }
    note(out, result, weiri_sub_wait(s, b, deadline, stop));
    weiri_sub_unpin(s);
}

/*
 * The rest of fanout, for the subscriptions whose place was not claimed
 * first (claim[i] for i < first says which were): offer b to each, wait
 * for room in the full BLOCK queues after leaving the section, count
 * what became of b in *out.  Returns as fanout.
 */
static int
offer_rest(weir_topic *topic, const weiri_subset *set, unsigned ticket,
           weiri_body *b, size_t first, const int *claim, int64_t deadline,
           const _Atomic bool *stop, bool relay, weiri_routed *out)
{
    weir_bus *bus = topic->bus;
    int result = 0;
    /*
     * Full BLOCK queues are waited for after the section: a publisher
     * asleep in one must not hold up a subscribe or close of the topic,
     * which wait for its sections, when the thread that would make room
     * is the one subscribing or closing.  Each is noted, and found
     * again and pinned only for its own wait (wait_for_room).
     */
    noted wait_here[WAIT_INLINE], *waits = wait_here;
    size_t nwait = 0, offered = set->n;
    for (size_t i = 0; i < offered; i++) {
        if (i < first && claim[i] == 0)
            continue;
        weir_sub *s = set->subs[i];
        int rc = weiri_sub_offer(s, b);
        if (rc == 0) {
            out->placed++;
            continue;
        }
        if (rc == WEIRI_MUST_WAIT &&
            !room_to_wait(&waits, wait_here, nwait, offered)) {
            weiri_body_release(b, 1); /* s's reference */
            atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
            rc = WEIR_ENOMEM;
        } else if (rc == WEIRI_MUST_WAIT) {
            waits[nwait++] = (noted){ s, s->serial };
            continue;
        }
        note(out, &result, rc);
    }
    /*
     * A close waits for publishes still to wait for room (close_bus's
     * quiet): counted in the section, so that its quiesce sees it.
     */
    if (nwait > 0)
        atomic_fetch_add(&bus->waiters, 1);
    weiri_topic_leave(topic, ticket);
    for (size_t i = 0; i < nwait; i++)
        wait_for_room(topic, &waits[i], b, deadline, stop, out, &result);
    if (nwait > 0)
        atomic_fetch_sub(&bus->waiters, 1); /* seq_cst: see quiet */
    if (waits != wait_here)
        free(waits);
    /*
     * Refused by every subscription for their close (or the bus's): the
     * message reached nobody, so it is no publish; its id is taken back.
     * Release: pairs with the acquire read in weir_bus_get_stats.
     */
    if (out->gone == offered) {
        if (!relay)
            atomic_fetch_add_explicit(&bus->unused_ids, 1,
                                      memory_order_release);
        return WEIR_ECLOSED;
    }
    return result == WEIR_ECLOSED ? 0 : result;
}

/*
 * Offer a body to every subscription of topic in set, the snapshot of the
 * read section the caller entered (ticket), which fanout leaves; give it
 * one reference each and an id, or count it unrouted if there is none.
 * The body is b, written and not yet shared (refs 0; released if
 * unrouted), or, when src is not NULL, one made here from src.  A
 * relayed body (a dead letter) keeps the id it has and is never counted
 * unrouted: it was published once already.  Whatever the bus's state: callers check for a close.
 * stop: see weiri_sub_wait.  Returns as weir_topic_publish, and fills
 * *out.
 *
 * The order is for speed: a locked instruction waits until this core's
 * earlier writes have reached the other cores, and the body and the
 * queue places are lines a worker has just read.  So every locked
 * instruction comes first (the section, the body from the pool, the id,
 * the claims of the first CLAIM_FIRST queue places), then the writes, and
 * the section ends with a plain store.  A small body that a publish
 * copies in its section is, from the second publish through that read
 * slot on, the one the slot kept from the publish before
 * (weiri_body_ahead), so its lines are already on their way.  Claimed
 * places are filled before any offer, which takes time (another claim, a
 * DROP_OLDEST's take): a worker stops at a place claimed and not yet
 * filled.  A large payload is copied before
 * any claim, for the same reason: its copy would hold the claimed places
 * as long.
 */
static int
fanout(weir_topic *topic, const weiri_subset *set, unsigned ticket,
       weiri_body *b, const body_src *src, int64_t deadline,
       const _Atomic bool *stop, bool relay, weiri_routed *out)
{
    weir_bus *bus = topic->bus;
    bool keyed = src != NULL && src->key != NULL;
    bool small = src == NULL || weiri_body_is_small(src->size, src->key_len, keyed);
    *out = (weiri_routed){ .placed = SIZE_MAX }; /* nobody: no refusal either */
    if (set == NULL || set->n == 0) {
        weiri_topic_leave(topic, ticket);
        if (!relay)
            atomic_fetch_add_explicit(&bus->unrouted, 1, memory_order_relaxed);
        if (src == NULL) {
            atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
            weiri_body_release(b, 1);
        }
        return 0;
    }
    if (src != NULL &&
        (b = weiri_body_alloc(&bus->bodies, src->size, src->key_len, keyed)) == NULL) {
        weiri_topic_leave(topic, ticket);
        return WEIR_ENOMEM;
    }
    if (src != NULL && small && ticket < WEIRI_READER_SLOTS)
        b = weiri_body_ahead(&bus->bodies, &bus->readers[ticket].spare, b);
    uint64_t id = relay ? b->id
                        : atomic_fetch_add_explicit(&bus->next_id, 1,
                                                    memory_order_relaxed) + 1;
    if (src != NULL && !small)
        fill_from(b, topic, src, set->n);
    size_t pos[CLAIM_FIRST];
    int claim[CLAIM_FIRST];
    size_t first = !small ? 0 : set->n < CLAIM_FIRST ? set->n : CLAIM_FIRST;
    for (size_t i = 0; i < first; i++)
        claim[i] = weiri_sub_claim(set->subs[i], &pos[i]);
    if (src != NULL && small)
        fill_from(b, topic, src, set->n);
    /* The body is not shared yet: plain writes are enough. */
    if (src == NULL)
        atomic_store_explicit(&b->refs, (uint32_t)set->n, memory_order_relaxed);
    b->id = id;
    out->placed = 0;
    for (size_t i = 0; i < first; i++)
        if (claim[i] == 0) {
            weiri_sub_fill(set->subs[i], pos[i], b); /* s's reference */
            out->placed++;
        }
    /* Every place claimed: the common case, with nothing left to do. */
    if (out->placed == set->n) {
        weiri_topic_leave(topic, ticket);
        return 0;
    }
    return offer_rest(topic, set, ticket, b, first, claim, deadline, stop,
                      relay, out);
}

size_t
weiri_bus_relay(weir_topic *topic, weiri_body *b, const _Atomic bool *stop)
{
    weiri_routed r;
    unsigned ticket;
    const weiri_subset *set = weiri_topic_enter(topic, &ticket);
    fanout(topic, set, ticket, b, NULL, WEIRI_NO_DEADLINE, stop, true, &r);
    return r.placed;
}

/*
 * A publish refused for the bus's close: WEIR_ECLOSED, counted in
 * forwards_refused if it came from one of the bus's own workers.
 */
int
weiri_bus_forwards_refused(weir_bus *bus, uint64_t n)
{
    if (weiri_in_handler_of(bus, NULL))
        atomic_fetch_add_explicit(&bus->forwards_refused, n,
                                  memory_order_relaxed);
    return WEIR_ECLOSED;
}

/* weiri_bus_refuses, for a publish: counted by weiri_bus_forwards_refused. */
static bool
refused_at_close(weir_bus *bus)
{
    return weiri_bus_refuses(bus) && weiri_bus_forwards_refused(bus, 1) != 0;
}

/* A delayed publish: the body waits in the timer, routed when due. */
static int
publish_later(weir_topic *topic, weiri_body *b, const weir_pub_opts *opts)
{
    weiri_timed e = { .due = WEIRI_NO_DEADLINE, .target = topic, .item = b,
                      .timeout_ns = opts->timeout_ns };
    if (opts->delay_ns < WEIRI_NO_DEADLINE - b->timestamp_ns)
        e.due = b->timestamp_ns + opts->delay_ns;
    int rc = weiri_timer_add(&topic->bus->delays, e); /* or ECLOSED, ENOMEM */
    if (rc != 0)
        free(b); /* never shared, never pooled: see weir_topic_publish */
    return rc;
}

void
weiri_bus_deliver_delayed(void *bus, void *topic, void *body, int64_t timeout_ns)
{
    weir_bus *b = bus;
    /* Taken off the timer just as close gave up the rest. */
    if (atomic_load(&b->delays_over)) {
        atomic_fetch_add_explicit(&b->delayed_left, 1, memory_order_relaxed);
        free(body);
        return;
    }
    int64_t deadline = timeout_ns == WEIR_NOWAIT ? WEIRI_NOWAIT_DEADLINE
                       : timeout_ns == 0   ? WEIRI_NO_DEADLINE
                                           : weiri_deadline(timeout_ns);
    /*
     * A full BLOCK queue holds it only until close gives up on delayed
     * messages.  One that then reached nobody because of the close (a
     * queue closed, or a wait given up) is counted left, and its id taken
     * back; one that every subscription refused by its own policy was
     * delivered, and is counted by each as rejected, as any publish.
     */
    weiri_routed r;
    unsigned ticket;
    const weiri_subset *set = weiri_topic_enter(topic, &ticket);
    /*
     * Refused by every subscription for a close, it is no publish (fanout
     * took its id back): given up by the bus's close, or left with
     * nobody to take it by their own closes, as if unrouted.
     */
    if (fanout(topic, set, ticket, body, NULL, deadline, &b->delays_over,
               false, &r) == WEIR_ECLOSED)
        atomic_fetch_add_explicit(atomic_load(&b->delays_over)
                                      ? &b->delayed_left : &b->unrouted,
                                  1, memory_order_relaxed);
}

int
weir_topic_publish(weir_topic *topic, const void *data, size_t len,
                   const weir_pub_opts *opts)
{
    size_t key_len;
    if (topic == NULL || weiri_check_publish(data, len, opts, &key_len) != 0)
        return WEIR_EINVAL;
    const char *key = opts != NULL ? opts->key : NULL;
    int64_t timeout = opts != NULL ? opts->timeout_ns : 0;
    bool delayed = opts != NULL && opts->delay_ns > 0;
    weir_bus *bus = topic->bus;
    /*
     * A delayed body may outlive the bus's pool (it is freed at close if
     * never due), so it never comes from it.  A deadline or a due time
     * takes the clock itself, exact; a plain publish takes a stamp, which
     * may run late by a few tens of ns but costs less than half as much.
     */
    bool timed = timeout > 0 || timeout == WEIR_NOWAIT;
    int64_t now = delayed || timed ? weiri_now_ns() : weiri_stamp_ns();
    if (delayed) {
        /*
         * In a read section too, so that close_bus's quiesce sees it to
         * the timer or this sees the close.  The timer refuses it once
         * close has given up on delayed messages.
         */
        unsigned ticket;
        (void)weiri_topic_enter(topic, &ticket);
        int rc = WEIR_ECLOSED;
        if (!(atomic_load(&bus->closed) && refused_at_close(bus))) {
            weiri_body *b = weiri_body_create(NULL, topic->name, data, len,
                                              key, key_len, now, 0);
            rc = b == NULL ? WEIR_ENOMEM : publish_later(topic, b, opts);
            if (rc == WEIR_ECLOSED)
                weiri_bus_forwards_refused(bus, 1);
        }
        weiri_topic_leave(topic, ticket);
        return rc;
    }
    /* 0 (the default) and WEIR_FOREVER: no limit. */
    int64_t deadline = WEIRI_NO_DEADLINE;
    if (timeout == WEIR_NOWAIT)
        deadline = WEIRI_NOWAIT_DEADLINE;
    else if (timeout > 0 && timeout < WEIRI_NO_DEADLINE - now)
        deadline = now + timeout;
    body_src src = { data, len, key, key_len, now };
    weiri_routed r;
    unsigned ticket;
    const weiri_subset *set = weiri_topic_enter(topic, &ticket);
    /*
     * The close is checked inside the section: either close_bus's
     * quiesce sees the section, or this load sees the close (both
     * seq_cst).  A plain load on x86, as the check before the section
     * it replaces was.
     */
    if (atomic_load(&bus->closed) && refused_at_close(bus)) {
        weiri_topic_leave(topic, ticket);
        return WEIR_ECLOSED;
    }
    if (set != NULL && set->n == 1 && set->subs[0]->inbox != NULL &&
        weiri_body_extra(len, key_len, key != NULL) <= WEIRI_INBOX_INLINE &&
        publish_in_place(set->subs[0], &src, &r)) {
        weiri_topic_leave(topic, ticket);
        return 0;
    }
    int rc = fanout(topic, set, ticket, NULL, &src, deadline, NULL, false, &r);
    /* Shut by the bus's seal, not by a subscription's own close: counted. */
    if (rc == WEIR_ECLOSED && atomic_load(&bus->sealed))
        return weiri_bus_forwards_refused(bus, 1);
    return rc;
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
    if (refused_at_close(bus))
        return WEIR_ECLOSED;
    atomic_fetch_add_explicit(&bus->unrouted, 1, memory_order_relaxed);
    return 0;
}

static void
count_left(weiri_timed *e, void *bus)
{
    atomic_fetch_add_explicit(&((weir_bus *)bus)->delayed_left, 1,
                              memory_order_relaxed);
    free(e->item);
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
    atomic_store(&bus->delays_over, true);
    weiri_timer_await_delayed(&bus->delays, WEIRI_NO_DEADLINE);
}

/*
 * Whether the closed bus is quiet: no subscription closing on its own,
 * no delayed message waiting or being delivered, no publish waiting for
 * room, and every subscription quiet (weiri_sub_quiet), in two looks in a
 * row between which no subscription's counters moved.  One look is not
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
            weiri_timer_delayed(&bus->delays) != 0)
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
    /* From here no subscription is added or removed: the list is ours. */
    atomic_store(&bus->closed, true);
    pthread_mutex_unlock(&bus->mu);
    /* What this close leaves, if anything, shows in these and the queues. */
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
    give_up_delayed(bus);
    atomic_store(&bus->sealed, true);
    for (weir_sub *s = bus->all; s != NULL; s = s->next)
        weiri_sub_shut(s);
    /*
     * A publish still to wait for room meets a shut queue at once: once
     * none is left, nothing from outside is inside the bus.
     */
    for (unsigned pauses = 0; atomic_load(&bus->waiters) != 0;)
        weiri_pause(pauses++);
    for (weir_sub *s = bus->all; s != NULL; s = s->next)
        if (weiri_sub_drain(s, deadline) != 0)
            rc = WEIR_ETIMEDOUT;
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
    weiri_topic_free_all(bus);
    for (size_t i = 0; i < WEIRI_READER_SLOTS; i++)
        free(bus->readers[i].spare);
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
    uint64_t unrouted = atomic_load_explicit(&b->unrouted, memory_order_relaxed);
    /*
     * Ids taken back first (acquire, pairing with the release of each
     * take-back, which follows its id's): so every id taken back is
     * counted in next_id as read after, and the difference never wraps.
     */
    uint64_t unused = atomic_load_explicit(&b->unused_ids,
                                           memory_order_acquire);
    out->published = atomic_load_explicit(&b->next_id, memory_order_relaxed) +
                     unrouted - unused;
    out->unrouted = unrouted;
    out->delayed = weiri_timer_delayed(&b->delays);
    out->delayed_left = atomic_load_explicit(&b->delayed_left, memory_order_relaxed);
    out->forwards_refused = atomic_load_explicit(&b->forwards_refused,
                                                 memory_order_relaxed);
    out->dead_letters_unrouted = atomic_load_explicit(&b->dead_letters_unrouted,
                                                      memory_order_relaxed);
    return 0;
}
