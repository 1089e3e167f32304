//! The crossbeam ArrayQueue peer of weir's ring benchmark.
//!
//! Usage: weir-bench-crossbeam crossbeam CASE COUNT, with CASE one of
//! mpmc1, mpmc2 or rtt, printing one line as bench/rings.c does: items per
//! second, or the median and 99th percentile round trip in ns.  The cases,
//! the pinning, the start line and the retry policy follow bench/harness.h
//! and bench/harness.c step for step, so the numbers compare.

use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

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

/// TSC ticks where there is one, as bench_ticks; converted after the run.
fn ticks(origin: &Instant) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let _ = origin;
        // SAFETY: rdtsc reads a counter and touches no memory.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        origin.elapsed().as_nanos() as u64
    }
}

fn pin(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    // SAFETY: set is a plain bit mask that outlives the call.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_setaffinity(0, size, &set) != 0 {
            eprintln!("bench: cannot pin to CPU {cpu}; running unpinned");
        }
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

struct Gate {
    arrived: AtomicUsize,
    go: AtomicBool,
}

impl Gate {
    fn wait(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        while !self.go.load(Ordering::SeqCst) {
            // SAFETY: as in backoff.
            unsafe { libc::sched_yield() };
        }
    }
}

/// The round trip retries at once after one pause, as bench_ping does.
fn ping(w: &Worker, out: &ArrayQueue<usize>, inq: &ArrayQueue<usize>,
        origin: &Instant) -> Outcome {
    let mut o = Outcome { samples: Vec::with_capacity(w.count),
                          ..Default::default() };
    for i in 0..w.warmup + w.count {
        let t0 = ticks(origin);
        while out.push(i + 1).is_err() {
            std::hint::spin_loop();
        }
        let reply = loop {
            if let Some(v) = inq.pop() {
                break v;
            }
            std::hint::spin_loop();
        };
        let t1 = ticks(origin);
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

fn work(w: &Worker, gate: &Gate, origin: &Instant) -> Outcome {
    pin(w.cpu);
    gate.wait();
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
        Role::Ping { out, inq } => ping(w, out, inq, origin),
        Role::Pong { inq, out } => {
            pong(w, inq, out);
            Outcome::default()
        }
    }
}

/// Runs the workers from one go to the last join: outcomes, ns, ticks.
fn run(workers: &[Worker]) -> (Vec<Outcome>, u64, u64) {
    let gate = Gate { arrived: AtomicUsize::new(0),
                      go: AtomicBool::new(false) };
    let origin = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = workers.iter()
            .map(|w| s.spawn(|| work(w, &gate, &origin)))
            .collect();
        while gate.arrived.load(Ordering::SeqCst) < workers.len() {
            std::thread::yield_now();
        }
        let (t0, k0) = (Instant::now(), ticks(&origin));
        gate.go.store(true, Ordering::SeqCst);
        let outcomes = handles.into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect();
        let ns = t0.elapsed().as_nanos() as u64;
        (outcomes, ns, ticks(&origin) - k0)
    })
}

fn throughput(pairs: usize, count: usize) -> Result<(), String> {
    let q = ArrayQueue::new(CAPACITY);
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
    let (outcomes, ns, _) = run(&workers);
    let sum: u64 = outcomes.iter().map(|o| o.sum).sum();
    let want = count as u64 * (count as u64 + 1) / 2;
    if sum != want {
        return Err(format!("items lost or duplicated: sum {sum} \
                            instead of {want}"));
    }
    println!("{:.0}", count as f64 * 1e9 / ns as f64);
    Ok(())
}

fn round_trip(count: usize) -> Result<(), String> {
    let (q1, q2) = (ArrayQueue::new(CAPACITY), ArrayQueue::new(CAPACITY));
    let warmup = count / 10;
    let workers = [
        Worker { role: Role::Ping { out: &q1, inq: &q2 }, cpu: Some(0),
                 count, warmup },
        Worker { role: Role::Pong { inq: &q1, out: &q2 }, cpu: Some(1),
                 count, warmup },
    ];
    let (mut outcomes, ns, ticks) = run(&workers);
    let o = &mut outcomes[0];
    if o.bad != 0 {
        return Err(format!("{} wrong replies", o.bad));
    }
    o.samples.sort_unstable();
    let ns_per_tick = ns as f64 / ticks as f64;
    println!("{:.1} {:.1}", o.samples[count / 2] as f64 * ns_per_tick,
             o.samples[count * 99 / 100] as f64 * ns_per_tick);
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count = args.get(3).and_then(|s| s.parse::<usize>().ok())
        .map_or(0, |n| n & !1);
    let result = match (args.len(), args.get(1).map(String::as_str),
                        args.get(2).map(String::as_str)) {
        (4, Some("crossbeam"), Some("mpmc1")) if count > 0 =>
            throughput(1, count),
        (4, Some("crossbeam"), Some("mpmc2")) if count > 0 =>
            throughput(2, count),
        (4, Some("crossbeam"), Some("rtt")) if count > 0 => round_trip(count),
        _ => {
            eprintln!("usage: crossbeam mpmc1|mpmc2|rtt COUNT");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}
