/* SPDX-License-Identifier: MIT */
/*
 * journal_internal.h - PRIVATE to lib/: durable topics' messages and
 * durable subscriptions' positions, kept in the log (log_internal.h).
 *
 * Records (bodies, little-endian):
 *   MSG     id 8, timestamp 8, topic length 2, key length 2 (0xffff: no
 *           key), topic, key, payload
 *   DEAD    a dead letter: id 8, timestamp 8, topic length 2, key length
 *           2, attempts 4, last error 4, origin length 2, topic, origin
 *           (the topic it failed on), key, payload
 *   LATER   a delayed message not yet due: id 8 (0), timestamp 8, topic
 *           length 2, key length 2, due 8 (CLOCK_REALTIME ns), topic,
 *           key, payload
 *   DUE     a delayed message come due: id 8, timestamp 8, topic length
 *           2, key length 2, its LATER's segment 8 and offset 8, topic,
 *           key, payload; read as a MSG, and its LATER is done with
 *   BATCH   a message of an atomic batch: id 8, timestamp 8, topic
 *           length 2, key length 2, how many records of the batch follow
 *           it 4, topic, key, payload.  A batch's records are written
 *           together; a reopen takes them only if the last is there.
 *   SUB     subscription number 4, first segment 8, first offset 8,
 *           topic length 2, name length 2, topic, name: a durable
 *           subscription and where its messages begin (every MSG of its
 *           topic from there on is its until acknowledged)
 *   ACK     subscription number 4, then one or more of: segment 8,
 *           offset 8 (those MSGs done)
 *   FORGET  subscription number 4
 * Every segment begins with a SUB of each known subscription (the log's
 * head), its first position moved up to its oldest message not yet
 * acknowledged, so that older segments can go.
 *
 * In memory, each topic with a durable subscription has an index of its
 * messages in log order (entries), and each subscription its place in
 * it: low (all before it acknowledged), next (the next to hand out) and
 * which entries from low on are acknowledged.  A segment goes once no
 * subscription's low lies in it or before it.
 */
#ifndef WEIR_JOURNAL_INTERNAL_H
#define WEIR_JOURNAL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log_internal.h"

typedef struct weiri_journal weiri_journal;
typedef struct weiri_jsub weiri_jsub;

/* A message read back for a subscription. */
typedef struct weiri_jmsg {
    uint64_t entry;          /* to acknowledge it with */
    const char *topic;       /* topic_len bytes */
    size_t topic_len;
    uint64_t id;
    int64_t ts;
    const char *key;         /* NULL: none; not NUL-terminated */
    size_t key_len;
    const void *data;
    size_t len;
    const char *origin;      /* a dead letter's: the topic it failed on
                                (origin_len bytes); NULL: not one */
    size_t origin_len;
    unsigned attempts;       /* a dead letter's: its original's attempts */
    int error;               /* a dead letter's: its last handler's return */
    int64_t due_wall;        /* a delayed message's: CLOCK_REALTIME ns */
    bool redelivered;        /* handed out before (this run or the last) */
    unsigned char *buf;      /* holds the record, and those read with it
                                (see weiri_journal_next); weiri_free it */
    size_t cap;
    uint64_t wseg, woff;     /* buf holds wlen bytes from woff in wseg */
    size_t wlen;
} weiri_jmsg;

/*
 * weiri_journal_open - open the log of o and read back its messages and
 * subscriptions.  Returns as weiri_log_open, and WEIR_ECORRUPT for a
 * record that checks but does not parse.
 */
int weiri_journal_open(weiri_journal **out, const weiri_log_opts *o);

/* weiri_journal_max_id - the highest message id read back at open. */
uint64_t weiri_journal_max_id(weiri_journal *j);

/*
 * weiri_journal_paced - whether a publish waits for a sync (EVERY,
 * BATCH): its subscriptions' messages then come at the pace of syncs.
 */
bool weiri_journal_paced(const weiri_journal *j);

/* A message to write. */
typedef struct weiri_jpub {
    const char *topic;       /* topic_len bytes */
    size_t topic_len;
    uint64_t id;
    int64_t ts;
    const char *key;         /* NULL: none; key_len bytes */
    size_t key_len;
    const void *data;
    size_t len;
    const char *origin;      /* a dead letter: the topic it failed on
                                (origin_len bytes), with attempts and
                                error; NULL: not one */
    size_t origin_len;
    unsigned attempts;
    int error;
    uint64_t later;          /* not 0: the delayed message come due that
                                weiri_journal_later numbered so */
} weiri_jpub;

/*
 * weiri_journal_publish - write the message m, synced as the policy
 * says; its topic's durable subscriptions may take it once this returns
 * 0.  *held (if held is not NULL) says whether a durable subscription
 * will take it.  A delayed message come due (m->later) is written past
 * max_bytes.  Returns as weiri_log_append, and WEIR_EINVAL for a topic,
 * key or origin of 65535 bytes or more, a dead letter with a later, or a
 * later not known.  Any thread.
 */
int weiri_journal_publish(weiri_journal *j, const weiri_jpub *m, bool *held);

/*
 * weiri_journal_publish_group - weiri_journal_publish of the n messages
 * of ms (none a dead letter or come due) as one batch: written in one
 * piece and synced once, and after a crash either all of them are read
 * back or none.  held (if not NULL) has room for n: held[i] says whether
 * a durable subscription will take ms[i].  Returns as
 * weiri_journal_publish (WEIR_EINVAL also for n 0).  Any thread.
 */
int weiri_journal_publish_group(weiri_journal *j, const weiri_jpub *ms,
                                size_t n, bool *held);

/*
 * weiri_journal_later - write m (neither a dead letter nor come due) as
 * a delayed message due at due (CLOCK_MONOTONIC ns, kept as wall-clock
 * time), synced as the policy says; *no receives its number, for the
 * weiri_journal_publish that writes it come due.  Until then it keeps
 * its segment, and every reopen hands it to weiri_journal_each_later.
 * Returns as weiri_log_append.  Any thread.
 */
int weiri_journal_later(weiri_journal *j, const weiri_jpub *m, int64_t due,
                        uint64_t *no);

/* Called with each delayed message not yet due, its number and due. */
typedef int (*weiri_later_fn)(void *ctx, uint64_t no, int64_t due,
                              const weiri_jmsg *m);

/*
 * weiri_journal_each_later - call fn with each delayed message not come
 * due (those read back at open), oldest first, m valid for the call;
 * due is its wall-clock due time as CLOCK_MONOTONIC ns now (now, if
 * past).  Stops at the first non-zero return of fn and returns it; else
 * 0, WEIR_EIO, WEIR_ECORRUPT, WEIR_ENOMEM.  Once, right after open; fn
 * may start what writes them come due meanwhile.
 */
int weiri_journal_each_later(weiri_journal *j, weiri_later_fn fn,
                             void *ctx);

/*
 * weiri_journal_attach - the durable subscription name of topic, made
 * (starting after every message written so far) if the journal does
 * not know it.  Its messages not acknowledged are handed out again
 * first.  Returns 0, WEIR_EEXIST (attached already), WEIR_EINVAL (a
 * name or topic over 65535 bytes), WEIR_EIO, WEIR_ENOMEM.
 */
int weiri_journal_attach(weiri_journal *j, const char *topic,
                         const char *name, weiri_jsub **out);

/*
 * weiri_journal_next - the next message of s, read into m, waiting until
 * deadline (absolute, CLOCK_MONOTONIC ns) for one.  Returns 0;
 * WEIR_ETIMEDOUT (none by deadline); WEIR_ECLOSED (weiri_journal_stop
 * was called); WEIR_EIO or WEIR_ECORRUPT (its record cannot be read
 * back); WEIR_ENOMEM.  One thread per subscription, with the same m
 * each call (zeroed before the first): one read takes the messages
 * ready after it too, up to WEIRI_JOURNAL_WINDOW bytes, for the calls
 * that follow.  Waiting without a deadline, it also writes s's acks
 * that no publish carried within 10 ms (see weiri_journal_ack_many).
 */
int weiri_journal_next(weiri_jsub *s, int64_t deadline, weiri_jmsg *m);

enum { WEIRI_JOURNAL_WINDOW = 64 * 1024 };

/*
 * weiri_journal_pending - 0 when s has no message left to hand out and
 * none in hand (the last one handed out counts until its taker calls
 * weiri_journal_next again: it may not be placed yet); else not 0 (at
 * most 2: it stops looking at the first).
 */
uint64_t weiri_journal_pending(weiri_jsub *s);

/*
 * weiri_journal_unhand - the taker of entry (the last handed out by
 * weiri_journal_next) could not place it: the next call hands it out
 * again.
 */
void weiri_journal_unhand(weiri_jsub *s, uint64_t entry);

/* weiri_journal_stop - make weiri_journal_next of s return ECLOSED. */
void weiri_journal_stop(weiri_jsub *s);

/* The most entries one weiri_journal_ack_many takes. */
enum { WEIRI_JOURNAL_ACK_MAX = 64 };

/*
 * weiri_journal_ack_many - entries nos[0..n) of s are done, and
 * segments no subscription needs any more are deleted.  The acks are
 * written without a sync of their own: under EVERY and BATCH the next
 * publish writes them with its message (so its sync covers them); else
 * this call once 4 KiB (64 KiB under EVERY and BATCH) wait, s's feeder
 * 10 ms after the first of them, weiri_journal_write_acks or
 * weiri_journal_detach.  n at most
 * WEIRI_JOURNAL_ACK_MAX.  Returns 0, WEIR_EINVAL (n too large),
 * WEIR_EIO, WEIR_ENOMEM.  Any thread.
 */
int weiri_journal_ack_many(weiri_jsub *s, const uint64_t *nos, size_t n);

/*
 * weiri_journal_write_acks - write s's acks that wait (see
 * weiri_journal_ack_many) now, without a sync.  Returns 0 or WEIR_EIO
 * (they come again after a restart).  Any thread.
 */
int weiri_journal_write_acks(weiri_jsub *s);

/*
 * weiri_journal_detach - s is no longer subscribed: what was handed out
 * and not acknowledged is handed out again at the next attach.
 */
void weiri_journal_detach(weiri_jsub *s);

/*
 * weiri_journal_forget - drop the durable subscription name of topic
 * for good.  Returns 0, WEIR_ENOENT (not known), WEIR_EBUSY (attached),
 * WEIR_EIO, WEIR_ENOMEM.
 */
int weiri_journal_forget(weiri_journal *j, const char *topic,
                         const char *name);

/* weiri_journal_get_stats - the log's counters. */
void weiri_journal_get_stats(weiri_journal *j, weiri_log_stats *out);

/*
 * weiri_journal_close - sync and close; every subscription must be
 * detached.  Returns 0 or WEIR_EIO.  Accepts NULL.
 */
int weiri_journal_close(weiri_journal *j);

#endif /* WEIR_JOURNAL_INTERNAL_H */
