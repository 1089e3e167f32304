// SPDX-License-Identifier: MIT
//! What the Rust peers of weir's benchmarks share (bench/crossbeam,
//! bench/channel), as bench/common.c does for the C and C++ programs: the
//! clocks, threads pinned and started together at one start line, and
//! the command line.  Each crate includes it with
//! `#[path = "../../common.rs"] mod common;`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Reads a clock (CLOCK_MONOTONIC, or a thread's CPU clock) in ns; a
/// clock that cannot be read ends the program, as bench_fail does.
pub fn read_clock(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec for the call to fill.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        eprintln!("bench: clock_gettime failed");
        std::process::exit(1);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn now_ns() -> u64 {
    read_clock(libc::CLOCK_MONOTONIC)
}

/// TSC ticks where there is one, else ns, as bench_ticks; a Span
/// converts them.
pub fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc reads a counter and touches no memory.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        now_ns()
    }
}

/// Pins the calling thread to cpu; a machine that refuses the pin gets a
/// line on stderr and the run goes on unpinned.
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

/// The start line: threads check in, then yield until the main thread,
/// having read the clocks, lets them go.
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

/// A run from the go to the last join, on both clocks.
pub struct Span {
    pub ns: u64,
    pub ticks: u64,
}

/// One thread of a run: the CPU to pin it to, if any, and its work.
pub type Job<'a, T> = (Option<usize>, Box<dyn FnOnce() -> T + Send + 'a>);

/// Runs each job on its own thread (pinned as given), all released at
/// once, as bench_run_threads; returns their results and the span.
pub fn run<T: Send>(jobs: Vec<Job<'_, T>>) -> (Vec<T>, Span) {
    let gate = Gate { arrived: AtomicUsize::new(0),
                      go: AtomicBool::new(false) };
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
        let (t0, k0) = (now_ns(), ticks());
        gate.go.store(true, Ordering::SeqCst);
        let out = handles.into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .collect();
        (out, Span { ns: now_ns() - t0, ticks: ticks() - k0 })
    })
}

/// The check and figure of every throughput case, as bench_check_rate:
/// items 1..count went through once each iff the sums add up.
pub fn check_rate(sum: u64, count: u64, ns: u64) -> Result<(), String> {
    let want = count * (count + 1) / 2;
    if sum != want {
        return Err(format!("items lost or duplicated: sum {sum} \
                            instead of {want}"));
    }
    println!("{:.0}", count as f64 * 1e9 / ns as f64);
    Ok(())
}

/// A case as the command line names it, and what runs it with COUNT.
pub type Case = (&'static str, fn(u64) -> Result<(), String>);

/// The command line of every peer, IMPL CASE COUNT with IMPL its one
/// name: runs the case named, with COUNT rounded down to an even number
/// as the C harnesses do, and exits 2 on a wrong command line, 1 if the
/// case fails.
pub fn main(name: &str, cases: &[Case]) {
    let args: Vec<String> = std::env::args().collect();
    let count = args.get(3).and_then(|s| s.parse::<u64>().ok())
        .map_or(0, |n| n & !1);
    let case = cases.iter()
        .find(|(c, _)| args.get(2).map(String::as_str) == Some(*c));
    let run_case = match case {
        Some((_, f)) if args.len() == 4 && args[1] == name && count > 0 => f,
        _ => {
            let names: Vec<&str> = cases.iter().map(|(c, _)| *c).collect();
            eprintln!("usage: {name} {} COUNT", names.join("|"));
            std::process::exit(2);
        }
    };
    if let Err(e) = run_case(count) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}
