/* SPDX-License-Identifier: MIT */
/* quick_start.c - the README's quick start: one topic, two subscribers. */
#include <stdio.h>
#include <weir.h>

static int greet(const weir_msg *m, void *ctx)
{
    printf("%s got \"%s\" on %s\n", (const char *)ctx,
           (const char *)weir_msg_data(m), weir_msg_topic(m));
    return 0;                                   /* 0 = acknowledged */
}

int main(void)
{
    weir_bus *bus;
    if (weir_bus_create(&bus, NULL) != 0)
        return 1;
    weir_bus_subscribe(bus, "hello", greet, "alice", NULL, NULL);
    weir_bus_subscribe(bus, "hello", greet, "bob", NULL, NULL);
    weir_bus_publish(bus, "hello", "world", sizeof("world"), NULL);
    int rc = weir_bus_close(bus, WEIR_SEC);     /* drains, joins workers */
    weir_bus_destroy(bus);
    return rc == 0 ? 0 : 1;
}
