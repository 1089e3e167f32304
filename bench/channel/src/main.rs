// SPDX-License-Identifier: MIT
//! The crossbeam-channel peer of weir's blocking-queue benchmark: a
//! `bounded(1024)` channel, blocking `send` and `recv`.
//!
//! Usage: weir-bench-channel crossbeam CASE COUNT, with CASE one of q1, q2,
//! wake or idle, printing one line as bench/queue_harness.c does.  The
//! cases, the pinning, the start line, the clocks and the printed figures
//! follow bench/queue_harness.h and bench/queue_harness.c step for step, so
//! the numbers compare.

use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

#[allow(dead_code)] // shared with bench/crossbeam, which uses other parts
#[path = "../../common.rs"]
mod common;

use common::{now_ns, read_clock, run, Job};

const CAPACITY: usize = 1024;
/// As QBENCH_WAKE_GAP_NS and QBENCH_IDLE_SETTLE_NS.
const WAKE_GAP_NS: u64 = 1_000_000;
const IDLE_SETTLE_NS: u64 = 20_000_000;

fn sleep_ns(ns: u64) {
    std::thread::sleep(std::time::Duration::from_nanos(ns));
}

/// The calling thread's CPU clock, for another thread to read.
fn own_cpu_clock() -> libc::clockid_t {
    let mut id: libc::clockid_t = 0;
    // SAFETY: pthread_self is always valid; id outlives the call.
    let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(),
                                                  &mut id) };
    if rc != 0 {
        eprintln!("bench: pthread_getcpuclockid failed: {rc}");
        std::process::exit(1);
    }
    id
}

fn send(tx: &Sender<u64>, v: u64) {
    if tx.send(v).is_err() {
        eprintln!("bench: send failed");
        std::process::exit(1);
    }
}

fn recv(rx: &Receiver<u64>) -> u64 {
    rx.recv().unwrap_or_else(|_| {
        eprintln!("bench: recv failed");
        std::process::exit(1);
    })
}

fn throughput(pairs: u64, count: u64) -> Result<(), String> {
    let (tx, rx) = bounded::<u64>(CAPACITY);
    let per = count / pairs;
    // The 2P2C case is oversubscribed on purpose, so nobody is pinned.
    let cpu = |c| if pairs == 1 { Some(c) } else { None };
    let mut jobs: Vec<Job<u64>> = Vec::new();
    for i in 0..pairs {
        let tx = tx.clone();
        jobs.push((cpu(0), Box::new(move || {
            let mut v = i + 1;
            for _ in 0..per {
                send(&tx, v);
                v += pairs;
            }
            0
        })));
        let rx = rx.clone();
        jobs.push((cpu(1), Box::new(move || {
            let mut sum = 0u64;
            for _ in 0..per {
                sum += recv(&rx);
            }
            sum
        })));
    }
    let (sums, span) = run(jobs);
    common::check_rate(sums.iter().sum(), count, span.ns)
}

/// The receiver publishes its CPU clock in a slot holding 0 (a thread's
/// CPU clock id is negative on Linux, never 0) ...
fn publish_clock(slot: &AtomicI32) {
    slot.store(own_cpu_clock(), Ordering::SeqCst);
}

/// ... and the sender waits for it, a few microseconds after the go.
fn peer_clock(slot: &AtomicI32) -> libc::clockid_t {
    loop {
        let id = slot.load(Ordering::SeqCst);
        if id != 0 {
            return id;
        }
        std::thread::yield_now();
    }
}

fn wake(count: u64) -> Result<(), String> {
    let (tx, rx) = bounded::<u64>(CAPACITY);
    let warmup = count / 10 + 1;
    let clock = AtomicI32::new(0);
    let samples = std::sync::Mutex::new(Vec::new());
    let jobs: Vec<Job<u64>> = vec![
        (Some(0), Box::new(|| {
            let peer = peer_clock(&clock);
            let mut awake = 0;
            for i in 0..warmup + count {
                sleep_ns(WAKE_GAP_NS / 2);
                let c1 = read_clock(peer);
                sleep_ns(WAKE_GAP_NS / 2);
                let c2 = read_clock(peer);
                if i >= warmup && c2 != c1 {
                    awake += 1;
                }
                send(&tx, now_ns());
            }
            awake
        })),
        (Some(1), Box::new(|| {
            publish_clock(&clock);
            let mut s = Vec::with_capacity(count as usize);
            for i in 0..warmup + count {
                let sent = recv(&rx);
                let now = now_ns();
                if i >= warmup {
                    s.push(now - sent);
                }
            }
            *samples.lock().unwrap() = s;
            0
        })),
    ];
    let (out, _) = run(jobs);
    let mut s = samples.into_inner().unwrap();
    s.sort_unstable();
    let n = s.len();
    println!("{} {} {}", s[n / 2], s[n * 99 / 100], out[0]);
    Ok(())
}

fn idle(ms: u64) -> Result<(), String> {
    let (tx, rx) = bounded::<u64>(CAPACITY);
    let clock = AtomicI32::new(0);
    // The receiver's CPU ns just before recv, never 0 once set.
    let before = AtomicU64::new(0);
    let jobs: Vec<Job<u64>> = vec![
        (Some(0), Box::new(|| {
            let peer = peer_clock(&clock);
            let c0 = loop {
                match before.load(Ordering::SeqCst) {
                    0 => std::thread::yield_now(),
                    c => break c,
                }
            };
            sleep_ns(IDLE_SETTLE_NS);
            let (c1, t1) = (read_clock(peer), now_ns());
            sleep_ns(ms * 1_000_000);
            let (c2, t2) = (read_clock(peer), now_ns());
            println!("{:.1} {:.1}", (c2 - c1) as f64 * 1e6 / (t2 - t1) as f64,
                     (c1 - c0) as f64 / 1e3);
            send(&tx, 1);
            0
        })),
        (Some(1), Box::new(|| {
            publish_clock(&clock);
            let own = read_clock(libc::CLOCK_THREAD_CPUTIME_ID);
            before.store(own.max(1), Ordering::SeqCst);
            recv(&rx)
        })),
    ];
    run(jobs);
    Ok(())
}

fn main() {
    common::main("crossbeam", &[
        ("q1", |count| throughput(1, count)),
        ("q2", |count| throughput(2, count)),
        ("wake", wake),
        ("idle", idle),
    ]);
}
