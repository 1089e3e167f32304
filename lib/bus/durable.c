/* SPDX-License-Identifier: MIT */
/*
 * durable.c - the feeder of a durable subscription: a thread that reads
 * its messages back from the journal and places them in its queue, so
 * that the queue's bound never drops or refuses what the journal holds,
 * and a subscription that was away, or a process that restarted, gets
 * what it missed at its own pace.
 */
#include "alloc_internal.h"
#include "clock_internal.h"
#include "durable_internal.h"
#include "msg_internal.h"
#include "place_internal.h"
#include "thread_internal.h"
#include "topic_internal.h"

/* Place b in s's queue, waiting for room until the feeder is stopped. */
static int
place(weir_sub *s, weiri_body *b)
{
    int rc = weiri_sub_offer(s, b);
    if (rc == WEIRI_MUST_WAIT)
        rc = weiri_sub_wait(s, b, WEIRI_NO_DEADLINE, &s->feed_stop);
    return rc;
}

/*
 * A message that could not be placed for want of memory or a read that
 * failed: handed out again after a pause, unless the feeder is stopped.
 */
static bool
pause_and_retry(weir_sub *s, uint64_t entry)
{
    weiri_journal_unhand(s->jsub, entry);
    for (int i = 0; i < 10 && !atomic_load(&s->feed_stop); i++)
        weiri_sleep_until(weiri_deadline(WEIR_MSEC));
    return !atomic_load(&s->feed_stop);
}

/*
 * A dead letter read back: what it failed on, as its handlers saw it
 * before the restart.  The origin names a topic of the bus (made if
 * this run has not used it), whose name lives as long as the bus does.
 * false: no memory for the topic.
 */
static bool
dead_letter(weir_sub *s, weiri_body *b, const weiri_jmsg *m)
{
    weir_bus *bus = s->bus;
    weir_topic *t = weiri_topic_find(bus, m->origin, m->origin_len);
    if (t == NULL) {
        pthread_mutex_lock(&bus->mu);
        int rc = weiri_topic_get(bus, m->origin, m->origin_len, &t);
        pthread_mutex_unlock(&bus->mu);
        if (rc != 0)
            return false;
    }
    b->origin = t->name;
    b->attempt_base = m->attempts;
    b->origin_error = m->error;
    return true;
}

static void *
feeder_main(void *arg)
{
    weir_sub *s = arg;
    weiri_jmsg m = { 0 };
    for (;;) {
        /* The last one is placed: the journal counts it no longer. */
        int rc = weiri_journal_next(s->jsub, WEIRI_NO_DEADLINE, &m);
        if (rc == WEIR_ECLOSED)
            break;
        /*
         * A record that does not check any more (the disk changed it):
         * nothing after it is handed out, never skipped silently; the
         * bus's close does not wait for it (weiri_durable_caught_up).
         */
        if (rc == WEIR_ECORRUPT) {
            atomic_store(&s->feed_failed, true);
            break;
        }
        if (rc != 0) {
            if (!pause_and_retry(s, m.entry))
                break;
            continue;
        }
        /* A body from the bus's pool, as a publish takes one. */
        weiri_body *b = weiri_body_create(&s->bus->bodies, s->topic->name,
                                          m.data, m.len, m.key, m.key_len,
                                          m.ts, 1);
        if (b == NULL) {
            if (!pause_and_retry(s, m.entry))
                break;
            continue;
        }
        if (m.origin != NULL && !dead_letter(s, b, &m)) {
            weiri_body_release(b, 1);
            if (!pause_and_retry(s, m.entry))
                break;
            continue;
        }
        b->id = m.id;
        b->jentry = m.entry;
        b->redelivered = m.redelivered;
        if (m.redelivered)
            atomic_fetch_add_explicit(&s->redelivered, 1,
                                      memory_order_relaxed);
        if (place(s, b) != 0)
            break; /* shut or stopped: the journal keeps it */
    }
    weiri_free(m.buf);
    return NULL;
}

int
weiri_durable_start(weir_sub *s)
{
    atomic_store(&s->feed_stop, false);
    atomic_store(&s->feed_failed, false);
    if (weiri_thread_start(&s->feeder, feeder_main, s) != 0)
        return WEIR_ENOMEM;
    s->feeding = true;
    return 0;
}

bool
weiri_durable_caught_up(weir_sub *s)
{
    return atomic_load(&s->feed_failed) ||
           weiri_journal_pending(s->jsub) == 0;
}

void
weiri_durable_stop(weir_sub *s)
{
    if (!s->feeding)
        return;
    /* seq_cst: weiri_sub_wait polls it while the feeder waits for room. */
    atomic_store(&s->feed_stop, true);
    weiri_journal_stop(s->jsub);
    weiri_thread_join(s->feeder);
    s->feeding = false;
}
