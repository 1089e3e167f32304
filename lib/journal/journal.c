/* SPDX-License-Identifier: MIT */
/*
 * journal.c - durable topics' messages and durable subscriptions'
 * positions over the log (journal_internal.h has the records).
 *
 * Locks: the log's, then the journal's (mu), never the other way: the
 * log calls placed and head with its lock held, and they take mu; so no
 * code here calls the log while holding mu.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "alloc_internal.h"
#include "bytes_internal.h"
#include "clock_internal.h"
#include "journal_internal.h"
#include "wait_internal.h"

enum { T_MSG = 1, T_SUB, T_ACK, T_FORGET, T_DEAD, T_LATER, T_DUE, T_BATCH };
enum { MSG_FIXED = 20, DEAD_FIXED = 30, LATER_FIXED = 28, DUE_FIXED = 36,
       BATCH_FIXED = 24, SUB_FIXED = 24, ACK_FIXED = 20, ACK_PAIR = 16,
       NO_KEY = 0xffff };

/* The fixed part of a message record of type, or 0 if it is none. */
static size_t
fixed_of(unsigned type)
{
    switch (type) {
    case T_MSG: return MSG_FIXED;
    case T_DEAD: return DEAD_FIXED;
    case T_LATER: return LATER_FIXED;
    case T_DUE: return DUE_FIXED;
    case T_BATCH: return BATCH_FIXED;
    default: return 0;
    }
}

/*
 * The fields of a message record's body b (MSG, DEAD, LATER, DUE or
 * BATCH) of len bytes into m (its entry, redelivered and buffer
 * untouched), and into later a DUE's LATER position (seg, off) or how
 * many records of its batch follow a BATCH (later[0]): 0, or
 * WEIR_ECORRUPT if they do not fit.
 */
static int
view_msg(unsigned type, const unsigned char *b, size_t len, weiri_jmsg *m,
         uint64_t later[2])
{
    size_t fixed = fixed_of(type);
    if (fixed == 0 || len < fixed)
        return WEIR_ECORRUPT;
    size_t klen = weiri_get16(b + 18);
    size_t kbytes = klen == NO_KEY ? 0 : klen;
    size_t olen = type == T_DEAD ? weiri_get16(b + 28) : 0;
    m->topic_len = weiri_get16(b + 16);
    if (fixed + m->topic_len + olen + kbytes > len)
        return WEIR_ECORRUPT;
    const unsigned char *at = b + fixed;
    m->topic = (const char *)at;
    at += m->topic_len;
    m->id = weiri_get64(b);
    m->ts = (int64_t)weiri_get64(b + 8);
    m->origin = type == T_DEAD ? (const char *)at : NULL;
    m->origin_len = olen;
    m->attempts = type == T_DEAD ? weiri_get32(b + 20) : 0;
    m->error = type == T_DEAD ? (int)weiri_get32(b + 24) : 0;
    m->due_wall = type == T_LATER ? (int64_t)weiri_get64(b + 20) : 0;
    later[0] = type == T_DUE     ? weiri_get64(b + 20)
               : type == T_BATCH ? weiri_get32(b + 20)
                                 : 0;
    later[1] = type == T_DUE ? weiri_get64(b + 28) : 0;
    at += olen;
    m->key = klen == NO_KEY ? NULL : (const char *)at;
    m->key_len = kbytes;
    m->data = at + kbytes;
    m->len = len - (size_t)(at + kbytes - b);
    return 0;
}

/*
 * Point m at the message record rec of size bytes, once it checks: a
 * LATER if later, else any other (a LATER is no subscription's message).
 */
static int
parse_msg(weiri_jmsg *m, const unsigned char *rec, size_t size, bool later)
{
    uint64_t pos[2];
    if (weiri_log_check(rec, size) != 0 || (rec[8] == T_LATER) != later)
        return WEIR_ECORRUPT;
    return view_msg(rec[8], rec + WEIRI_LOG_RECORD_HEADER,
                    size - WEIRI_LOG_RECORD_HEADER, m, pos);
}

/* A delayed message written and not yet due (its LATER record). */
typedef struct later {
    uint64_t seg, off;
    uint32_t size;     /* of the record, header included */
    uint64_t no;       /* weiri_journal_later's number for it */
} later;

typedef struct entry {
    uint64_t seg, off;
    uint32_t size;     /* of the record, header included */
    bool ready;        /* synced as the policy asks: may be handed out */
    bool dead;         /* its publish failed: never handed out */
} entry;

/* A topic with durable subscriptions, and its messages from the oldest
 * any of them still needs. */
typedef struct dtopic {
    char *name;
    size_t len;
    entry *e;          /* e[i] is entry number base + i */
    size_t n, cap;
    uint64_t base;
    unsigned subs;
    struct dtopic *next;
} dtopic;

struct weiri_jsub {
    weiri_journal *j;
    dtopic *t;
    char *name;
    uint32_t no;
    uint64_t low;      /* every entry below is acknowledged */
    uint64_t next;     /* the next entry to hand out */
    uint64_t handed;   /* entries below were handed out at least once */
    uint64_t *bits;    /* acknowledged, from entry bits_base on */
    size_t words;
    uint64_t bits_base;
    bool attached, stopped;
    bool forgetting;   /* its FORGET is being written: no attach */
    bool forgot;       /* its FORGET is in the log: no head names it */
    bool busy;         /* one handed out is not yet placed by its taker:
                          until its next call of weiri_journal_next */
    unsigned char *acks;  /* an ACK body not yet written (the next
                             publish carries it), or NULL */
    size_t acks_len, acks_cap;
    int64_t acks_since;   /* when acks began to wait */
    bool idle;            /* its feeder waits for messages with no
                             deadline: new acks must wake it */
    struct weiri_jsub *link;
};

struct weiri_journal {
    weiri_log *log;
    pthread_mutex_t mu;
    /*
     * Moved (seq_cst, after the change, under mu) when an entry becomes
     * ready or a subscription is stopped; a feeder with nothing to hand
     * out waits on fresh_ev for it to move (see wait_fresh).
     */
    _Atomic uint64_t fresh;
    weiri_event fresh_ev;
    dtopic *topics;
    weiri_jsub *subs;
    uint32_t next_no;
    uint64_t max_id;
    uint64_t tail_seg;     /* the segment being written */
    uint64_t kept;         /* segments below were trimmed */
    uint64_t trim_seen;    /* tail_seg when a publish last tried a trim */
    later *laters;         /* not yet due, in log order (so by no) */
    size_t nlaters, later_cap;
    uint64_t next_later;
    bool ready_written;    /* sync NONE: a message is ready once written */
    _Atomic size_t acks_waiting; /* subscriptions with acks not written;
                                    changed under mu, looked at without */
    /* At open: the BATCH records read of a batch not yet whole. */
    struct gathered *gathered;
    size_t ngathered, gathered_cap;
    uint64_t gathered_seg;
    uint32_t gathered_left;    /* how many the last one said follow it */
};

/* A BATCH record read at open, indexed once its batch is whole. */
typedef struct gathered {
    dtopic *t;
    uint64_t seg, off;
    uint32_t size;
} gathered;

static bool
before(uint64_t seg, uint64_t off, const entry *e)
{
    return seg < e->seg || (seg == e->seg && off < e->off);
}

static dtopic *
topic_find(weiri_journal *j, const char *name, size_t len)
{
    for (dtopic *t = j->topics; t != NULL; t = t->next)
        if (t->len == len && memcmp(t->name, name, len) == 0)
            return t;
    return NULL;
}

static dtopic *
topic_make(weiri_journal *j, const char *name, size_t len)
{
    dtopic *t = topic_find(j, name, len);
    if (t != NULL)
        return t;
    if ((t = weiri_calloc(1, sizeof(*t))) == NULL ||
        (t->name = weiri_malloc(len + 1)) == NULL) {
        weiri_free(t);
        return NULL;
    }
    memcpy(t->name, name, len);
    t->name[len] = '\0';
    t->len = len;
    t->next = j->topics;
    j->topics = t;
    return t;
}

static uint64_t
topic_end(const dtopic *t)
{
    return t->base + t->n;
}

static entry *
entry_at(dtopic *t, uint64_t no)
{
    return &t->e[no - t->base];
}

/* Room in t for k more entries: topic_add cannot fail then. */
static int
topic_reserve(dtopic *t, size_t k)
{
    entry *e = weiri_grow(t->e, &t->cap, t->n + k, sizeof(*e), 64);
    if (e == NULL)
        return WEIR_ENOMEM;
    t->e = e;
    return 0;
}

static int
topic_add(dtopic *t, uint64_t seg, uint64_t off, uint32_t size, bool ready)
{
    int rc = topic_reserve(t, 1);
    if (rc == 0)
        t->e[t->n++] = (entry){ seg, off, size, ready, false };
    return rc;
}

/* The first entry of t at or after (seg, off). */
static uint64_t
topic_lower_bound(const dtopic *t, uint64_t seg, uint64_t off)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (before(seg, off, &t->e[mid]) ||
            (t->e[mid].seg == seg && t->e[mid].off == off))
            hi = mid;
        else
            lo = mid + 1;
    }
    return t->base + lo;
}

static weiri_jsub *
sub_find(weiri_journal *j, const char *topic, size_t tlen, const char *name,
         size_t nlen)
{
    for (weiri_jsub *s = j->subs; s != NULL; s = s->link)
        if (s->t->len == tlen && memcmp(s->t->name, topic, tlen) == 0 &&
            strlen(s->name) == nlen && memcmp(s->name, name, nlen) == 0)
            return s;
    return NULL;
}

static weiri_jsub *
sub_by_no(weiri_journal *j, uint32_t no)
{
    for (weiri_jsub *s = j->subs; s != NULL; s = s->link)
        if (s->no == no)
            return s;
    return NULL;
}

static bool
is_acked(const weiri_jsub *s, uint64_t no)
{
    if (no < s->low)
        return true;
    uint64_t i = no - s->bits_base;
    return i / 64 < s->words && (s->bits[i / 64] >> (i % 64) & 1);
}

/* Every entry of t below min_low is needed by nobody: drop them. */
static void
topic_compact(weiri_journal *j, dtopic *t)
{
    uint64_t min = topic_end(t);
    for (weiri_jsub *s = j->subs; s != NULL; s = s->link)
        if (s->t == t && s->low < min)
            min = s->low;
    size_t gone = (size_t)(min - t->base);
    /* Moves cost the rest: wait until half can go. */
    if (gone == 0 || (gone < t->n / 2 && gone < t->n))
        return;
    memmove(t->e, t->e + gone, (t->n - gone) * sizeof(*t->e));
    t->n -= gone;
    t->base += gone;
}

/* Move low past what is acknowledged (or dead), and drop spent words. */
static void
advance_low(weiri_jsub *s)
{
    dtopic *t = s->t;
    while (s->low < topic_end(t) &&
           (is_acked(s, s->low) || entry_at(t, s->low)->dead))
        s->low++;
    size_t spent = (size_t)((s->low - s->bits_base) / 64);
    if (spent > 0 && spent <= s->words) {
        memmove(s->bits, s->bits + spent,
                (s->words - spent) * sizeof(*s->bits));
        memset(s->bits + s->words - spent, 0, spent * sizeof(*s->bits));
        s->bits_base += 64 * (uint64_t)spent;
    } else if (spent > s->words) {
        memset(s->bits, 0, s->words * sizeof(*s->bits));
        s->bits_base = s->low - s->low % 64;
    }
    if (s->next < s->low)
        s->next = s->low;
}

static int
mark_acked(weiri_jsub *s, uint64_t no)
{
    if (no < s->low)
        return 0;
    uint64_t i = no - s->bits_base;
    if (i / 64 >= s->words) {
        size_t words = s->words;
        uint64_t *b = weiri_grow(s->bits, &words, i / 64 + 1, sizeof(*b), 4);
        if (b == NULL)
            return WEIR_ENOMEM;
        memset(b + s->words, 0, (words - s->words) * sizeof(*b));
        s->bits = b;
        s->words = words;
    }
    s->bits[i / 64] |= (uint64_t)1 << (i % 64);
    advance_low(s);
    return 0;
}

/* The oldest segment any subscription still needs; mu held. */
static uint64_t
segment_needed(weiri_journal *j)
{
    uint64_t keep = j->tail_seg;
    for (weiri_jsub *s = j->subs; s != NULL; s = s->link)
        if (s->low < topic_end(s->t) && entry_at(s->t, s->low)->seg < keep)
            keep = entry_at(s->t, s->low)->seg;
    if (j->nlaters > 0 && j->laters[0].seg < keep)
        keep = j->laters[0].seg;
    return keep;
}

/* Delete the segments nobody needs any more (mu not held). */
static int
trim(weiri_journal *j)
{
    pthread_mutex_lock(&j->mu);
    uint64_t keep = segment_needed(j);
    bool more = keep > j->kept;
    pthread_mutex_unlock(&j->mu);
    if (!more)
        return 0;
    int rc = weiri_log_trim(j->log, keep);
    if (rc == 0) {
        pthread_mutex_lock(&j->mu);
        if (keep > j->kept)
            j->kept = keep;
        pthread_mutex_unlock(&j->mu);
    }
    return rc;
}

static weiri_jsub *
sub_new(weiri_journal *j, dtopic *t, const char *name, size_t nlen,
        uint32_t no, uint64_t low)
{
    weiri_jsub *s = weiri_calloc(1, sizeof(*s));
    if (s == NULL || (s->name = weiri_malloc(nlen + 1)) == NULL) {
        weiri_free(s);
        return NULL;
    }
    memcpy(s->name, name, nlen);
    s->name[nlen] = '\0';
    s->j = j;
    s->t = t;
    s->no = no;
    s->low = s->next = s->handed = low;
    s->bits_base = low - low % 64;
    s->link = j->subs;
    j->subs = s;
    t->subs++;
    if (no >= j->next_no)
        j->next_no = no + 1;
    return s;
}

static void
sub_free(weiri_journal *j, weiri_jsub *s)
{
    for (weiri_jsub **p = &j->subs; *p != NULL; p = &(*p)->link)
        if (*p == s) {
            *p = s->link;
            break;
        }
    s->t->subs--;
    if (s->acks != NULL)
        j->acks_waiting--;
    weiri_free(s->acks);
    weiri_free(s->bits);
    weiri_free(s->name);
    weiri_free(s);
}

/*
 * A LATER written at (seg, off), numbered next: its number, or 0 for
 * want of memory.  mu held (or the journal not yet shared).
 */
/* Room for one more LATER: 0 or WEIR_ENOMEM.  mu held. */
static int
later_room(weiri_journal *j)
{
    later *l = weiri_grow(j->laters, &j->later_cap, j->nlaters + 1,
                          sizeof(*l), 16);
    if (l == NULL)
        return WEIR_ENOMEM;
    j->laters = l;
    return 0;
}

static uint64_t
later_add(weiri_journal *j, uint64_t seg, uint64_t off, uint32_t size)
{
    if (later_room(j) != 0)
        return 0;
    j->laters[j->nlaters++] = (later){ seg, off, size, ++j->next_later };
    return j->next_later;
}

/*
 * Whether the LATER at (seg, off) is not yet due; *at: its index.  The
 * list is in log order: a binary search.
 */
static bool
later_find(const weiri_journal *j, uint64_t seg, uint64_t off, size_t *at)
{
    size_t lo = 0, hi = j->nlaters;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const later *l = &j->laters[mid];
        if (l->seg < seg || (l->seg == seg && l->off < off))
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return lo < j->nlaters && j->laters[lo].seg == seg &&
           j->laters[lo].off == off;
}

/* The LATER numbered no, as later_find.  Numbers grow in log order. */
static bool
later_find_no(const weiri_journal *j, uint64_t no, size_t *at)
{
    size_t lo = 0, hi = j->nlaters;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (j->laters[mid].no < no)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return lo < j->nlaters && j->laters[lo].no == no;
}

static void
later_drop(weiri_journal *j, size_t at)
{
    memmove(j->laters + at, j->laters + at + 1,
            (j->nlaters - at - 1) * sizeof(*j->laters));
    j->nlaters--;
}

/* --- recovery ----------------------------------------------------------- */

/*
 * The BATCH record at (seg, off) of t (NULL: no durable subscription),
 * with left more of its batch after it: its batch's messages count only
 * once the last is read, in one piece after the others.  A batch the
 * log ends in the middle of (a crash cut the rest off) was never
 * accepted: none of it is handed out.
 */
static int
gather(weiri_journal *j, dtopic *t, uint64_t seg, uint64_t off,
       uint32_t size, uint32_t left)
{
    if (j->ngathered > 0 &&
        (seg != j->gathered_seg || left + 1 != j->gathered_left))
        j->ngathered = 0; /* the one before was cut short */
    gathered *g = weiri_grow(j->gathered, &j->gathered_cap,
                             j->ngathered + 1, sizeof(*g), 16);
    if (g == NULL)
        return WEIR_ENOMEM;
    j->gathered = g;
    j->gathered[j->ngathered++] = (gathered){ t, seg, off, size };
    j->gathered_seg = seg;
    j->gathered_left = left;
    if (left > 0)
        return 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < j->ngathered; i++) {
        const gathered *g = &j->gathered[i];
        if (g->t != NULL && g->t->subs > 0)
            rc = topic_add(g->t, g->seg, g->off, g->size, true);
    }
    j->ngathered = 0;
    return rc;
}

static int
visit(void *ctx, uint64_t seg, uint64_t off, unsigned type,
      const unsigned char *b, size_t len)
{
    weiri_journal *j = ctx;
    uint32_t size = (uint32_t)(len + WEIRI_LOG_RECORD_HEADER);
    /* A batch's records come one after another: any other ends it. */
    if (type != T_BATCH)
        j->ngathered = 0;
    if (fixed_of(type) != 0) {
        weiri_jmsg m;
        uint64_t pos[2];
        if (view_msg(type, b, len, &m, pos) != 0)
            return WEIR_ECORRUPT;
        if (type == T_LATER)
            return later_add(j, seg, off, size) != 0 ? 0 : WEIR_ENOMEM;
        if (m.id > j->max_id)
            j->max_id = m.id;
        /* A delayed message come due: its LATER is done with. */
        size_t at;
        if (type == T_DUE && later_find(j, pos[0], pos[1], &at))
            later_drop(j, at);
        dtopic *t = topic_find(j, m.topic, m.topic_len);
        if (type == T_BATCH)
            return gather(j, t, seg, off, size, (uint32_t)pos[0]);
        if (t == NULL || t->subs == 0)
            return 0;
        return topic_add(t, seg, off, size, true);
    }
    if (type == T_SUB) {
        if (len < SUB_FIXED)
            return WEIR_ECORRUPT;
        uint32_t no = weiri_get32(b);
        uint64_t fseg = weiri_get64(b + 4), foff = weiri_get64(b + 12);
        size_t tlen = weiri_get16(b + 20), nlen = weiri_get16(b + 22);
        if (SUB_FIXED + tlen + nlen > len)
            return WEIR_ECORRUPT;
        weiri_jsub *s = sub_by_no(j, no);
        if (s == NULL) {
            dtopic *t = topic_make(j, (const char *)b + SUB_FIXED, tlen);
            if (t == NULL)
                return WEIR_ENOMEM;
            /* Segment 0: made by an attach, its messages follow it. */
            uint64_t low = fseg == 0 ? topic_end(t)
                                     : topic_lower_bound(t, fseg, foff);
            s = sub_new(j, t, (const char *)b + SUB_FIXED + tlen, nlen, no,
                        low);
            return s != NULL ? 0 : WEIR_ENOMEM;
        }
        if (fseg == 0)
            return 0;
        /* A later head: everything before its position is done. */
        uint64_t low = topic_lower_bound(s->t, fseg, foff);
        while (s->low < low) {
            int rc = mark_acked(s, s->low);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (type == T_ACK) {
        if (len < ACK_FIXED || (len - 4) % ACK_PAIR != 0)
            return WEIR_ECORRUPT;
        weiri_jsub *s = sub_by_no(j, weiri_get32(b));
        for (size_t at = 4; s != NULL && at < len; at += ACK_PAIR) {
            uint64_t aseg = weiri_get64(b + at);
            uint64_t aoff = weiri_get64(b + at + 8);
            uint64_t no = topic_lower_bound(s->t, aseg, aoff);
            if (no < topic_end(s->t) && entry_at(s->t, no)->seg == aseg &&
                entry_at(s->t, no)->off == aoff) {
                int rc = mark_acked(s, no);
                if (rc != 0)
                    return rc;
            }
        }
        return 0;
    }
    if (type == T_FORGET) {
        if (len < 4)
            return WEIR_ECORRUPT;
        weiri_jsub *s = sub_by_no(j, weiri_get32(b));
        if (s != NULL)
            sub_free(j, s);
        return 0;
    }
    return WEIR_ECORRUPT;
}

/*
 * The SUB record of s at the head of segment seg: from its oldest entry
 * not acknowledged, or from the segment's start if there is none.
 */
static int
head_sub(weiri_jsub *s, uint64_t seg, weiri_log *log)
{
    unsigned char fixed[SUB_FIXED];
    uint64_t fseg = seg, foff = 0;
    if (s->low < topic_end(s->t)) {
        fseg = entry_at(s->t, s->low)->seg;
        foff = entry_at(s->t, s->low)->off;
    }
    weiri_put32(fixed, s->no);
    weiri_put64(fixed + 4, fseg);
    weiri_put64(fixed + 12, foff);
    weiri_put16(fixed + 20, (unsigned)s->t->len);
    weiri_put16(fixed + 22, (unsigned)strlen(s->name));
    weiri_log_part parts[3] = { { fixed, sizeof(fixed) },
                                { s->t->name, s->t->len },
                                { s->name, strlen(s->name) } };
    return weiri_log_put_head(log, T_SUB, parts, 3);
}

/* Each new segment begins with every subscription's SUB (log lock held). */
static int
head(void *ctx, weiri_log *log, uint64_t seg)
{
    weiri_journal *j = ctx;
    pthread_mutex_lock(&j->mu);
    j->tail_seg = seg;
    int rc = 0;
    for (weiri_jsub *s = j->subs; rc == 0 && s != NULL; s = s->link)
        rc = s->forgot ? 0 : head_sub(s, seg, log);
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int
weiri_journal_open(weiri_journal **out, const weiri_log_opts *o)
{
    weiri_journal *j = weiri_calloc(1, sizeof(*j));
    if (j == NULL)
        return WEIR_ENOMEM;
    if (weiri_event_init(&j->fresh_ev) != 0) {
        weiri_free(j);
        return WEIR_ENOMEM;
    }
    pthread_mutex_init(&j->mu, NULL);
    j->ready_written = o->sync == WEIR_SYNC_NONE;
    int rc = weiri_log_open(&j->log, o, visit, head, j);
    if (rc != 0) {
        j->log = NULL;
        weiri_journal_close(j);
        return rc;
    }
    j->tail_seg = weiri_log_segment(j->log);
    /* A batch the log ended in was cut short: never accepted. */
    weiri_free(j->gathered);
    j->gathered = NULL;
    j->ngathered = j->gathered_cap = 0;
    for (dtopic *t = j->topics; t != NULL; t = t->next)
        topic_compact(j, t);
    /* Everything not acknowledged at open was accepted before it. */
    for (weiri_jsub *s = j->subs; s != NULL; s = s->link)
        s->handed = topic_end(s->t);
    *out = j;
    /* A segment that cannot be deleted now is tried again at an ack. */
    (void)trim(j);
    return 0;
}

uint64_t
weiri_journal_max_id(weiri_journal *j)
{
    return j->max_id;
}

bool
weiri_journal_paced(const weiri_journal *j)
{
    return !j->ready_written;
}

/* --- publish, attach ---------------------------------------------------- */

typedef struct placing {
    weiri_journal *j;
    const char *topic;
    size_t topic_len;
    uint32_t size;
    dtopic *t;         /* indexed under t, as entry no */
    uint64_t no;
    const char *name;  /* attach: the subscription to make */
    size_t name_len;
    uint32_t sub_no;
    weiri_jsub *made;
    int rc;
    bool now;          /* ready once written: settled when placed */
    bool rolled;       /* now: a segment began since the last look */
} placing;

/* Whether a segment began since the last look (mu held). */
static bool
rolled(weiri_journal *j)
{
    bool r = j->tail_seg != j->trim_seen;
    j->trim_seen = j->tail_seg;
    return r;
}

/*
 * The end of a publish, mu not held: wake the feeders if an entry became
 * theirs (held), and delete what nobody needs if a segment began or a
 * LATER went (trim).  After the unlock: a feeder woken under the lock
 * would only wait for it again, one more sleep and wake per message.
 */
static void
wake_and_trim(weiri_journal *j, bool held, bool trim_now)
{
    if (held)
        weiri_event_notify(&j->fresh_ev, UINT32_MAX);
    if (trim_now)
        (void)trim(j); /* what cannot go now goes at a later try */
}

/*
 * Room for p's entry in its topic's index, made before its record is
 * written (under the log's lock, which every topic_add of a publish is
 * under too): placed_msg then cannot fail, so a message the journal
 * wrote is never one it refused.
 */
static int
prepare_msg(void *arg)
{
    placing *p = arg;
    pthread_mutex_lock(&p->j->mu);
    dtopic *t = topic_find(p->j, p->topic, p->topic_len);
    int rc = t != NULL && t->subs > 0 ? topic_reserve(t, 1) : 0;
    pthread_mutex_unlock(&p->j->mu);
    return rc;
}

static void
placed_msg(void *arg, uint64_t seg, uint64_t off)
{
    placing *p = arg;
    weiri_journal *j = p->j;
    pthread_mutex_lock(&j->mu);
    dtopic *t = topic_find(j, p->topic, p->topic_len);
    if (t != NULL && t->subs > 0) {
        p->rc = topic_add(t, seg, off, p->size, p->now);
        if (p->rc == 0) {
            p->t = t;
            p->no = topic_end(t) - 1;
        }
    }
    /*
     * Written already (the log calls this after its write), and no sync
     * to wait for: ready now, in the one lock a publish then takes.
     */
    if (p->now) {
        if (p->t != NULL)
            atomic_fetch_add(&j->fresh, 1);
        p->rolled = rolled(j);
    }
    pthread_mutex_unlock(&j->mu);
}

/*
 * The fixed part of m's record of type into fixed: its length.  a, b: a
 * LATER's due time (a), a DUE's LATER position (a, b), or how many
 * records of its batch follow a BATCH (a).
 */
static size_t
put_fixed(unsigned char *fixed, unsigned type, const weiri_jpub *m,
          uint64_t a, uint64_t b)
{
    weiri_put64(fixed, m->id);
    weiri_put64(fixed + 8, (uint64_t)m->ts);
    weiri_put16(fixed + 16, (unsigned)m->topic_len);
    weiri_put16(fixed + 18, m->key != NULL ? (unsigned)m->key_len : NO_KEY);
    if (type == T_DEAD) {
        weiri_put32(fixed + 20, m->attempts);
        weiri_put32(fixed + 24, (uint32_t)m->error);
        weiri_put16(fixed + 28, (unsigned)m->origin_len);
    } else if (type == T_LATER) {
        weiri_put64(fixed + 20, a);
    } else if (type == T_DUE) {
        weiri_put64(fixed + 20, a);
        weiri_put64(fixed + 28, b);
    } else if (type == T_BATCH) {
        weiri_put32(fixed + 20, (uint32_t)a);
    }
    return fixed_of(type);
}

/*
 * Add the pairs of b (an ACK body of len bytes, its sub number first)
 * to what s has waiting for the next publish to carry; *kick set if its
 * feeder must be woken (after mu) to write them in time.  false: no
 * memory (b is then the caller's to write).  mu held.
 */
static bool
acks_hold(weiri_journal *j, weiri_jsub *s, const unsigned char *b,
          size_t len, bool *kick)
{
    size_t add = s->acks == NULL ? len : len - 4;
    unsigned char *a = weiri_grow(s->acks, &s->acks_cap, s->acks_len + add,
                                  1, 1024);
    if (a == NULL)
        return false;
    s->acks = a;
    if (s->acks_len == 0) {
        j->acks_waiting++;
        s->acks_since = weiri_now_ns();
        /* Its feeder writes them if no publish does: it must know. */
        if (s->idle) {
            atomic_fetch_add(&j->fresh, 1);
            *kick = true;
        }
    }
    memcpy(s->acks + s->acks_len, s->acks_len == 0 ? b : b + 4, add);
    s->acks_len += add;
    return true;
}

/* Take s's waiting acks (an ACK body, *len bytes; NULL if none).  mu held. */
static unsigned char *
acks_take(weiri_journal *j, weiri_jsub *s, size_t *len)
{
    unsigned char *a = s->acks_len > 0 ? s->acks : NULL;
    *len = s->acks_len;
    if (a != NULL) {
        j->acks_waiting--;
        s->acks = NULL;
        s->acks_len = s->acks_cap = 0;
    }
    return a;
}

/* Write an ACK body now, without a sync; frees it.  0 or an error. */
static int
acks_write(weiri_journal *j, unsigned char *a, size_t len)
{
    weiri_log_part part = { a, len };
    int rc = a != NULL ? weiri_log_note(j->log, T_ACK, &part, 1) : 0;
    weiri_free(a);
    return rc;
}

/*
 * More than this waiting for one subscription is written at once (under
 * NONE, where no publish carries them, the smaller); and so is what
 * waited this long with no publish to carry it.
 */
enum { ACKS_HOLD_MAX = 64 * 1024, ACKS_HOLD_NONE = 4 * 1024 };
#define ACKS_LINGER_NS (10 * WEIR_MSEC)

/* The most subscriptions whose waiting acks one publish carries. */
enum { CARRY_MAX = 8 };

/* Acks a publish's write carries before its own records. */
typedef struct carry {
    unsigned char *acks[CARRY_MAX];
    weiri_log_part parts[CARRY_MAX];
    size_t n, skip;
    weiri_log_prepare prepare;     /* the publish's own, and its arg */
    weiri_log_placed placed;
    void *arg;
} carry;

static int
prepare_carry(void *arg)
{
    carry *c = arg;
    return c->prepare != NULL ? c->prepare(c->arg) : 0;
}

/* The ACK records come first: not the publish's to place. */
static void
placed_carry(void *arg, uint64_t seg, uint64_t off)
{
    carry *c = arg;
    if (c->skip > 0)
        c->skip--;
    else
        c->placed(c->arg, seg, off);
}

/*
 * weiri_log_append_group of the n records of recs, with the acks that
 * wait (see weiri_journal_ack_many) written first in the same write:
 * no write of their own, and synced with the publish.  A publish the log
 * refuses still gets its acks written, alone.
 */
static int
append_carrying(weiri_journal *j, const weiri_log_rec *recs, size_t n,
                bool bounded, weiri_log_prepare prepare,
                weiri_log_placed placed, void *arg)
{
    carry c = { .prepare = prepare, .placed = placed, .arg = arg };
    /*
     * Only where a publish syncs: under NONE its write gains nothing by
     * them, and publishers taking them contend for mu (4 publishers:
     * 40% of the rate).  Relaxed: a hint; acks a look misses wait for
     * the next publish.
     */
    if (!j->ready_written &&
        atomic_load_explicit(&j->acks_waiting, memory_order_relaxed) > 0) {
        pthread_mutex_lock(&j->mu);
        for (weiri_jsub *s = j->subs; s != NULL && c.n < CARRY_MAX;
             s = s->link) {
            size_t len;
            unsigned char *a = acks_take(j, s, &len);
            if (a != NULL) {
                c.acks[c.n] = a;
                c.parts[c.n++] = (weiri_log_part){ a, len };
            }
        }
        pthread_mutex_unlock(&j->mu);
    }
    if (c.n == 0)
        return weiri_log_append_group(j->log, recs, n, bounded, prepare,
                                      placed, arg);
    weiri_log_rec one[CARRY_MAX + 1];
    weiri_log_rec *all = n == 1 ? one : weiri_calloc(c.n + n, sizeof(*all));
    int rc = WEIR_ENOMEM;
    if (all != NULL) {
        for (size_t i = 0; i < c.n; i++)
            all[i] = (weiri_log_rec){ T_ACK, &c.parts[i], 1 };
        memcpy(all + c.n, recs, n * sizeof(*recs));
        c.skip = c.n;
        rc = weiri_log_append_group(j->log, all, c.n + n, bounded,
                                    prepare_carry, placed_carry, &c);
    }
    if (all != one)
        weiri_free(all);
    for (size_t i = 0; i < c.n; i++) {
        if (rc != 0)
            (void)weiri_log_note(j->log, T_ACK, &c.parts[i], 1);
        weiri_free(c.acks[i]);
    }
    return rc;
}

/*
 * Write m as a record of type (fields a, b: see put_fixed), calling
 * placed with p where it goes, past max_bytes if always.  Returns as
 * weiri_log_append, and WEIR_EINVAL for fields too long.
 */
static int
write_msg(weiri_journal *j, unsigned type, const weiri_jpub *m, uint64_t a,
          uint64_t b, bool always, weiri_log_prepare prepare,
          weiri_log_placed placed, placing *p)
{
    size_t klen = m->key != NULL ? m->key_len : 0;
    size_t olen = type == T_DEAD ? m->origin_len : 0;
    *p = (placing){ .j = j, .topic = m->topic, .topic_len = m->topic_len,
                    .now = j->ready_written && type != T_LATER };
    if (m->topic_len >= NO_KEY || klen >= NO_KEY || olen >= NO_KEY)
        return WEIR_EINVAL;
    unsigned char fixed[DUE_FIXED];
    size_t flen = put_fixed(fixed, type, m, a, b);
    weiri_log_part parts[5] = { { fixed, flen },
                                { m->topic, m->topic_len },
                                { m->origin, olen },
                                { m->key, klen },
                                { m->data, m->len } };
    size_t body = flen + m->topic_len + olen + klen + m->len;
    if (body > WEIRI_LOG_BODY_MAX)
        return WEIR_EINVAL;
    p->size = (uint32_t)(WEIRI_LOG_RECORD_HEADER + body);
    weiri_log_rec rec = { type, parts, 5 };
    return append_carrying(j, &rec, 1, !always, prepare, placed, p);
}

/*
 * After the append of p's record (rc): its entry ready, or dead if the
 * append failed, for the feeders.  Whether a durable subscription holds
 * it.  mu held.
 */
static bool
settle(weiri_journal *j, placing *p, int rc)
{
    /* Its last subscription may have been forgotten meanwhile. */
    if (p->t != NULL && (p->no < p->t->base || p->no >= topic_end(p->t)))
        p->t = NULL;
    if (p->t == NULL)
        return false;
    entry *e = entry_at(p->t, p->no);
    e->ready = true;
    e->dead = rc != 0;
    for (weiri_jsub *s = j->subs; e->dead && s != NULL; s = s->link)
        if (s->t == p->t && s->low == p->no)
            advance_low(s);
    atomic_fetch_add(&j->fresh, 1);
    return true;
}

/* The end of a publish, mu held on entry: see wake_and_trim. */
static void
published(weiri_journal *j, bool held, bool freed)
{
    bool rolled_now = rolled(j);
    pthread_mutex_unlock(&j->mu);
    wake_and_trim(j, held, rolled_now || freed);
}

int
weiri_journal_publish(weiri_journal *j, const weiri_jpub *m, bool *held)
{
    if (m->origin != NULL && m->later != 0)
        return WEIR_EINVAL;
    unsigned type = m->origin != NULL ? T_DEAD
                    : m->later != 0   ? T_DUE
                                      : T_MSG;
    later l = { 0 };
    size_t at;
    if (m->later != 0) {
        pthread_mutex_lock(&j->mu);
        bool known = later_find_no(j, m->later, &at);
        if (known)
            l = j->laters[at];
        pthread_mutex_unlock(&j->mu);
        if (!known)
            return WEIR_EINVAL;
    }
    /* A DUE frees its LATER's space: never refused at the bound. */
    placing p;
    int rc = write_msg(j, type, m, l.seg, l.off, m->later != 0, prepare_msg,
                       placed_msg, &p);
    /* Settled as it was placed: no second lock (a DUE has its LATER). */
    if (p.now && rc == 0 && m->later == 0) {
        wake_and_trim(j, p.t != NULL, p.rolled);
        if (held != NULL)
            *held = p.t != NULL;
        return p.rc;
    }
    pthread_mutex_lock(&j->mu);
    bool holds = settle(j, &p, rc);
    /* Done with, its LATER may hold the oldest segment. */
    bool freed = rc == 0 && m->later != 0 && later_find_no(j, m->later, &at);
    if (freed)
        later_drop(j, at);
    published(j, holds, freed || p.rolled);
    if (held != NULL)
        *held = holds;
    return rc == 0 ? p.rc : rc;
}

/* weiri_journal_publish_group's records, as the log places them. */
typedef struct placing_group {
    placing *p;
    size_t n, next;
} placing_group;

/* prepare_msg for a group: room for all of it in each of its topics. */
static int
prepare_group(void *arg)
{
    placing_group *g = arg;
    weiri_journal *j = g->p[0].j;
    int rc = 0;
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; rc == 0 && i < g->n; i++) {
        dtopic *t = topic_find(j, g->p[i].topic, g->p[i].topic_len);
        if (t != NULL && t->subs > 0)
            rc = topic_reserve(t, g->n);
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

static void
placed_group(void *arg, uint64_t seg, uint64_t off)
{
    placing_group *g = arg;
    placed_msg(&g->p[g->next++], seg, off);
}

int
weiri_journal_publish_group(weiri_journal *j, const weiri_jpub *ms,
                            size_t n, bool *held)
{
    if (n == 0 || n > UINT32_MAX)
        return WEIR_EINVAL;
    /* Per message: its fixed part, parts, record and placing. */
    typedef struct one {
        unsigned char fixed[BATCH_FIXED];
        weiri_log_part parts[4];
        weiri_log_rec rec;
        placing p;
    } one;
    one *o = weiri_calloc(n, sizeof(*o));
    weiri_log_rec *recs = weiri_calloc(n, sizeof(*recs));
    placing *ps = weiri_calloc(n, sizeof(*ps));
    int rc = o == NULL || recs == NULL || ps == NULL ? WEIR_ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const weiri_jpub *m = &ms[i];
        size_t klen = m->key != NULL ? m->key_len : 0;
        if (m->origin != NULL || m->later != 0 || m->topic_len >= NO_KEY ||
            klen >= NO_KEY) {
            rc = WEIR_EINVAL;
            break;
        }
        /* Each says how many follow it: a reopen keeps only a whole one. */
        size_t flen = put_fixed(o[i].fixed, T_BATCH, m, n - 1 - i, 0);
        o[i].parts[0] = (weiri_log_part){ o[i].fixed, flen };
        o[i].parts[1] = (weiri_log_part){ m->topic, m->topic_len };
        o[i].parts[2] = (weiri_log_part){ m->key, klen };
        o[i].parts[3] = (weiri_log_part){ m->data, m->len };
        recs[i] = (weiri_log_rec){ T_BATCH, o[i].parts, 4 };
        size_t body = flen + m->topic_len + klen + m->len;
        if (body > WEIRI_LOG_BODY_MAX)
            rc = WEIR_EINVAL;
        ps[i] = (placing){ .j = j, .topic = m->topic,
                           .topic_len = m->topic_len,
                           .size = (uint32_t)(WEIRI_LOG_RECORD_HEADER +
                                              body) };
    }
    placing_group g = { ps, n, 0 };
    if (rc == 0)
        rc = append_carrying(j, recs, n, true, prepare_group, placed_group,
                             &g);
    bool any = false;
    if (ps != NULL) {
        pthread_mutex_lock(&j->mu);
        for (size_t i = 0; i < g.next; i++) {
            bool h = settle(j, &ps[i], rc);
            any |= h;
            if (held != NULL)
                held[i] = h;
            if (rc == 0 && ps[i].rc != 0)
                rc = ps[i].rc;
        }
        published(j, any, false);
    }
    weiri_free(ps);
    weiri_free(recs);
    weiri_free(o);
    return rc;
}

/* Room for one more LATER, as prepare_msg for a message. */
static int
prepare_later(void *arg)
{
    placing *p = arg;
    pthread_mutex_lock(&p->j->mu);
    int rc = later_room(p->j);
    pthread_mutex_unlock(&p->j->mu);
    return rc;
}

static void
placed_later(void *arg, uint64_t seg, uint64_t off)
{
    placing *p = arg;
    pthread_mutex_lock(&p->j->mu);
    p->no = later_add(p->j, seg, off, p->size);
    pthread_mutex_unlock(&p->j->mu);
}

int
weiri_journal_later(weiri_journal *j, const weiri_jpub *m, int64_t due,
                    uint64_t *no)
{
    if (m->origin != NULL || m->later != 0)
        return WEIR_EINVAL;
    /* Kept as wall-clock time: a monotonic one means nothing next boot. */
    int64_t now = weiri_now_ns(), wall = weiri_wall_ns();
    int64_t left = due > now ? due - now : 0;
    int64_t wall_due = left < INT64_MAX - wall ? wall + left : INT64_MAX;
    placing p;
    int rc = write_msg(j, T_LATER, m, (uint64_t)wall_due, 0, false,
                       prepare_later, placed_later, &p);
    size_t at;
    pthread_mutex_lock(&j->mu);
    if (rc != 0 && p.no != 0 && later_find_no(j, p.no, &at))
        later_drop(j, at);
    pthread_mutex_unlock(&j->mu);
    if (rc == 0 && p.no == 0)
        rc = WEIR_ENOMEM;
    *no = rc == 0 ? p.no : 0;
    return rc;
}

int
weiri_journal_each_later(weiri_journal *j, weiri_later_fn fn, void *ctx)
{
    /*
     * A copy: fn puts each on a timer, which may fire it, and its DUE
     * drop it from the list, before the next.  One not yet dropped keeps
     * its segment (and those after it), so each can still be read.
     */
    pthread_mutex_lock(&j->mu);
    size_t n = j->nlaters;
    later *all = n > 0 ? weiri_malloc(n * sizeof(*all)) : NULL;
    if (all != NULL)
        memcpy(all, j->laters, n * sizeof(*all));
    pthread_mutex_unlock(&j->mu);
    if (n > 0 && all == NULL)
        return WEIR_ENOMEM;
    weiri_jmsg m = { 0 };
    int rc = 0;
    int64_t now = weiri_now_ns(), wall = weiri_wall_ns();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        later l = all[i];
        unsigned char *b = weiri_grow(m.buf, &m.cap, l.size, 1, l.size);
        if (b == NULL) {
            rc = WEIR_ENOMEM;
            break;
        }
        m.buf = b;
        rc = weiri_log_read(j->log, l.seg, l.off, l.size, m.buf);
        if (rc == 0)
            rc = parse_msg(&m, m.buf, l.size, true);
        if (rc != 0)
            break;
        int64_t left = m.due_wall > wall ? m.due_wall - wall : 0;
        int64_t due = left < WEIRI_NO_DEADLINE - now ? now + left
                                                      : WEIRI_NO_DEADLINE;
        rc = fn(ctx, l.no, due, &m);
    }
    weiri_free(m.buf);
    weiri_free(all);
    return rc;
}

static void
placed_sub(void *arg, uint64_t seg, uint64_t off)
{
    placing *p = arg;
    (void)seg;
    (void)off;
    pthread_mutex_lock(&p->j->mu);
    dtopic *t = topic_make(p->j, p->topic, p->topic_len);
    /* Its messages are those written after this record. */
    p->made = t == NULL ? NULL
                        : sub_new(p->j, t, p->name, p->name_len, p->sub_no,
                                  topic_end(t));
    if (p->made != NULL)
        p->made->attached = true;
    pthread_mutex_unlock(&p->j->mu);
}

int
weiri_journal_attach(weiri_journal *j, const char *topic, const char *name,
                     weiri_jsub **out)
{
    size_t tlen = strlen(topic), nlen = strlen(name);
    if (tlen >= NO_KEY || nlen >= NO_KEY)
        return WEIR_EINVAL;
    pthread_mutex_lock(&j->mu);
    weiri_jsub *s = sub_find(j, topic, tlen, name, nlen);
    int rc = 0;
    if (s != NULL && s->attached) {
        rc = WEIR_EEXIST;
    } else if (s != NULL && s->forgetting) {
        rc = WEIR_EBUSY;
    } else if (s != NULL) {
        s->attached = true;
        s->stopped = false;
        s->next = s->low;
    }
    /* Its number is taken now: no two SUB records share one. */
    uint32_t no = rc == 0 && s == NULL ? j->next_no++ : 0;
    pthread_mutex_unlock(&j->mu);
    if (rc != 0)
        return rc;
    if (s != NULL) {
        *out = s;
        return 0;
    }
    unsigned char fixed[SUB_FIXED];
    weiri_put32(fixed, no);
    weiri_put64(fixed + 4, 0); /* from its own place: see placed_sub */
    weiri_put64(fixed + 12, 0);
    weiri_put16(fixed + 20, (unsigned)tlen);
    weiri_put16(fixed + 22, (unsigned)nlen);
    weiri_log_part parts[3] = { { fixed, sizeof(fixed) }, { topic, tlen },
                                { name, nlen } };
    placing p = { .j = j, .topic = topic, .topic_len = tlen, .name = name,
                  .name_len = nlen, .sub_no = no };
    rc = weiri_log_append_always(j->log, T_SUB, parts, 3, placed_sub, &p);
    if (rc == 0 && p.made == NULL)
        rc = WEIR_ENOMEM;
    if (rc != 0 && p.made != NULL) {
        pthread_mutex_lock(&j->mu);
        sub_free(j, p.made);
        pthread_mutex_unlock(&j->mu);
        return rc;
    }
    *out = p.made;
    return rc;
}

/* --- handing out, acknowledging ------------------------------------------ */

/*
 * Where a read for entry no of t (not in m's window) ends: past the
 * entries ready after it in its segment, up to WEIRI_JOURNAL_WINDOW
 * bytes in all, so that a subscription catching up reads its messages
 * many at a time.  Entries not ready (their bytes may not be written
 * yet) or dead (maybe never written) end it.  mu held.
 */
static uint64_t
window_end(dtopic *t, uint64_t no)
{
    const entry *e = entry_at(t, no);
    uint64_t end = e->off + e->size;
    for (uint64_t k = no + 1; k < topic_end(t); k++) {
        const entry *f = entry_at(t, k);
        if (!f->ready || f->dead || f->seg != e->seg ||
            f->off + f->size - e->off > WEIRI_JOURNAL_WINDOW)
            break;
        end = f->off + f->size;
    }
    return end;
}

typedef struct fresh_look {
    weiri_journal *j;
    uint64_t seen;
} fresh_look;

/* seq_cst: pairs with the add of a publish or a stop (wait_internal.h). */
static long
fresh_moved(void *arg)
{
    const fresh_look *f = arg;
    return atomic_load(&f->j->fresh) != f->seen;
}

static bool
fresh_idle(void *arg)
{
    (void)arg;
    return true; /* unmoved: nothing new, and a mover notifies after */
}

/*
 * Wait until j->fresh moves from seen (read under mu as nothing was
 * ready) or deadline passes: 0 or WEIR_ETIMEDOUT.  Under NONE as a
 * queue's pop waits, a few yields before sleeping, so that while a
 * publisher keeps the feeder busy its publishes seldom need a system
 * call to wake it.  Under EVERY and BATCH at once (patient): each
 * message comes after a sync, and a feeder yielding meanwhile would only
 * hold a CPU when the publisher's sync ends.
 */
static int
wait_fresh(weiri_journal *j, uint64_t seen, int64_t deadline)
{
    fresh_look f = { j, seen };
    int64_t timeout = WEIR_FOREVER;
    if (deadline != WEIRI_NO_DEADLINE) {
        int64_t now = weiri_now_ns();
        if (now >= deadline)
            return WEIR_ETIMEDOUT;
        timeout = deadline - now;
    }
    return weiri_await(&j->fresh_ev, timeout, fresh_moved, fresh_idle, &f,
                       !j->ready_written) > 0
               ? 0
               : WEIR_ETIMEDOUT;
}

int
weiri_journal_next(weiri_jsub *s, int64_t deadline, weiri_jmsg *m)
{
    weiri_journal *j = s->j;
    pthread_mutex_lock(&j->mu);
    s->busy = false;
    for (;;) {
        if (s->stopped) {
            pthread_mutex_unlock(&j->mu);
            return WEIR_ECLOSED;
        }
        dtopic *t = s->t;
        while (s->next < topic_end(t) && entry_at(t, s->next)->ready &&
               (entry_at(t, s->next)->dead || is_acked(s, s->next)))
            s->next++;
        if (s->next < topic_end(t) && entry_at(t, s->next)->ready)
            break;
        uint64_t seen = atomic_load_explicit(&j->fresh,
                                             memory_order_relaxed);
        /*
         * Acks wait for the next publish to carry them; with none
         * ACKS_LINGER_NS after they began to wait, the feeder (waiting
         * with no deadline of its own) writes them, so that a crash
         * after a quiet spell hands out again only what was acked just
         * before.  With none waiting it sleeps, marked idle: the first
         * new ack wakes it (acks_hold).
         */
        bool feeder = deadline == WEIRI_NO_DEADLINE;
        bool linger = feeder && s->acks_len > 0;
        int64_t until = linger ? s->acks_since + ACKS_LINGER_NS : deadline;
        s->idle = feeder && !linger;
        pthread_mutex_unlock(&j->mu);
        if (wait_fresh(j, seen, until) != 0) {
            if (!linger)
                return WEIR_ETIMEDOUT;
            size_t len;
            pthread_mutex_lock(&j->mu);
            unsigned char *a = acks_take(j, s, &len);
            pthread_mutex_unlock(&j->mu);
            (void)acks_write(j, a, len); /* else they come again */
        }
        pthread_mutex_lock(&j->mu);
        s->idle = false;
    }
    entry e = *entry_at(s->t, s->next);
    bool held = m->wlen > 0 && e.seg == m->wseg && e.off >= m->woff &&
                e.off + e.size <= m->woff + m->wlen;
    uint64_t end = held ? 0 : window_end(s->t, s->next);
    s->busy = true;
    m->entry = s->next;
    m->redelivered = s->next < s->handed;
    s->next++;
    if (s->next > s->handed)
        s->handed = s->next;
    pthread_mutex_unlock(&j->mu);
    if (!held) {
        size_t want = (size_t)(end - e.off);
        m->wlen = 0;
        unsigned char *b = weiri_grow(m->buf, &m->cap, want, 1, want);
        if (b == NULL)
            return WEIR_ENOMEM;
        m->buf = b;
        int rc = weiri_log_read(j->log, e.seg, e.off, want, m->buf);
        if (rc != 0)
            return rc;
        m->wseg = e.seg;
        m->woff = e.off;
        m->wlen = want;
    }
    return parse_msg(m, m->buf + (e.off - m->woff), e.size, false);
}

uint64_t
weiri_journal_pending(weiri_jsub *s)
{
    pthread_mutex_lock(&s->j->mu);
    uint64_t n = s->busy;
    for (uint64_t no = s->next; no < topic_end(s->t); no++)
        n += !is_acked(s, no) && !entry_at(s->t, no)->dead;
    pthread_mutex_unlock(&s->j->mu);
    return n;
}

void
weiri_journal_unhand(weiri_jsub *s, uint64_t entry)
{
    pthread_mutex_lock(&s->j->mu);
    if (entry < s->next)
        s->next = entry < s->low ? s->low : entry;
    s->busy = false;
    pthread_mutex_unlock(&s->j->mu);
}

void
weiri_journal_stop(weiri_jsub *s)
{
    pthread_mutex_lock(&s->j->mu);
    s->stopped = true;
    atomic_fetch_add(&s->j->fresh, 1);
    pthread_mutex_unlock(&s->j->mu);
    weiri_event_notify(&s->j->fresh_ev, UINT32_MAX);
}

int
weiri_journal_ack_many(weiri_jsub *s, const uint64_t *nos, size_t n)
{
    weiri_journal *j = s->j;
    unsigned char b[ACK_FIXED + ACK_PAIR * (WEIRI_JOURNAL_ACK_MAX - 1)];
    size_t len = ACK_FIXED - ACK_PAIR;
    int rc = 0;
    if (n > WEIRI_JOURNAL_ACK_MAX)
        return WEIR_EINVAL;
    pthread_mutex_lock(&j->mu);
    uint64_t seg_before = s->low < topic_end(s->t)
                              ? entry_at(s->t, s->low)->seg : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (nos[i] < s->low || nos[i] >= topic_end(s->t))
            continue;
        const entry *e = entry_at(s->t, nos[i]);
        weiri_put64(b + len, e->seg);
        weiri_put64(b + len + 8, e->off);
        len += ACK_PAIR;
        rc = mark_acked(s, nos[i]);
    }
    bool moved = s->low >= topic_end(s->t) ||
                 entry_at(s->t, s->low)->seg != seg_before;
    if (moved)
        topic_compact(j, s->t);
    weiri_put32(b, s->no);
    /*
     * Acks go unsynced, "with the next sync": the next publish writes
     * them with its message (append_carrying), rather than a write of
     * their own under the log's lock that a publish waits behind.
     * Without memory to wait in, or with a lot waiting, now.
     */
    bool any = len > ACK_FIXED - ACK_PAIR, kick = false;
    bool now = any && !acks_hold(j, s, b, len, &kick);
    size_t held = 0;
    size_t most = j->ready_written ? ACKS_HOLD_NONE : ACKS_HOLD_MAX;
    unsigned char *a = s->acks_len > most ? acks_take(j, s, &held) : NULL;
    pthread_mutex_unlock(&j->mu);
    if (kick)
        weiri_event_notify(&j->fresh_ev, UINT32_MAX);
    weiri_log_part part = { b, len };
    int wrc = now ? weiri_log_note(j->log, T_ACK, &part, 1) : 0;
    int hrc = acks_write(j, a, held);
    rc = rc != 0 ? rc : wrc != 0 ? wrc : hrc;
    int trc = moved ? trim(j) : 0;
    return rc != 0 ? rc : trc;
}

int
weiri_journal_write_acks(weiri_jsub *s)
{
    size_t len;
    pthread_mutex_lock(&s->j->mu);
    unsigned char *a = acks_take(s->j, s, &len);
    pthread_mutex_unlock(&s->j->mu);
    return acks_write(s->j, a, len);
}

void
weiri_journal_detach(weiri_jsub *s)
{
    pthread_mutex_lock(&s->j->mu);
    s->attached = false;
    s->stopped = false;
    s->busy = false;
    s->next = s->low;
    pthread_mutex_unlock(&s->j->mu);
    /* Its acks now: a close then a restart hands out nothing again. */
    (void)weiri_journal_write_acks(s);
}

static void
placed_forget(void *arg, uint64_t seg, uint64_t off)
{
    weiri_jsub *s = arg;
    (void)seg;
    (void)off;
    pthread_mutex_lock(&s->j->mu);
    s->forgot = true;
    pthread_mutex_unlock(&s->j->mu);
}

int
weiri_journal_forget(weiri_journal *j, const char *topic, const char *name)
{
    pthread_mutex_lock(&j->mu);
    weiri_jsub *s = sub_find(j, topic, strlen(topic), name, strlen(name));
    int rc = s == NULL ? WEIR_ENOENT
             : s->attached || s->forgetting ? WEIR_EBUSY : 0;
    unsigned char b[4];
    if (rc == 0) {
        weiri_put32(b, s->no);
        s->forgetting = true;
    }
    pthread_mutex_unlock(&j->mu);
    if (rc != 0)
        return rc;
    /* Forgotten in memory only once the journal says so. */
    weiri_log_part part = { b, sizeof(b) };
    rc = weiri_log_append_always(j->log, T_FORGET, &part, 1, placed_forget,
                                 s);
    pthread_mutex_lock(&j->mu);
    if (rc == 0) {
        dtopic *t = s->t;
        sub_free(j, s);
        topic_compact(j, t);
    } else {
        s->forgetting = false;
    }
    pthread_mutex_unlock(&j->mu);
    int trc = rc == 0 ? trim(j) : 0;
    return rc != 0 ? rc : trc;
}

void
weiri_journal_get_stats(weiri_journal *j, weiri_log_stats *out)
{
    weiri_log_get_stats(j->log, out);
}

int
weiri_journal_close(weiri_journal *j)
{
    if (j == NULL)
        return 0;
    int rc = weiri_log_close(j->log);
    while (j->subs != NULL)
        sub_free(j, j->subs);
    while (j->topics != NULL) {
        dtopic *t = j->topics;
        j->topics = t->next;
        weiri_free(t->e);
        weiri_free(t->name);
        weiri_free(t);
    }
    weiri_free(j->laters);
    weiri_free(j->gathered);
    weiri_event_destroy(&j->fresh_ev);
    pthread_mutex_destroy(&j->mu);
    weiri_free(j);
    return rc;
}
