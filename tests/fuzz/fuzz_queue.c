/* SPDX-License-Identifier: MIT */
/*
 * fuzz_queue.c - the blocking queue and both rings driven from one
 * thread by a sequence of calls decoded from the input, each checked
 * against a model: a FIFO array with a capacity (and, for the queue, a
 * closed flag).  On one thread nothing is ever in progress on the other
 * side, so every return code, size and popped item is exactly what the
 * model says; WEIR_FOREVER is used only where the model says the call
 * completes at once, and positive timeouts are a few ns, so an input
 * never waits long.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "weir.h"

enum { MODEL_MAX = 128, BURST_MAX = 20, STEPS_MAX = 512 };

/* A bounded FIFO of item values: the model of all three structures. */
typedef struct model {
    uintptr_t item[MODEL_MAX];
    size_t head, len, cap;
    bool closed;
} model;

static void
model_push(model *m, uintptr_t v)
{
    m->item[(m->head + m->len) % MODEL_MAX] = v;
    m->len++;
}

static uintptr_t
model_pop(model *m)
{
    uintptr_t v = m->item[m->head];
    m->head = (m->head + 1) % MODEL_MAX;
    m->len--;
    return v;
}

/* Item values: a counter, so NULL (0) is stored too. */
static uintptr_t next_value;

/* ---- the blocking queue ------------------------------------------------ */

typedef struct qstate {
    weir_queue *q;
    model m;
} qstate;

enum tmo_kind { T_ZERO, T_NOWAIT, T_SHORT, T_FOREVER, T_BAD, T_KINDS };

/*
 * A timeout for a call, and what the model expects of a call that
 * cannot complete at once with it.  WEIR_FOREVER only when the call
 * can complete (would_wait false); otherwise it becomes WEIR_NOWAIT.
 */
static int64_t
pick_timeout(fz *f, bool would_wait, int *wait_rc)
{
    switch (fz_below(f, T_KINDS)) {
    case T_ZERO:
        *wait_rc = WEIR_EAGAIN;
        return 0;
    case T_SHORT:
        *wait_rc = WEIR_ETIMEDOUT;
        return 1 + fz_u8(f);
    case T_FOREVER:
        if (!would_wait) {
            *wait_rc = 0;
            return WEIR_FOREVER;
        }
        break;
    case T_BAD:
        *wait_rc = WEIR_EINVAL;
        return fz_u8(f) & 1 ? INT64_MIN : -3;
    default:
        break;
    }
    *wait_rc = WEIR_EAGAIN;
    return WEIR_NOWAIT;
}

static void
queue_step(qstate *s, fz *f)
{
    model *m = &s->m;
    void *items[BURST_MAX];
    int wait_rc;
    switch (fz_below(f, 8)) {
    case 0: { /* push */
        bool blocked = m->closed || m->len == m->cap;
        int64_t t = pick_timeout(f, blocked, &wait_rc);
        uintptr_t v = next_value++;
        int rc = weir_queue_push(s->q, (void *)v, t);
        int want = wait_rc == WEIR_EINVAL ? WEIR_EINVAL
                   : m->closed            ? WEIR_ECLOSED
                   : m->len == m->cap     ? wait_rc
                                          : 0;
        FZ_CHECK(rc == want, "push rc %d, model %d", rc, want);
        if (rc == 0)
            model_push(m, v);
        break;
    }
    case 1: { /* pop */
        bool blocked = m->len == 0;
        int64_t t = pick_timeout(f, blocked, &wait_rc);
        void *out = (void *)(uintptr_t)0xdead;
        int rc = weir_queue_pop(s->q, &out, t);
        int want = wait_rc == WEIR_EINVAL ? WEIR_EINVAL
                   : m->len > 0           ? 0
                   : m->closed            ? WEIR_ECLOSED
                                          : wait_rc;
        FZ_CHECK(rc == want, "pop rc %d, model %d", rc, want);
        if (rc == 0) {
            uintptr_t v = model_pop(m);
            FZ_CHECK((uintptr_t)out == v, "popped %ju, model %ju",
                     (uintmax_t)(uintptr_t)out, (uintmax_t)v);
        } else {
            FZ_CHECK((uintptr_t)out == 0xdead, "pop wrote *item on %d", rc);
        }
        break;
    }
    case 2: { /* push_burst */
        size_t n = fz_below(f, BURST_MAX + 1);
        bool blocked = m->closed || m->len == m->cap;
        int64_t t = pick_timeout(f, blocked, &wait_rc);
        if (n == 0 && wait_rc == WEIR_EINVAL) /* n == 0 wins: unsaid */
            break;
        uintptr_t first = next_value;
        for (size_t i = 0; i < n; i++)
            items[i] = (void *)next_value++;
        long rc = weir_queue_push_burst(s->q, items, n, t);
        size_t room = m->cap - m->len;
        long want = n == 0                  ? 0
                    : wait_rc == WEIR_EINVAL ? WEIR_EINVAL
                    : m->closed              ? WEIR_ECLOSED
                    : room == 0              ? wait_rc
                    : (long)(n < room ? n : room);
        FZ_CHECK(rc == want, "push_burst(%zu) rc %ld, model %ld", n, rc,
                 want);
        for (long i = 0; i < rc; i++)
            model_push(m, first + (uintptr_t)i);
        break;
    }
    case 3: { /* pop_burst */
        size_t n = fz_below(f, BURST_MAX + 1);
        bool blocked = m->len == 0;
        int64_t t = pick_timeout(f, blocked, &wait_rc);
        if (n == 0 && wait_rc == WEIR_EINVAL)
            break;
        long rc = weir_queue_pop_burst(s->q, items, n, t);
        long want = n == 0                  ? 0
                    : wait_rc == WEIR_EINVAL ? WEIR_EINVAL
                    : m->len > 0 ? (long)(n < m->len ? n : m->len)
                    : m->closed  ? WEIR_ECLOSED
                                 : wait_rc;
        FZ_CHECK(rc == want, "pop_burst(%zu) rc %ld, model %ld", n, rc,
                 want);
        for (long i = 0; i < rc; i++) {
            uintptr_t v = model_pop(m);
            FZ_CHECK((uintptr_t)items[i] == v, "burst item %ld: %ju, "
                     "model %ju", i, (uintmax_t)(uintptr_t)items[i],
                     (uintmax_t)v);
        }
        break;
    }
    case 4: /* close, idempotent */
        weir_queue_close(s->q);
        m->closed = true;
        break;
    case 5: /* a NULL out pointer is refused and changes nothing */
        FZ_CHECK(weir_queue_pop(s->q, NULL, WEIR_NOWAIT) == WEIR_EINVAL,
                 "pop(NULL item)");
        FZ_CHECK(weir_queue_pop_burst(s->q, NULL, 1, WEIR_NOWAIT) ==
                     WEIR_EINVAL, "pop_burst(NULL items)");
        break;
    case 6: { /* bad queues: refused, nothing allocated */
        weir_queue *bad = (weir_queue *)&s->m;
        size_t c = fz_u8(f) & 1 ? 0 : SIZE_MAX / 8 + 1 + fz_u8(f);
        FZ_CHECK(weir_queue_create(&bad, c) == WEIR_EINVAL && bad == NULL,
                 "create(%zu)", c);
        FZ_CHECK(weir_queue_push(NULL, NULL, 0) == WEIR_EINVAL, "NULL q");
        FZ_CHECK(weir_queue_size(NULL) == 0, "size(NULL)");
        weir_queue_close(NULL);
        break;
    }
    default:
        break;
    }
    FZ_CHECK(weir_queue_size(s->q) == m->len, "size %zu, model %zu",
             weir_queue_size(s->q), m->len);
    FZ_CHECK(weir_queue_is_closed(s->q) == m->closed, "is_closed");
    FZ_CHECK(weir_queue_capacity(s->q) == m->cap, "capacity");
}

/* ---- the rings ----------------------------------------------------------- */

/* The capacity init gives: the next power of two. */
static size_t
rounded(size_t c)
{
    size_t r = 1;
    while (r < c)
        r <<= 1;
    return r;
}

/*
 * One step on a ring of either family; mpmc selects which.  m->cap is 0
 * while the ring holds no slots (init failed, or destroyed).
 */
#define RING_STEP(fam, r, m, f)                                            \
    do {                                                                   \
        void *items_[BURST_MAX];                                           \
        switch (fz_below(f, 8)) {                                          \
        case 0: {                                                          \
            uintptr_t v_ = next_value++;                                   \
            int rc_ = weir_##fam##_push(r, (void *)v_);                    \
            int want_ = (m)->cap == 0          ? WEIR_EINVAL               \
                        : (m)->len == (m)->cap ? WEIR_EAGAIN               \
                                               : 0;                        \
            FZ_CHECK(rc_ == want_, #fam " push rc %d, model %d", rc_,      \
                     want_);                                               \
            if (rc_ == 0)                                                  \
                model_push(m, v_);                                         \
            break;                                                         \
        }                                                                  \
        case 1: {                                                          \
            void *out_ = (void *)(uintptr_t)0xdead;                        \
            int rc_ = weir_##fam##_pop(r, &out_);                          \
            int want_ = (m)->cap == 0 ? WEIR_EINVAL                        \
                        : (m)->len == 0 ? WEIR_EAGAIN                      \
                                        : 0;                               \
            FZ_CHECK(rc_ == want_, #fam " pop rc %d, model %d", rc_,       \
                     want_);                                               \
            if (rc_ == 0) {                                                \
                uintptr_t v_ = model_pop(m);                               \
                FZ_CHECK((uintptr_t)out_ == v_, #fam " popped %ju, "       \
                         "model %ju", (uintmax_t)(uintptr_t)out_,          \
                         (uintmax_t)v_);                                   \
            }                                                              \
            break;                                                         \
        }                                                                  \
        case 2: {                                                          \
            size_t n_ = fz_below(f, BURST_MAX + 1);                        \
            uintptr_t first_ = next_value;                                 \
            for (size_t i_ = 0; i_ < n_; i_++)                             \
                items_[i_] = (void *)next_value++;                         \
            size_t got_ = weir_##fam##_push_burst(r, items_, n_);          \
            size_t room_ = (m)->cap - (m)->len;                            \
            size_t want_ = n_ < room_ ? n_ : room_;                        \
            FZ_CHECK(got_ == want_, #fam " push_burst(%zu) %zu, "          \
                     "model %zu", n_, got_, want_);                        \
            for (size_t i_ = 0; i_ < got_; i_++)                           \
                model_push(m, first_ + i_);                                \
            break;                                                         \
        }                                                                  \
        case 3: {                                                          \
            size_t n_ = fz_below(f, BURST_MAX + 1);                        \
            size_t got_ = weir_##fam##_pop_burst(r, items_, n_);           \
            size_t want_ = n_ < (m)->len ? n_ : (m)->len;                  \
            FZ_CHECK(got_ == want_, #fam " pop_burst(%zu) %zu, "           \
                     "model %zu", n_, got_, want_);                        \
            for (size_t i_ = 0; i_ < got_; i_++) {                         \
                uintptr_t v_ = model_pop(m);                               \
                FZ_CHECK((uintptr_t)items_[i_] == v_, #fam " burst "       \
                         "item %zu: %ju, model %ju", i_,                   \
                         (uintmax_t)(uintptr_t)items_[i_],                 \
                         (uintmax_t)v_);                                   \
            }                                                              \
            break;                                                         \
        }                                                                  \
        case 4: /* rarely: destroy, then maybe init again */               \
            if (fz_below(f, 4) != 0)                                       \
                break;                                                     \
            weir_##fam##_destroy(r);                                       \
            (m)->cap = (m)->len = (m)->head = 0;                           \
            if (fz_u8(f) & 1) {                                            \
                size_t c_ = fz_below(f, MODEL_MAX / 2 + 2);                \
                int rc_ = weir_##fam##_init(r, c_);                        \
                FZ_CHECK(rc_ == (c_ == 0 ? WEIR_EINVAL : 0),               \
                         #fam " init(%zu) rc %d", c_, rc_);                \
                (m)->cap = c_ == 0 ? 0 : rounded(c_);                      \
            }                                                              \
            break;                                                         \
        case 5:                                                            \
            FZ_CHECK(weir_##fam##_pop(r, NULL) == WEIR_EINVAL,             \
                     #fam " pop(NULL)");                                   \
            FZ_CHECK(weir_##fam##_push_burst(r, NULL, 3) == 0,             \
                     #fam " push_burst(NULL)");                            \
            break;                                                         \
        default:                                                           \
            break;                                                         \
        }                                                                  \
        FZ_CHECK(weir_##fam##_size(r) == (m)->len, #fam " size %zu, "      \
                 "model %zu", weir_##fam##_size(r), (m)->len);             \
        FZ_CHECK(weir_##fam##_capacity(r) == (m)->cap, #fam                \
                 " capacity %zu, model %zu", weir_##fam##_capacity(r),     \
                 (m)->cap);                                                \
    } while (0)

static void
ring_init(fz *f, model *m, int (*init)(void *, size_t), void *r)
{
    size_t c = fz_below(f, MODEL_MAX / 2 + 2);
    int rc = init(r, c);
    FZ_CHECK(rc == (c == 0 ? WEIR_EINVAL : 0), "ring init(%zu) rc %d", c,
             rc);
    m->cap = c == 0 ? 0 : rounded(c);
}

static int
spsc_init(void *r, size_t c)
{
    return weir_spsc_init(r, c);
}

static int
mpmc_init(void *r, size_t c)
{
    return weir_mpmc_init(r, c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = { data, size };
    next_value = 0;

    /* Small capacities, where full and wrap-around come quickly. */
    qstate qs = { 0 };
    qs.m.cap = 1 + fz_below(&f, 40);
    FZ_CHECK(weir_queue_create(&qs.q, qs.m.cap) == 0, "queue_create");
    weir_spsc spsc;
    weir_mpmc mpmc;
    model ms = { 0 }, mm = { 0 };
    ring_init(&f, &ms, spsc_init, &spsc);
    ring_init(&f, &mm, mpmc_init, &mpmc);

    for (int step = 0; step < STEPS_MAX && fz_more(&f); step++) {
        switch (fz_below(&f, 3)) {
        case 0:
            queue_step(&qs, &f);
            break;
        case 1:
            RING_STEP(spsc, &spsc, &ms, &f);
            break;
        default:
            RING_STEP(mpmc, &mpmc, &mm, &f);
            break;
        }
    }
    /* What is left is still there, in order. */
    for (void *out; qs.m.len > 0;) {
        FZ_CHECK(weir_queue_pop(qs.q, &out, WEIR_NOWAIT) == 0, "drain");
        FZ_CHECK((uintptr_t)out == model_pop(&qs.m), "drain order");
    }
    weir_queue_destroy(qs.q);
    weir_spsc_destroy(&spsc);
    weir_mpmc_destroy(&mpmc);
    return 0;
}
