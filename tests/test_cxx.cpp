// SPDX-License-Identifier: MIT
/*
 * test_cxx.cpp - the public headers compile as C++11 with every warning
 * an error, the ring calls link from C++ (to the out-of-line copies
 * lib/core/ring.c emits), and every layer behaves as it does from C.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka's header has no extern "C" guard of its own. */
extern "C" {
#include <cmocka.h>
}

#include "support/support.h"
#include "weir.h"

static void
test_cxx_rings_link_and_work(void **state)
{
    (void)state;
    weir_spsc s;
    weir_mpmc m;
    void *item = NULL;
    assert_int_equal(weir_spsc_init(&s, 2), 0);
    assert_int_equal(weir_mpmc_init(&m, 2), 0);
    assert_int_equal(weir_spsc_push(&s, &s), 0);
    assert_int_equal(weir_mpmc_push(&m, &m), 0);
    assert_int_equal(weir_spsc_size(&s), 1);
    assert_int_equal(weir_mpmc_size(&m), 1);
    assert_int_equal(weir_spsc_pop(&s, &item), 0);
    assert_ptr_equal(item, &s);
    assert_int_equal(weir_mpmc_pop(&m, &item), 0);
    assert_ptr_equal(item, &m);
    assert_int_equal(weir_mpmc_pop(&m, &item), WEIR_EAGAIN);

    void *in[3] = { &s, &m, nullptr }, *out[3];
    assert_int_equal(weir_spsc_push_burst(&s, in, 3), 2);
    assert_int_equal(weir_spsc_pop_burst(&s, out, 3), 2);
    assert_int_equal(weir_mpmc_push_burst(&m, in, 3), 2);
    assert_int_equal(weir_mpmc_pop_burst(&m, out, 3), 2);
    assert_ptr_equal(out[1], &m);
    weir_spsc_destroy(&s);
    weir_mpmc_destroy(&m);
}

static void
test_cxx_layout_matches_c(void **state)
{
    (void)state;
    /* C++ sees plain fields where C has _Atomic ones; sizes must agree. */
    assert_int_equal(sizeof(weir_spsc), 3 * WEIR_CACHELINE);
    assert_int_equal(sizeof(weir_mpmc), 3 * WEIR_CACHELINE);
    assert_string_equal(weir_strerror(WEIR_EAGAIN), weir_strerror(-3));
}

static int
cxx_handler(const weir_msg *m, void *ctx)
{
    *static_cast<size_t *>(ctx) += weir_msg_size(m);
    return 0;
}

/* The other layers link and run from C++ too. */
static void
test_cxx_queue_limiter_bus(void **state)
{
    (void)state;
    weir_queue *q = nullptr;
    void *item = nullptr;
    assert_int_equal(weir_queue_create(&q, 3), 0);
    assert_int_equal(weir_queue_push(q, q, WEIR_NOWAIT), 0);
    assert_int_equal(weir_queue_pop(q, &item, WEIR_NOWAIT), 0);
    assert_ptr_equal(item, q);
    weir_queue_destroy(q);

    weir_limiter lim;
    assert_int_equal(weir_limiter_init(&lim, 10, 2), 0);
    assert_int_equal(weir_limiter_acquire(&lim, 2, WEIR_NOWAIT), 0);
    assert_int_equal(weir_limiter_acquire(&lim, 1, WEIR_NOWAIT), WEIR_EAGAIN);

    weir_bus *bus = nullptr;
    size_t bytes = 0;
    assert_int_equal(weir_bus_create(&bus, nullptr), 0);
    assert_int_equal(weir_bus_subscribe(bus, "cxx", cxx_handler, &bytes,
                                        nullptr, nullptr), 0);
    assert_int_equal(weir_bus_publish(bus, "cxx", "abc", 3, nullptr), 0);
    assert_int_equal(weir_bus_close(bus, WEIR_FOREVER), 0);
    assert_int_equal(bytes, 3);
    weir_bus_destroy(bus);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cxx_rings_link_and_work),
        cmocka_unit_test(test_cxx_layout_matches_c),
        cmocka_unit_test(test_cxx_queue_limiter_bus),
    };
    return cmocka_run_group_tests_name("cxx", tests, ts_watchdog_group, NULL);
}
