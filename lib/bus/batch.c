/* SPDX-License-Identifier: MIT */
/*
 * batch.c - atomic batches: messages staged, then placed all at once or
 * not at all (weir_batch_commit).
 *
 * A commit places every staged message in every subscription's queue
 * under a gate (msg_internal.h): workers that take one wait for the
 * decision, so no handler sees part of a batch.  If a message cannot be
 * placed, the gate is aborted and what was placed is voided: workers
 * discard it uncounted (sub.c).
 *
 * The commit never waits while it holds placed messages.  Were it to wait
 * for room in a full queue, a worker of that queue could be waiting on
 * the gate with the message that would make room, for ever.  So each try
 * places everything without waiting; a full queue aborts the try, the
 * commit waits for room there, holding nothing, and tries again until its
 * timeout.  A full REJECT queue fails the commit at once.  Batch messages
 * neither drop others nor are dropped (DROP_* queues are waited on like
 * BLOCK ones), so an abort knows exactly what to take back.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc_internal.h"
#include "place_internal.h"
#include "publish_internal.h"
#include "topic_internal.h"
#include "clock_internal.h"

typedef struct staged {
    weir_topic *topic;
    /* the copy each try's bodies are made from */
    weiri_body *body;
} staged;

struct weir_batch {
    weir_bus *bus;
    staged *items;
    size_t n, cap;
};

int
weir_batch_begin(weir_bus *bus, weir_batch **batch)
{
    if (bus == NULL || batch == NULL)
        return WEIR_EINVAL;
    *batch = NULL;
    /*
     * A worker of the bus may always begin: what it stages is refused,
     * and counted, at weir_batch_publish or weir_batch_commit.  A hint
     * only (seq_cst, though any order would do): the commit checks again
     * in its read sections.
     */
    if (atomic_load(&bus->closed) && !weiri_in_handler_of(bus, NULL))
        return WEIR_ECLOSED;
    weir_batch *b = weiri_calloc(1, sizeof(*b));
    if (b == NULL)
        return WEIR_ENOMEM;
    b->bus = bus;
    *batch = b;
    return 0;
}

int
weir_batch_publish(weir_batch *batch, const char *topic, const void *data,
                   size_t len, const weir_pub_opts *opts)
{
    size_t key_len;
    if (batch == NULL || topic == NULL ||
        weiri_check_publish(data, len, opts, &key_len) != 0 ||
        (opts != NULL && opts->delay_ns != 0))
        return WEIR_EINVAL;
    weir_topic *t;
    int rc = weir_bus_topic(batch->bus, topic, &t);
    if (rc == WEIR_ECLOSED)
        return weiri_bus_forwards_refused(batch->bus, 1);
    if (rc != 0)
        return rc;
    staged *items = weiri_grow(batch->items, &batch->cap, batch->n + 1,
                               sizeof(*items), 8);
    if (items == NULL)
        return WEIR_ENOMEM;
    batch->items = items;
    weiri_body *body = weiri_body_create(NULL, t->name, data, len,
                                         opts != NULL ? opts->key : NULL,
                                         key_len, 0, 0);
    if (body == NULL)
        return WEIR_ENOMEM;
    batch->items[batch->n++] = (staged){ t, body };
    return 0;
}

void
weir_batch_abort(weir_batch *batch)
{
    if (batch == NULL)
        return;
    for (size_t i = 0; i < batch->n; i++)
        weiri_free(batch->items[i].body); /* never shared, never pooled */
    weiri_free(batch->items);
    weiri_free(batch);
}

/*
 * Place b, holding one reference for s, without waiting and whatever s's
 * overflow policy: a batch message never drops another, nor is dropped,
 * so that an abort can take back exactly what it placed.  0, WEIR_EAGAIN
 * (full; the reference is released and nothing counted) or WEIR_ECLOSED.
 */
static int
place(weir_sub *s, weiri_body *b)
{
    /*
     * Before the place, whose fill is the release that orders it: see
     * weiri_work_took.  Relaxed load first: a stale false only stores
     * true again, and the line stays clean once it is set.
     */
    if (!atomic_load_explicit(&s->gated, memory_order_relaxed))
        atomic_store_explicit(&s->gated, true, memory_order_relaxed);
    int rc = weiri_sub_place(s, b);
    if (rc != 0)
        weiri_body_release(b, 1);
    return rc;
}

/* A staged message as one try sees it. */
typedef struct item_in {
    const weiri_subset *set;       /* its topic's subscriptions */
    size_t share;                  /* staged messages of its topic: each of
                                      those subscriptions' share */
    weiri_body *body;              /* this try's copy, one reference per
                                      subscription; NULL if none */
    size_t tried, placed;          /* places tried and taken this try */
    uint64_t id;                   /* its id this try, or 0 */
    bool durable;                  /* its topic is durable: journaled */
    bool held;                     /* a durable subscription takes it */
} item_in;

/* A distinct topic a try entered. */
typedef struct topic_in {
    weir_topic *topic;
    const weiri_subset *set;
    unsigned ticket;
    size_t count;                  /* staged messages of it */
} topic_in;

/* The outcome of one try. */
typedef struct outcome {
    int rc;           /* 0, WEIR_EAGAIN (REJECT full), WEIR_ETIMEDOUT (another
                         policy, full), WEIR_ECLOSED or WEIR_ENOMEM */
    weir_sub *full;   /* the subscription that was full */
    weir_topic *full_topic; /* a topic of it: topics live as long as the bus */
    uint64_t full_serial;   /* full's, to find it again (weiri_subset_has) */
    size_t need;      /* how many of ours it must take */
    uint64_t unrouted;
} outcome;

/*
 * Write the durable messages of the batch (count of them) to the
 * journal as one group, with this try's ids and publish time now, and
 * note which a durable subscription holds.  Returns as
 * weiri_journal_publish_group.
 */
static int
journal_batch(const weir_batch *batch, item_in *in, size_t count,
              int64_t now)
{
    weiri_jpub *ms = weiri_calloc(count, sizeof(*ms));
    bool *held = weiri_calloc(count, sizeof(*held));
    int rc = WEIR_ENOMEM;
    if (ms != NULL && held != NULL) {
        for (size_t i = 0, k = 0; i < batch->n; i++) {
            const weiri_body *tpl = batch->items[i].body;
            const weir_topic *t = batch->items[i].topic;
            if (!in[i].durable)
                continue;
            ms[k++] = (weiri_jpub){
                .topic = t->name, .topic_len = t->name_len,
                .id = in[i].id, .ts = now, .key = tpl->key,
                .key_len = tpl->key != NULL ? strlen(tpl->key) : 0,
                .data = tpl->data, .len = tpl->size
            };
        }
        rc = weiri_journal_publish_group(batch->bus->journal, ms, count,
                                         held);
        for (size_t i = 0, k = 0; rc == 0 && i < batch->n; i++)
            if (in[i].durable)
                in[i].held = held[k++];
    }
    weiri_free(held);
    weiri_free(ms);
    return rc;
}

/*
 * One try: place everything under a new gate, then decide it (see
 * item_in).  placed has room for every placement; an abort takes each
 * back out of its subscription's routed count at once (workers then
 * discard the messages uncounted, see weiri_work_admit).
 */
static outcome
try_commit(weir_batch *batch, item_in *in, weir_sub **placed)
{
    weir_bus *bus = batch->bus;
    outcome o = { 0 };
    uint64_t ids = 0;
    size_t np = 0;
    weiri_gate *g = weiri_malloc(sizeof(*g));
    if (g == NULL || weiri_event_init(&g->decided) != 0) {
        weiri_free(g);
        o.rc = WEIR_ENOMEM;
        return o;
    }
    atomic_init(&g->state, WEIRI_GATE_PENDING);
    atomic_init(&g->refs, 1); /* ours, until decided */
    int64_t now = weiri_stamp_ns(); /* one publish time for the whole batch */
    size_t durable = 0;
    for (size_t i = 0; i < batch->n; i++) {
        in[i].body = NULL;
        in[i].tried = in[i].placed = 0;
        in[i].id = 0;
        in[i].held = false;
        /* Acquire: pairs with the release that made it durable. */
        in[i].durable = atomic_load_explicit(&batch->items[i].topic->durable,
                                             memory_order_acquire);
        durable += in[i].durable;
    }
    /*
     * Every message's copy first, then the places.  A durable topic's
     * message takes an id even with no subscription in memory: the
     * journal may hold it for a durable one.
     */
    for (size_t i = 0; i < batch->n && o.rc == 0; i++) {
        const weiri_body *tpl = batch->items[i].body;
        const weiri_subset *set = in[i].set;
        if ((set == NULL || set->n == 0) && !in[i].durable)
            continue;
        in[i].id = atomic_fetch_add_explicit(&bus->next_id, 1,
                                             memory_order_relaxed) + 1;
        ids++;
        if (set == NULL || set->n == 0)
            continue;
        weiri_body *b = weiri_body_create(&bus->bodies, tpl->topic, tpl->data,
                                          tpl->size, tpl->key,
                                          tpl->key ? strlen(tpl->key) : 0,
                                          now, (uint32_t)set->n);
        if (b == NULL) {
            o.rc = WEIR_ENOMEM;
            break;
        }
        b->id = in[i].id;
        atomic_fetch_add(&g->refs, 1);
        b->gate = g;
        in[i].body = b;
    }
    /*
     * The caller's own subscription last (a handler committing to its own
     * topic): a try that fails elsewhere then leaves nothing in a queue
     * that only the caller's worker could empty.
     */
    for (int own = 0; own < 2 && o.rc == 0; own++) {
        for (size_t i = 0; i < batch->n && o.rc == 0; i++) {
            const weiri_subset *set = in[i].set;
            for (size_t j = 0; in[i].body != NULL && j < set->n; j++) {
                weir_sub *s = set->subs[j];
                if (weiri_in_handler_of(bus, s) != (own == 1))
                    continue;
                in[i].tried++;
                int rc = place(s, in[i].body);
                if (rc == 0) {
                    in[i].placed++;
                    placed[np++] = s;
                    continue;
                }
                /* seq_cst: see close_bus's store of sealed. */
                if (rc == WEIR_ECLOSED && !atomic_load(&bus->sealed))
                    continue; /* s is being closed: as for a publish, skip it */
                o.rc = rc == WEIR_EAGAIN && s->overflow != WEIR_OVERFLOW_REJECT
                           ? WEIR_ETIMEDOUT : rc;
                o.full = s;
                o.full_serial = s->serial;
                o.full_topic = batch->items[i].topic;
                o.need = in[i].share;
                break;
            }
        }
    }
    /* References no place was tried for go back. */
    for (size_t i = 0; i < batch->n; i++)
        if (in[i].body != NULL && in[i].set->n > in[i].tried)
            weiri_body_release(in[i].body,
                               (uint32_t)(in[i].set->n - in[i].tried));
    /*
     * A close that overtook us shut queues we counted as skipped.
     * seq_cst: see close_bus's store of sealed, before the shuts.
     */
    if (o.rc == 0 && atomic_load(&bus->sealed))
        o.rc = WEIR_ECLOSED;
    /*
     * Placed everywhere in memory, still behind the gate: now the
     * journal, all of the batch's durable messages at once, and only
     * then the decision, so that neither a worker nor a restart sees
     * part of a batch that is then refused.
     */
    if (o.rc == 0 && durable > 0)
        o.rc = journal_batch(batch, in, durable, now);
    /*
     * A message every one of whose subscriptions was closing reached
     * nobody, unless a durable subscription holds it: as a publish's,
     * its id is taken back, and it counts as unrouted.
     */
    for (size_t i = 0; i < batch->n && o.rc == 0; i++) {
        if (in[i].placed > 0 || in[i].held)
            continue;
        if (in[i].id != 0)
            atomic_fetch_add_explicit(&bus->unused_ids, 1,
                                      memory_order_release);
        o.unrouted++;
    }
    if (o.rc != 0) {
        /* Release: see weir_bus_get_stats. */
        atomic_fetch_add_explicit(&bus->unused_ids, ids, memory_order_release);
        for (size_t i = 0; i < np; i++)
            atomic_fetch_add_explicit(&placed[i]->voided, 1,
                                      memory_order_release);
    }
    /*
     * seq_cst: a waker's store must precede its look for sleepers
     * (wait_internal.h).
     */
    atomic_store(&g->state,
                 o.rc == 0 ? WEIRI_GATE_COMMITTED : WEIRI_GATE_ABORTED);
    weiri_event_notify(&g->decided, UINT32_MAX);
    weiri_gate_release(g);
    return o;
}

/* What await_room waits for. */
typedef struct room_for {
    weir_topic *topic;
    const weir_sub *s;
    uint64_t serial;   /* s's */
    size_t need;
} room_for;

/*
 * One look: whether s has room for need more, or is gone.  s may be
 * closed and freed meanwhile: the look enters its topic and touches s
 * only if s is still subscribed there.
 */
static bool
room_or_gone(void *arg)
{
    const room_for *r = arg;
    unsigned ticket;
    const weiri_subset *set = weiri_topic_enter(r->topic, &ticket);
    bool member = weiri_subset_has(set, r->s, r->serial);
    bool room = member && weiri_sub_has_room(r->s, r->need);
    weiri_topic_leave(r->topic, ticket);
    return !member || room;
}

/*
 * Wait, holding nothing between looks, until s has room for need more,
 * or the deadline.  true: try again (room, or s is gone or closing).
 */
static bool
await_room(weir_topic *topic, const weir_sub *s, uint64_t serial, size_t need,
           int64_t deadline)
{
    room_for r = { topic, s, serial, need };
    return weiri_poll_until(room_or_gone, &r, deadline);
}

/*
 * Enter the topic of every staged message, each distinct topic once, so
 * that all messages of a topic meet the same subscriptions.  Fills in[]
 * and top[0..k-1]; returns k.  A subscription has one topic, so its share
 * of the batch is its topic's count.
 */
static size_t
enter_all(const weir_batch *batch, item_in *in, topic_in *top)
{
    size_t k = 0;
    for (size_t i = 0; i < batch->n; i++) {
        weir_topic *t = batch->items[i].topic;
        size_t j = 0;
        while (j < k && top[j].topic != t)
            j++;
        if (j == k) {
            top[k] = (topic_in){ .topic = t };
            top[k].set = weiri_topic_enter(t, &top[k].ticket);
            k++;
        }
        top[j].count++;
        in[i].set = top[j].set;
        in[i].share = j; /* an index for now; the count below */
    }
    for (size_t i = 0; i < batch->n; i++)
        in[i].share = top[in[i].share].count;
    return k;
}

int
weir_batch_commit(weir_batch *batch, int64_t timeout_ns)
{
    if (batch == NULL)
        return WEIR_EINVAL;
    int rc = WEIR_EINVAL;
    weir_bus *bus = batch->bus;
    item_in *in = NULL;
    topic_in *top = NULL;
    weir_sub **placed = NULL;
    if (weiri_bad_timeout(timeout_ns))
        goto out;
    int64_t deadline = weiri_deadline(timeout_ns);
    in = weiri_calloc(batch->n + 1, sizeof(*in));
    top = weiri_calloc(batch->n + 1, sizeof(*top));
    rc = WEIR_ENOMEM;
    if (in == NULL || top == NULL)
        goto out;
    for (;;) {
        /*
         * The subscriptions of every topic stay put for the whole try.
         * The close is checked inside the sections, as a publish does.
         */
        size_t k = enter_all(batch, in, top);
        /* A queue too small for its share could never take it. */
        rc = weiri_bus_refuses(bus) ? WEIR_ECLOSED : 0;
        size_t places = 0;
        for (size_t j = 0; j < k; j++) {
            for (size_t m = 0; top[j].set != NULL && m < top[j].set->n; m++)
                if (rc == 0 &&
                    top[j].count > weiri_sub_capacity(top[j].set->subs[m]))
                    rc = WEIR_EAGAIN;
            places += top[j].set != NULL ? top[j].count * top[j].set->n : 0;
        }
        weir_sub **more = weiri_realloc(placed, (places + 1) * sizeof(*placed));
        if (more == NULL && rc == 0)
            rc = WEIR_ENOMEM;
        else if (more != NULL)
            placed = more;
        outcome o = { .rc = rc };
        if (rc == 0)
            o = try_commit(batch, in, placed);
        while (k-- > 0)
            weiri_topic_leave(top[k].topic, top[k].ticket);
        rc = o.rc;
        if (rc == 0)
            atomic_fetch_add_explicit(&bus->unrouted, o.unrouted,
                                      memory_order_relaxed);
        if (rc != WEIR_ETIMEDOUT)
            break;
        /* A handler waiting for room in its own queue: as a publish does. */
        if (!weiri_sub_wait_begin(bus, o.full, deadline == WEIRI_NO_DEADLINE)) {
            rc = WEIR_EDEADLK;
            break;
        }
        bool room = await_room(o.full_topic, o.full, o.full_serial, o.need,
                               deadline);
        weiri_sub_wait_end(bus, o.full);
        if (!room)
            break;
    }
    /*
     * WEIR_NOWAIT (or 0) tries once, in every call: a full BLOCK queue
     * then refuses at once, as for a publish.
     */
    if (rc == WEIR_ETIMEDOUT && weiri_try_once(timeout_ns))
        rc = WEIR_EAGAIN;
    /* A worker's batch that the bus's close turned away: counted. */
    if (rc == WEIR_ECLOSED)
        weiri_bus_forwards_refused(bus, batch->n);
out:
    weiri_free(placed);
    weiri_free(top);
    weiri_free(in);
    weir_batch_abort(batch);
    return rc;
}
