/* SPDX-License-Identifier: MIT */
/*
 * publish_internal.h - PRIVATE to lib/: the publish path (publish.c).
 */
#ifndef WEIR_PUBLISH_INTERNAL_H
#define WEIR_PUBLISH_INTERNAL_H

#include "bus_internal.h"

/* What became of a body the bus offered to a topic's subscriptions. */
typedef struct weiri_routed {
    bool nobody;     /* the topic had no subscription */
    size_t placed;   /* subscriptions that took it */
    size_t gone;     /* refusals because of a close: a closed queue, or a
                        wait for room that *stop ended */
} weiri_routed;

/*
 * weiri_publish_rearm - put the durable delayed message m, numbered no
 * in the journal and read back from it at open, on the bus's timer for
 * topic (durable), due at due.  0, WEIR_ENOMEM, WEIR_ECLOSED.
 */
int weiri_publish_rearm(weir_topic *topic, const weiri_jmsg *m, uint64_t no,
                        int64_t due);

/*
 * weiri_publish_relay - offer b, a dead letter (written, refs 0, with the
 * id of the message it came from), to every subscription of topic by
 * their policies, a full BLOCK queue waiting until *stop turns true.  It
 * keeps its id and is never counted unrouted.  Returns what became of it
 * (b is released if nobody took it).  Any thread; whatever the bus's
 * state (a close drains what its workers relay).
 */
weiri_routed weiri_publish_relay(weir_topic *topic, weiri_body *b,
                                 const _Atomic bool *stop);

/*
 * weiri_publish_refused - whether a publish by the calling thread is
 * refused for the bus's close (weiri_bus_refuses); if so, and the caller
 * is a worker of the bus, it is counted in forwards_refused.
 */
bool weiri_publish_refused(weir_bus *bus);

/*
 * weiri_bus_forwards_refused - count n publishes refused for the bus's
 * close in forwards_refused, if the caller is one of its workers.
 * Returns WEIR_ECLOSED.
 */
int weiri_bus_forwards_refused(weir_bus *bus, uint64_t n);
/*
 * weiri_check_publish - the argument checks of every publish, routed or
 * not: 0 or WEIR_EINVAL.  *key_len receives the key's length (0 without
 * a key).  Inline for a publish without options; weiri_check_pub_opts
 * checks those.
 */
int weiri_check_pub_opts(const weir_pub_opts *opts, size_t *key_len);

static inline int
weiri_check_publish(const void *data, size_t len, const weir_pub_opts *opts,
                    size_t *key_len)
{
    *key_len = 0;
    if ((data == NULL && len > 0) || len > WEIR_MAX_PAYLOAD)
        return WEIR_EINVAL;
    return opts == NULL ? 0 : weiri_check_pub_opts(opts, key_len);
}

#endif /* WEIR_PUBLISH_INTERNAL_H */
