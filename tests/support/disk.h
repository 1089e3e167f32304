/* SPDX-License-Identifier: MIT */
/*
 * disk.h - a disk between the journal and the file system, for tests:
 * it counts writes and syncs, fails them on demand (a full disk, a sync
 * that fails, a first sync held until other writes came), and remembers
 * per open file how much was synced, so that a simulated power loss can
 * forget or tear the rest (the way SQLite's crash tests do).
 */
#ifndef WEIR_TEST_DISK_H
#define WEIR_TEST_DISK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#define TS_DISK_FDS 1024

typedef struct ts_disk_state {
    _Atomic long writes, syncs;
    _Atomic long space;       /* bytes writes may still add; < 0: no bound */
    _Atomic bool fail_sync;
    _Atomic long hold_sync_until_writes; /* first sync waits for these */
    _Atomic bool holding;     /* that first sync is waiting now */
    _Atomic bool frozen;      /* the power is off: writes and syncs hang */
    off_t synced[TS_DISK_FDS], size[TS_DISK_FDS];
    char *path[TS_DISK_FDS];
    pthread_mutex_t mu;
} ts_disk_state;

extern ts_disk_state ts_disk;

/* ts_disk_reset - counters and failures cleared, the fake disk in use. */
void ts_disk_reset(void);

/*
 * ts_disk_power_loss - the machine loses power: writes and syncs from
 * now on never return, and every open file loses what was not synced;
 * with tear, garbage of a random length takes its place, as a
 * half-written sector would leave.
 */
void ts_disk_power_loss(bool tear, unsigned seed);

#endif /* WEIR_TEST_DISK_H */
