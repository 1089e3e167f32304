/* SPDX-License-Identifier: MIT */
/*
 * publish.c - the publish path: a message offered to every subscription
 * of its topic (fanout), a dead letter relayed, a delayed message routed
 * when its timer fires.  Delivery calls it (dead letters); it calls
 * only what is below it (place.c, topic.c, msg.c, the timer).
 *
 * A publish looks its topic up without a lock (topic.c), enters the
 * topic's read section, copies the payload once into a body with one
 * reference per subscription, places it with each (place.c) and leaves;
 * see fanout for the order of those steps.  A topic's lone subscription
 * may take a small message written whole into its inbox instead.  The
 * bus-wide state a publish writes is the id counter and the read slot
 * its thread keeps reusing.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen */

#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "place_internal.h"
#include "publish_internal.h"
#include "topic_internal.h"
#include "clock_internal.h"
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
    uint64_t id;        /* taken already (a durable publish), or 0 */
} body_src;

/* Write src into b, a body for topic with refs holders. */
static void
fill_from(weiri_body *b, weir_topic *topic, const body_src *src, size_t refs)
{
    weiri_body_fill(b, &topic->bus->bodies, topic->name, src->data, src->size,
                    src->key, src->key_len, src->timestamp_ns, (uint32_t)refs);
}

/*
 * A message for a topic whose one subscription takes copies: written
 * straight into a place of its mailbox, when there is one free (false:
 * there is not, or it is shut; nothing was done).  No body, no
 * reference: the slot is the one copy (inbox_internal.h).  As in fanout,
 * both locked instructions come before the writes.
 */
static bool
publish_in_place(weir_sub *s, const body_src *src, weiri_routed *out)
{
    size_t pos;
    if (weiri_sub_claim_copy(s, &pos) != 0)
        return false;
    uint64_t id = atomic_fetch_add_explicit(&s->bus->next_id, 1,
                                            memory_order_relaxed) + 1;
    weiri_sub_fill_copy(s, pos, id, src->timestamp_ns, src->data, src->size,
                        src->key, src->key_len);
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
    noted *heap = weiri_malloc(n * sizeof(*heap));
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

/* How an offer treats a full BLOCK queue, and whose the id is. */
typedef struct offer_how {
    int64_t deadline;          /* for room, or WEIRI_NOWAIT_DEADLINE */
    const _Atomic bool *stop;  /* or NULL: see weiri_sub_wait */
    bool relay;                /* a dead letter or a durable publish: its
                                  id is never taken back here */
} offer_how;

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
              const offer_how *how, weiri_routed *out, int *result)
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
    note(out, result, weiri_sub_wait(s, b, how->deadline, how->stop));
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
           weiri_body *b, size_t first, const int *claim,
           const offer_how *how, weiri_routed *out)
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
            rc = weiri_sub_refused(s, b, WEIR_ENOMEM);
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
        wait_for_room(topic, &waits[i], b, how, out, &result);
    if (nwait > 0)
        atomic_fetch_sub(&bus->waiters, 1); /* seq_cst: see quiet */
    if (waits != wait_here)
        weiri_free(waits);
    /*
     * Refused by every subscription for their close (or the bus's): the
     * message reached nobody, so it is no publish; its id is taken back.
     * Release: pairs with the acquire read in weir_bus_get_stats.
     */
    if (out->gone == offered) {
        if (!how->relay)
            atomic_fetch_add_explicit(&bus->unused_ids, 1,
                                      memory_order_release);
        return WEIR_ECLOSED;
    }
    return result == WEIR_ECLOSED ? 0 : result;
}

/*
 * A publish: offer a body made from src to every subscription of topic
 * in set, the snapshot of the read section the caller entered (ticket),
 * which fanout leaves; give it one reference each and an id, or count it
 * unrouted if there is none.  Whatever the bus's state: callers check
 * for a close.  Returns as weir_topic_publish, and fills *out.
 *
 * The order is for speed: a locked instruction waits until this core's
 * earlier writes have reached the other cores, and the body and the
 * queue places are lines a worker has just read.  So every locked
 * instruction comes first (the section, the body from the pool, the id,
 * the claims of the first CLAIM_FIRST queue places), then the writes,
 * and the section ends with a plain store.  A small body that a publish
 * copies in its section is, from the second publish through that read
 * slot on, the one the slot kept from the publish before
 * (weiri_body_ahead), so its lines are already on their way.  Claimed
 * places are filled before any offer, which takes time (another claim, a
 * DROP_OLDEST's take): a worker stops at a place claimed and not yet
 * filled.  A large payload is copied before any claim, for the same
 * reason: its copy would hold the claimed places as long.
 */
static int
fanout(weir_topic *topic, const weiri_subset *set, unsigned ticket,
       const body_src *src, int64_t deadline, weiri_routed *out)
{
    weir_bus *bus = topic->bus;
    bool keyed = src->key != NULL;
    bool small = weiri_body_is_small(src->size, src->key_len, keyed);
    *out = (weiri_routed){ .nobody = true };
    if (set == NULL || set->n == 0) {
        weiri_topic_leave(topic, ticket);
        /* A durable publish counts itself (publish_durable). */
        if (src->id == 0)
            atomic_fetch_add_explicit(&bus->unrouted, 1,
                                      memory_order_relaxed);
        return 0;
    }
    *out = (weiri_routed){ 0 };
    weiri_body *b = weiri_body_alloc(&bus->bodies, src->size, src->key_len,
                                     keyed);
    if (b == NULL) {
        weiri_topic_leave(topic, ticket);
        return WEIR_ENOMEM;
    }
    if (small && ticket < WEIRI_READER_SLOTS)
        b = weiri_body_ahead(&bus->bodies, &bus->readers[ticket].spare, b);
    uint64_t id = src->id != 0 ? src->id
                               : atomic_fetch_add_explicit(&bus->next_id, 1,
                                                           memory_order_relaxed)
                                     + 1;
    if (!small)
        fill_from(b, topic, src, set->n);
    size_t pos[CLAIM_FIRST];
    int claim[CLAIM_FIRST];
    size_t first = !small ? 0 : set->n < CLAIM_FIRST ? set->n : CLAIM_FIRST;
    for (size_t i = 0; i < first; i++)
        claim[i] = weiri_sub_claim(set->subs[i], &pos[i]);
    if (small)
        fill_from(b, topic, src, set->n);
    b->id = id; /* not shared yet: a plain write is enough */
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
    /* A durable publish's id stays: publish_durable decides. */
    offer_how how = { .deadline = deadline, .relay = src->id != 0 };
    return offer_rest(topic, set, ticket, b, first, claim, &how, out);
}

/*
 * Offer b, a body written and not yet shared (refs 0), to every
 * subscription of topic, as fanout does; its id is taken here unless it
 * is relayed, and it is released if the topic has no subscription
 * (counted unrouted unless relayed).  Not a hot path: every place is
 * offered, none claimed first.
 */
static int
route_body(weir_topic *topic, weiri_body *b, const offer_how *how,
           weiri_routed *out)
{
    weir_bus *bus = topic->bus;
    unsigned ticket;
    const weiri_subset *set = weiri_topic_enter(topic, &ticket);
    if (set == NULL || set->n == 0) {
        weiri_topic_leave(topic, ticket);
        *out = (weiri_routed){ .nobody = true };
        if (!how->relay)
            atomic_fetch_add_explicit(&bus->unrouted, 1, memory_order_relaxed);
        atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
        weiri_body_release(b, 1);
        return 0;
    }
    *out = (weiri_routed){ 0 };
    if (!how->relay)
        b->id = atomic_fetch_add_explicit(&bus->next_id, 1,
                                          memory_order_relaxed) + 1;
    /* Not shared yet: a plain write is enough. */
    atomic_store_explicit(&b->refs, (uint32_t)set->n, memory_order_relaxed);
    return offer_rest(topic, set, ticket, b, 0, NULL, how, out);
}

/*
 * A message refused, wholly or by some of its subscriptions (each one
 * still subscribed counts it rejected), once the bus is sealed: if a
 * worker of the bus sent it, a forward the drain ran out of time for.  A
 * refusal by a subscription's own close counts too then: the bus's close
 * ran out of time waiting for that close.  seq_cst: sealed is stored
 * before the queues are shut (close_bus).
 */
static void
count_sealed(weir_bus *bus, const weiri_routed *r)
{
    if (r->gone > 0 && atomic_load(&bus->sealed))
        weiri_bus_forwards_refused(bus, 1);
}

/* The journal's view of b, a message of topic. */
static weiri_jpub
jpub_of(const weir_topic *topic, const weiri_body *b)
{
    return (weiri_jpub){
        .topic = topic->name, .topic_len = topic->name_len, .id = b->id,
        .ts = b->timestamp_ns, .key = b->key,
        .key_len = b->key != NULL ? strlen(b->key) : 0, .data = b->data,
        .len = b->size, .origin = b->origin,
        .origin_len = b->origin != NULL ? strlen(b->origin) : 0,
        .attempts = b->attempt_base, .error = b->origin_error,
        .later = b->later
    };
}

weiri_routed
weiri_publish_relay(weir_topic *topic, weiri_body *b, const _Atomic bool *stop)
{
    weiri_routed r;
    offer_how how = { .deadline = WEIRI_NO_DEADLINE, .stop = stop,
                      .relay = true };
    /*
     * A durable topic's durable subscriptions take it from the journal:
     * it goes there first, and counts as taken if one will.  Not written,
     * it is given up: counted failed by its subscription.
     */
    bool held = false;
    weiri_jpub m = jpub_of(topic, b);
    if (atomic_load_explicit(&topic->durable, memory_order_acquire) &&
        weiri_journal_publish(topic->bus->journal, &m, &held) != 0) {
        atomic_store_explicit(&b->refs, 1, memory_order_relaxed);
        weiri_body_release(b, 1);
        return (weiri_routed){ 0 };
    }
    route_body(topic, b, &how, &r);
    count_sealed(topic->bus, &r);
    if (held) {
        r.nobody = false;
        r.placed++;
    }
    return r;
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

bool
weiri_publish_refused(weir_bus *bus)
{
    return weiri_bus_refuses(bus) && weiri_bus_forwards_refused(bus, 1) != 0;
}

/*
 * The deadline of a publish whose weir_pub_opts.timeout_ns is timeout,
 * from now: 0 (the default) and WEIR_FOREVER wait without limit, as
 * options do; WEIR_NOWAIT tries once.
 */
static int64_t
pub_deadline(int64_t timeout, int64_t now)
{
    if (timeout == WEIR_NOWAIT)
        return WEIRI_NOWAIT_DEADLINE;
    if (timeout > 0 && timeout < WEIRI_NO_DEADLINE - now)
        return now + timeout;
    return WEIRI_NO_DEADLINE;
}

/*
 * A delayed message come due (the delays timer's callback, run without
 * its lock, for a full BLOCK queue may make it wait): target is its
 * topic, item its body, value the publish's timeout.
 */
/*
 * A durable delayed message come due (body, its id not yet taken): as a
 * durable publish, written to the journal (which lets its LATER go),
 * then routed to the topic's subscriptions in memory, how says how; it
 * was accepted if a durable subscription takes it.  Not written, it
 * stays in the journal for the next bus on the directory to route, and
 * is counted left here.
 */
static void
deliver_due(weir_topic *topic, weiri_body *body, offer_how how)
{
    weir_bus *b = topic->bus;
    body->id = atomic_fetch_add_explicit(&b->next_id, 1,
                                         memory_order_relaxed) + 1;
    weiri_jpub m = jpub_of(topic, body);
    bool held = false;
    if (weiri_journal_publish(b->journal, &m, &held) != 0) {
        /* Release: see weir_bus_get_stats. */
        atomic_fetch_add_explicit(&b->unused_ids, 1, memory_order_release);
        atomic_fetch_add_explicit(&b->delayed_left, 1, memory_order_relaxed);
        weiri_free(body);
        return;
    }
    weiri_routed r;
    how.relay = true;
    int rc = route_body(topic, body, &how, &r);
    if (held)
        return;
    /*
     * One that reached nobody is no publish, as in deliver_delayed: its
     * id goes back (release: see weir_bus_get_stats), and it counts
     * unrouted, or left if the close refused it.
     */
    if (r.nobody || rc == WEIR_ECLOSED) {
        atomic_fetch_add_explicit(&b->unused_ids, 1, memory_order_release);
        atomic_fetch_add_explicit(!r.nobody && atomic_load(&b->delays_over)
                                      ? &b->delayed_left : &b->unrouted,
                                  1, memory_order_relaxed);
    }
}

static void
deliver_delayed(const weiri_timed *e)
{
    weir_topic *topic = e->target;
    weiri_body *body = e->item;
    weir_bus *b = topic->bus;
    /*
     * Taken off the timer just as close gave up the rest (a durable one
     * stays in the journal for the next bus).
     */
    if (atomic_load(&b->delays_over)) {
        atomic_fetch_add_explicit(&b->delayed_left, 1, memory_order_relaxed);
        weiri_free(body);
        return;
    }
    int64_t deadline = pub_deadline(e->value, weiri_now_ns());
    if (body->later != 0) {
        deliver_due(topic, body, (offer_how){ .deadline = deadline,
                                              .stop = &b->delays_over });
        return;
    }
    /*
     * A full BLOCK queue holds it only until close gives up on delayed
     * messages.  One that then reached nobody because of the close (a
     * queue closed, or a wait given up) is counted left, and its id taken
     * back; one that every subscription refused by its own policy was
     * delivered, and is counted by each as rejected, as any publish.
     */
    weiri_routed r;
    offer_how how = { .deadline = deadline, .stop = &b->delays_over };
    /*
     * Refused by every subscription for a close, it is no publish (its id
     * was taken back): given up by the bus's close, or left with nobody
     * to take it by their own closes, as if unrouted.
     */
    if (route_body(topic, body, &how, &r) == WEIR_ECLOSED)
        atomic_fetch_add_explicit(atomic_load(&b->delays_over)
                                      ? &b->delayed_left : &b->unrouted,
                                  1, memory_order_relaxed);
}

/* A delayed publish: the body waits in the timer, routed when due. */
static int
publish_later(weir_topic *topic, weiri_body *b, const weir_pub_opts *opts)
{
    weiri_timed e = { .due = WEIRI_NO_DEADLINE, .fire = deliver_delayed,
                      .target = topic, .item = b,
                      .value = opts->timeout_ns };
    if (opts->delay_ns < WEIRI_NO_DEADLINE - b->timestamp_ns)
        e.due = b->timestamp_ns + opts->delay_ns;
    int rc = weiri_timer_add(&topic->bus->delays, e); /* or ECLOSED, ENOMEM */
    if (rc != 0)
        weiri_free(b); /* never shared, never pooled: see weir_topic_publish */
    return rc;
}

/*
 * A delayed publish to a durable topic: in the journal first (accepted
 * once written), then as any delayed publish.  If the timer refuses it
 * (the bus closes, or no memory), it is given up by this bus (counted
 * left) and kept in the journal for the next one: accepted all the same.
 */
static int
publish_later_durable(weir_topic *topic, weiri_body *b,
                      const weir_pub_opts *opts)
{
    weiri_jpub m = jpub_of(topic, b);
    int64_t due = WEIRI_NO_DEADLINE;
    if (opts->delay_ns < WEIRI_NO_DEADLINE - b->timestamp_ns)
        due = b->timestamp_ns + opts->delay_ns;
    int rc = weiri_journal_later(topic->bus->journal, &m, due, &b->later);
    if (rc != 0) {
        weiri_free(b);
        return rc;
    }
    if (publish_later(topic, b, opts) != 0)
        atomic_fetch_add_explicit(&topic->bus->delayed_left, 1,
                                  memory_order_relaxed);
    return 0;
}

int
weiri_publish_rearm(weir_topic *topic, const weiri_jmsg *m, uint64_t no,
                    int64_t due)
{
    int64_t now = weiri_now_ns();
    /* Its stamp, if of this boot's clock; else now. */
    int64_t ts = m->ts > 0 && m->ts <= now ? m->ts : now;
    weiri_body *b = weiri_body_create(NULL, topic->name, m->data, m->len,
                                      m->key, m->key_len, ts, 0);
    if (b == NULL)
        return WEIR_ENOMEM;
    b->later = no;
    weiri_timed e = { .due = due, .fire = deliver_delayed, .target = topic,
                      .item = b };
    int rc = weiri_timer_add(&topic->bus->delays, e);
    if (rc != 0)
        weiri_free(b);
    return rc;
}

/*
 * A publish to a durable topic, in the read section the caller entered
 * (ticket, set), which this leaves: an id, the journal (synced as its
 * policy says), then the topic's subscriptions in memory as any
 * publish; its durable subscriptions' feeders take it from the journal.
 * Not accepted (and its id taken back) unless the journal took it.
 */
static int
publish_durable(weir_topic *topic, const weiri_subset *set, unsigned ticket,
                body_src *src, int64_t deadline)
{
    weir_bus *bus = topic->bus;
    src->id = atomic_fetch_add_explicit(&bus->next_id, 1,
                                        memory_order_relaxed) + 1;
    bool held = false;
    weiri_jpub m = { .topic = topic->name, .topic_len = topic->name_len,
                     .id = src->id, .ts = src->timestamp_ns, .key = src->key,
                     .key_len = src->key_len, .data = src->data,
                     .len = src->size };
    int rc = weiri_journal_publish(bus->journal, &m, &held);
    if (rc != 0) {
        weiri_topic_leave(topic, ticket);
        /* Release: see weir_bus_get_stats. */
        atomic_fetch_add_explicit(&bus->unused_ids, 1, memory_order_release);
        return rc;
    }
    weiri_routed r;
    rc = fanout(topic, set, ticket, src, deadline, &r);
    count_sealed(bus, &r);
    /*
     * In the journal, it is accepted if a durable subscription will take
     * it, whatever the subscriptions in memory did (a full REJECT queue,
     * a close: fanout then kept its id, as for a relay).  Otherwise the
     * publish is one like any other, and its id goes back when it
     * reached nobody.
     */
    if (held)
        rc = 0; /* each subscription in memory counted its refusal */
    if ((r.nobody || rc == WEIR_ECLOSED) && !held)
        /* Release: see weir_bus_get_stats. */
        atomic_fetch_add_explicit(&bus->unused_ids, 1, memory_order_release);
    if (r.nobody && !held)
        atomic_fetch_add_explicit(&bus->unrouted, 1, memory_order_relaxed);
    return rc;
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
    /* Acquire: pairs with the release that made the topic durable. */
    bool durable = atomic_load_explicit(&topic->durable,
                                        memory_order_acquire);
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
        if (!(atomic_load(&bus->closed) && weiri_publish_refused(bus))) {
            weiri_body *b = weiri_body_create(NULL, topic->name, data, len,
                                              key, key_len, now, 0);
            rc = b == NULL  ? WEIR_ENOMEM
                 : durable ? publish_later_durable(topic, b, opts)
                           : publish_later(topic, b, opts);
            if (rc == WEIR_ECLOSED)
                weiri_bus_forwards_refused(bus, 1);
        }
        weiri_topic_leave(topic, ticket);
        return rc;
    }
    int64_t deadline = pub_deadline(timeout, now);
    body_src src = { data, len, key, key_len, now, 0 };
    weiri_routed r;
    unsigned ticket;
    const weiri_subset *set = weiri_topic_enter(topic, &ticket);
    /*
     * The close is checked inside the section: either close_bus's
     * quiesce sees the section, or this load sees the close (both
     * seq_cst).  A plain load on x86, as the check before the section
     * it replaces was.
     */
    if (atomic_load(&bus->closed) && weiri_publish_refused(bus)) {
        weiri_topic_leave(topic, ticket);
        return WEIR_ECLOSED;
    }
    if (durable)
        return publish_durable(topic, set, ticket, &src, deadline);
    if (set != NULL && set->n == 1 &&
        weiri_sub_takes_copy(set->subs[0],
                             weiri_body_extra(len, key_len, key != NULL)) &&
        publish_in_place(set->subs[0], &src, &r)) {
        weiri_topic_leave(topic, ticket);
        return 0;
    }
    int rc = fanout(topic, set, ticket, &src, deadline, &r);
    count_sealed(bus, &r);
    return rc;
}
