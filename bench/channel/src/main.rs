//! The crossbeam-channel peer of weir's blocking-queue benchmark: a
//! `bounded(1024)` channel, blocking `send` and `recv`.
//!
//! Usage: weir-bench-channel crossbeam CASE COUNT, with CASE one of q1, q2,
//! wake or idle, printing one line as bench/queue_harness.c does.  The
//! cases, the pinning, the start line, the clocks and the printed figures
//! follow bench/queue_harness.h and bench/queue_harness.c step for step, so
//! the numbers compare.

use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize,
                        Ordering};

const CAPACITY: usize = 1024;
/// As QBENCH_WAKE_GAP_NS and QBENCH_IDLE_SETTLE_NS.
const WAKE_GAP_NS: u64 = 1_000_000;
const IDLE_SETTLE_NS: u64 = 20_000_000;

fn read_clock(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        eprintln!("bench: clock_gettime failed");
        std::process::exit(1);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn now_ns() -> u64 {
    read_clock(libc::CLOCK_MONOTONIC)
}

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

struct Gate {
    arrived: AtomicUsize,
    go: AtomicBool,
}

impl Gate {
    fn wait(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        while !self.go.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
    }
}

/// Runs each closure on its own thread (pinned as given), all released
/// at once; returns their results and the ns from go to the last join.
fn run<T: Send>(jobs: Vec<(Option<usize>, Box<dyn FnOnce() -> T + Send + '_>)>)
    -> (Vec<T>, u64) {
    let gate = Gate { arrived: AtomicUsize::new(0), go: AtomicBool::new(false) };
    let n = jobs.len();
    std::thread::scope(|s| {
        let gate = &gate;
        let handles: Vec<_> = jobs.into_iter()
            .map(|(cpu, job)| s.spawn(move || {
                pin(cpu);
                gate.wait();
                job()
            }))
            .collect();
        while gate.arrived.load(Ordering::SeqCst) < n {
            std::thread::yield_now();
        }
        let t0 = now_ns();
        gate.go.store(true, Ordering::SeqCst);
        let out = handles.into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect();
        (out, now_ns() - t0)
    })
}

type Job<'a> = (Option<usize>, Box<dyn FnOnce() -> u64 + Send + 'a>);

fn throughput(pairs: u64, count: u64) -> Result<(), String> {
    let (tx, rx) = bounded::<u64>(CAPACITY);
    let per = count / pairs;
    // The 2P2C case is oversubscribed on purpose, so nobody is pinned.
    let cpu = |c| if pairs == 1 { Some(c) } else { None };
    let mut jobs: Vec<Job> = Vec::new();
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
    let (sums, ns) = run(jobs);
    let sum: u64 = sums.iter().sum();
    let want = count * (count + 1) / 2;
    if sum != want {
        return Err(format!("items lost or duplicated: sum {sum} \
                            instead of {want}"));
    }
    println!("{:.0}", count as f64 * 1e9 / ns as f64);
    Ok(())
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
    let jobs: Vec<Job> = vec![
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
    let jobs: Vec<Job> = vec![
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
    let args: Vec<String> = std::env::args().collect();
    let count = args.get(3).and_then(|s| s.parse::<u64>().ok())
        .map_or(0, |n| n & !1);
    let result = match (args.len(), args.get(1).map(String::as_str),
                        args.get(2).map(String::as_str)) {
        (4, Some("crossbeam"), Some("q1")) if count > 0 => throughput(1, count),
        (4, Some("crossbeam"), Some("q2")) if count > 0 => throughput(2, count),
        (4, Some("crossbeam"), Some("wake")) if count > 0 => wake(count),
        (4, Some("crossbeam"), Some("idle")) if count > 0 => idle(count),
        _ => {
            eprintln!("usage: crossbeam q1|q2|wake|idle COUNT");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}
