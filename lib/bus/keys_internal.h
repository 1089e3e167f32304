/* SPDX-License-Identifier: MIT */
/*
 * keys_internal.h - PRIVATE to lib/: the keys in hand of a subscription
 * with ordered_by_key (keys.c), which deliver.c's workers claim, park
 * behind and hand on.  Every call but setup and teardown takes s->mu
 * (released before it returns) and may be made by any worker at once.
 */
#ifndef WEIR_KEYS_INTERNAL_H
#define WEIR_KEYS_INTERNAL_H

#include "bus_internal.h"

/* weiri_keys_setup - seed s's key hashes at random; at subscribe. */
void weiri_keys_setup(weir_sub *s);

/*
 * weiri_key_claim - claim d's key (d->body->key) for the caller: true,
 * handle d now (d->holds_key tells whether an entry was made); or false:
 * d is parked behind the message of that key in hand, which the caller
 * no longer owns.  d->key_hash is set.
 */
bool weiri_key_claim(weir_sub *s, weiri_delivery *d);

/*
 * weiri_key_next - d, in hand, is finished: if it held its key, the
 * key's next parked message, handed on holding the key, or NULL (the
 * entry is then gone); NULL if it did not.  Call before d's body goes.
 */
weiri_delivery *weiri_key_next(weir_sub *s, const weiri_delivery *d);

/*
 * weiri_keys_release - with the workers joined: hand every parked
 * delivery to leave and empty the table.
 */
void weiri_keys_release(weir_sub *s,
                        void (*leave)(weir_sub *, weiri_delivery *));

/* weiri_keys_teardown - free the table; at free. */
void weiri_keys_teardown(weir_sub *s);

#endif /* WEIR_KEYS_INTERNAL_H */
