// SPDX-License-Identifier: MIT
//! The crossbeam ArrayQueue peer of weir's ring benchmark.
//!
//! Usage: weir-bench-crossbeam crossbeam CASE COUNT, with CASE one of
//! mpmc1, mpmc2 or rtt, printing one line as bench/rings.c does: items per
//! second, or the median and 99th percentile round trip in ns.  The cases,
//! the pinning, the start line and the retry policy follow bench/harness.h
//! and bench/harness.c step for step, so the numbers compare.

use crossbeam_queue::ArrayQueue;

#[allow(dead_code)] // shared with bench/channel, which uses other parts
#[path = "../../common.rs"]
mod common;

use common::{run, ticks, Job};

const CAPACITY: usize = 1024;

/// As BENCH_SPIN_STEPS: 1, 2, 4, ... 64 pauses, then sched_yield().
const SPIN_STEPS: u32 = 7;

fn backoff(step: &mut u32) {
    if *step < SPIN_STEPS {
        for _ in 0..(1u32 << *step) {
            std::hint::spin_loop();
        }
        *step += 1;
    } else {
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
}

fn push_one(q: &ArrayQueue<usize>, v: usize) {
    let mut step = 0;
    while q.push(v).is_err() {
        backoff(&mut step);
    }
}

fn pop_one(q: &ArrayQueue<usize>) -> usize {
    let mut step = 0;
    loop {
        if let Some(v) = q.pop() {
            return v;
        }
        backoff(&mut step);
    }
}

/// What one thread does, as enum bench_role and struct bench_worker.
enum Role<'a> {
    Produce { out: &'a ArrayQueue<usize>, first: usize, stride: usize },
    Consume { inq: &'a ArrayQueue<usize> },
    Ping { out: &'a ArrayQueue<usize>, inq: &'a ArrayQueue<usize> },
    Pong { inq: &'a ArrayQueue<usize>, out: &'a ArrayQueue<usize> },
}

struct Worker<'a> {
    role: Role<'a>,
    cpu: Option<usize>,
    count: usize,
    warmup: usize,
}

/// The sum of the items a consumer popped, or a ping's wrong replies and
/// its ticks per timed round trip.
#[derive(Default)]
struct Outcome {
    sum: u64,
    bad: u64,
    samples: Vec<u64>,
}

/// The round trip retries at once after one pause, as bench_ping does.
fn ping(w: &Worker, out: &ArrayQueue<usize>, inq: &ArrayQueue<usize>)
    -> Outcome {
    let mut o = Outcome { samples: Vec::with_capacity(w.count),
                          ..Default::default() };
    for i in 0..w.warmup + w.count {
        let t0 = ticks();
        while out.push(i + 1).is_err() {
            std::hint::spin_loop();
        }
        let reply = loop {
            if let Some(v) = inq.pop() {
                break v;
            }
            std::hint::spin_loop();
        };
        let t1 = ticks();
        o.bad += (reply != i + 1) as u64;
        if i >= w.warmup {
            o.samples.push(t1 - t0);
        }
    }
    o
}

fn pong(w: &Worker, inq: &ArrayQueue<usize>, out: &ArrayQueue<usize>) {
    for _ in 0..w.warmup + w.count {
        let v = loop {
            if let Some(v) = inq.pop() {
                break v;
            }
            std::hint::spin_loop();
        };
        while out.push(v).is_err() {
            std::hint::spin_loop();
        }
    }
}

fn work(w: &Worker) -> Outcome {
    match w.role {
        Role::Produce { out, first, stride } => {
            for i in 0..w.count {
                push_one(out, first + i * stride);
            }
            Outcome::default()
        }
        Role::Consume { inq } => {
            let mut sum = 0u64;
            for _ in 0..w.count {
                sum += pop_one(inq) as u64;
            }
            Outcome { sum, ..Default::default() }
        }
        Role::Ping { out, inq } => ping(w, out, inq),
        Role::Pong { inq, out } => {
            pong(w, inq, out);
            Outcome::default()
        }
    }
}

/// Runs the workers from one go to the last join: outcomes, ns, ticks.
fn run_workers(workers: &[Worker]) -> (Vec<Outcome>, common::Span) {
    run(workers.iter()
        .map(|w| -> Job<Outcome> { (w.cpu, Box::new(move || work(w))) })
        .collect())
}

fn throughput(pairs: usize, count: u64) -> Result<(), String> {
    let q = ArrayQueue::new(CAPACITY);
    let count = count as usize;
    let per = count / pairs;
    // The 2P2C case is oversubscribed on purpose, so nobody is pinned.
    let cpu = |c| if pairs == 1 { Some(c) } else { None };
    let mut workers = Vec::new();
    for i in 0..pairs {
        workers.push(Worker { role: Role::Produce { out: &q, first: i + 1,
                                                    stride: pairs },
                              cpu: cpu(0), count: per, warmup: 0 });
        workers.push(Worker { role: Role::Consume { inq: &q },
                              cpu: cpu(1), count: per, warmup: 0 });
    }
    let (outcomes, span) = run_workers(&workers);
    common::check_rate(outcomes.iter().map(|o| o.sum).sum(), count as u64,
                       span.ns)
}

fn round_trip(count: u64) -> Result<(), String> {
    let count = count as usize;
    let (q1, q2) = (ArrayQueue::new(CAPACITY), ArrayQueue::new(CAPACITY));
    let warmup = count / 10;
    let workers = [
        Worker { role: Role::Ping { out: &q1, inq: &q2 }, cpu: Some(0),
                 count, warmup },
        Worker { role: Role::Pong { inq: &q1, out: &q2 }, cpu: Some(1),
                 count, warmup },
    ];
    let (mut outcomes, span) = run_workers(&workers);
    let o = &mut outcomes[0];
    if o.bad != 0 {
        return Err(format!("{} wrong replies", o.bad));
    }
    o.samples.sort_unstable();
    let ns_per_tick = span.ns as f64 / span.ticks as f64;
    println!("{:.1} {:.1}", o.samples[count / 2] as f64 * ns_per_tick,
             o.samples[count * 99 / 100] as f64 * ns_per_tick);
    Ok(())
}

fn main() {
    common::main("crossbeam", &[
        ("mpmc1", |count| throughput(1, count)),
        ("mpmc2", |count| throughput(2, count)),
        ("rtt", round_trip),
    ]);
}
