/* SPDX-License-Identifier: MIT */
/*
 * fuzz_names.c - arbitrary bytes as topic names, wildcard-looking
 * patterns and keys, given to every call that takes one: subscribe (the
 * topic, the dead-letter topic, the subscription's name), publish by
 * name and by handle (topic and key, delayed or not), weir_bus_topic,
 * batch publish, and a dedup table's check_and_insert.  Each must
 * return exactly what the rules of bus.h say, written here as a model
 * of their own: a topic name is 1 to WEIR_TOPIC_MAX bytes of letters,
 * digits and . _ - : / (so * and > are refused); a key is a string of
 * at most WEIR_KEY_MAX bytes; a subscription's name is any string; a
 * dead-letter topic is a good name other than the subscription's own;
 * dedup keys are any bytes, new once and duplicates after.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "weir.h"

enum { NAME_BUF = 300, STEPS_MAX = 64, SUBS_MAX = 4, DEDUP_MAX = 64 };

/* The model: what bus.h says a topic name is. */
static bool
model_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > WEIR_TOPIC_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr("._-:/", c) != NULL))
            return false;
    }
    return true;
}

static bool
model_key_ok(const char *s)
{
    return s == NULL || strlen(s) <= WEIR_KEY_MAX;
}

/*
 * A string from the input, NUL-terminated in buf (NAME_BUF bytes),
 * made one of three ways: raw bytes (up to 255, NUL possibly inside);
 * letters from a table in which the characters a name may hold are
 * common and the reserved ones near (so that good names and nearly good
 * ones come often); or one byte repeated to a length around the limit.
 * Returns the length of the bytes, which for a dedup key may hold NULs.
 */
static size_t
make_string(fz *f, char *buf)
{
    static const char table[] = "aZ09._-:/*>. #\x7f\x80\xff,t";
    size_t len;
    switch (fz_below(f, 4)) {
    case 0:
    case 1:
        len = fz_u8(f);
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)fz_u8(f);
        break;
    case 2:
        len = fz_below(f, 16);
        for (size_t i = 0; i < len; i++)
            buf[i] = table[fz_below(f, sizeof(table) - 1)];
        break;
    default: {
        len = WEIR_TOPIC_MAX - 3 + fz_below(f, 7);
        char c = table[fz_below(f, sizeof(table) - 1)];
        memset(buf, c, len);
        break;
    }
    }
    buf[len] = '\0';
    return len;
}

static int
nop(const weir_msg *m, void *ctx)
{
    (void)m;
    (void)ctx;
    return 0;
}

static int
expect(bool ok)
{
    return ok ? 0 : WEIR_EINVAL;
}

/* The dedup model: the byte strings inserted so far (all within the
 * window, which is an hour; the table holds more than an input makes). */
static char seen[DEDUP_MAX][NAME_BUF];
static size_t seen_len[DEDUP_MAX];
static size_t nseen;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz f = { data, size };
    char s[NAME_BUF];
    weir_bus *bus;
    weir_dedup *dd;
    FZ_CHECK(weir_bus_create(&bus, NULL) == 0, "bus_create");
    FZ_CHECK(weir_dedup_create(&dd, 1024, 3600 * WEIR_SEC) == 0,
             "dedup_create");
    nseen = 0;
    weir_batch *batch = NULL;
    weir_sub *subs[SUBS_MAX];
    int nsubs = 0;
    for (int step = 0; step < STEPS_MAX && fz_more(&f); step++) {
        unsigned op = fz_below(&f, 9);
        size_t len = make_string(&f, s);
        bool name_ok = model_name_ok(s), key_ok = model_key_ok(s);
        int rc, want;
        switch (op) {
        case 0: /* the topic of a subscription: one thread each, so few */
        case 1: { /* the dead-letter topic, or the subscription's name */
            weir_sub_opts o = { .capacity = 4 };
            if (op == 0) {
                want = expect(name_ok);
            } else if (fz_u8(&f) & 1) {
                o.dead_letter_topic = s;
                want = expect(name_ok && strcmp(s, "own") != 0);
            } else {
                o.name = s;
                want = 0;
            }
            if (want == 0 && nsubs == SUBS_MAX)
                break;
            weir_sub *sub = NULL;
            rc = weir_bus_subscribe(bus, op == 0 ? s : "own", nop, NULL, &o,
                                    &sub);
            FZ_CHECK(rc == want, "subscribe(%s) op %u rc %d, model %d", s,
                     op, rc, want);
            if (rc == 0) {
                subs[nsubs++] = sub;
                if (o.name != NULL)
                    FZ_CHECK(strcmp(weir_sub_name(sub), s) == 0, "name");
            }
            break;
        }
        case 2: /* publish: the topic */
        case 3: { /* publish: the key, to a good topic */
            weir_pub_opts po = { .timeout_ns = WEIR_NOWAIT };
            if (fz_u8(&f) & 1)
                po.delay_ns = WEIR_USEC;
            if (op == 3)
                po.key = s;
            want = op == 2 ? expect(name_ok) : expect(key_ok);
            rc = weir_bus_publish(bus, op == 2 ? s : "own", "p", 1, &po);
            /* A full subscription may refuse it: that is not the name. */
            FZ_CHECK(rc == want || (want == 0 && rc == WEIR_EAGAIN),
                     "publish op %u rc %d, model %d", op, rc, want);
            break;
        }
        case 4: { /* a handle, then a keyed publish through it */
            weir_topic *t = NULL;
            rc = weir_bus_topic(bus, s, &t);
            FZ_CHECK(rc == expect(name_ok), "bus_topic rc %d", rc);
            if (rc == 0) {
                weir_pub_opts po = { .key = s, .timeout_ns = WEIR_NOWAIT };
                rc = weir_topic_publish(t, NULL, 0, &po);
                FZ_CHECK(rc == expect(key_ok) || rc == WEIR_EAGAIN,
                         "topic_publish rc %d", rc);
            }
            break;
        }
        case 5:
        case 6: { /* batch publish: the topic, or the key */
            if (batch == NULL)
                FZ_CHECK(weir_batch_begin(bus, &batch) == 0, "begin");
            weir_pub_opts po = { 0 };
            if (op == 6)
                po.key = s;
            rc = weir_batch_publish(batch, op == 5 ? s : "own", "b", 1, &po);
            want = op == 5 ? expect(name_ok) : expect(key_ok);
            FZ_CHECK(rc == want, "batch_publish op %u rc %d, model %d", op,
                     rc, want);
            if (fz_u8(&f) % 4 == 0) {
                rc = weir_batch_commit(batch, WEIR_NOWAIT);
                FZ_CHECK(rc == 0 || rc == WEIR_EAGAIN, "commit rc %d", rc);
                batch = NULL;
            }
            break;
        }
        case 7: { /* dedup: any bytes, NULs included */
            int is_new = 1;
            for (size_t i = 0; i < nseen && is_new; i++)
                if (seen_len[i] == len && memcmp(seen[i], s, len) == 0)
                    is_new = 0;
            rc = weir_dedup_check_and_insert(dd, s, len);
            FZ_CHECK(rc == is_new, "dedup rc %d, model %d", rc, is_new);
            if (is_new && nseen < DEDUP_MAX) {
                memcpy(seen[nseen], s, len);
                seen_len[nseen++] = len;
            }
            FZ_CHECK(weir_dedup_size(dd) == nseen || nseen == DEDUP_MAX,
                     "dedup size %zu, model %zu", weir_dedup_size(dd),
                     nseen);
            break;
        }
        default: /* NULLs, wherever a name or key goes */
            FZ_CHECK(weir_dedup_check_and_insert(dd, NULL, len) ==
                         WEIR_EINVAL, "dedup NULL");
            FZ_CHECK(weir_bus_publish(bus, NULL, "x", 1, NULL) ==
                         WEIR_EINVAL, "publish NULL topic");
            FZ_CHECK(weir_bus_subscribe(bus, NULL, nop, NULL, NULL, NULL) ==
                         WEIR_EINVAL, "subscribe NULL topic");
            break;
        }
    }
    weir_batch_abort(batch);
    /* Closing some subscriptions first, the rest with the bus. */
    for (int i = 0; i < nsubs; i += 2)
        FZ_CHECK(weir_sub_close(subs[i], WEIR_SEC) == 0, "sub_close");
    FZ_CHECK(weir_bus_close(bus, 5 * WEIR_SEC) == 0, "bus_close");
    weir_bus_destroy(bus);
    weir_dedup_destroy(dd);
    return 0;
}
