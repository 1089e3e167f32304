// SPDX-License-Identifier: MIT
// The Go peer of weir's blocking-queue benchmark: a buffered channel of
// capacity 1024, blocking send and receive.
//
// Usage: queue_go go CASE COUNT, with CASE one of q1, q2, wake or idle,
// printing one line as bench/queue_harness.c does.  The cases, the start
// line and the printed figures follow bench/queue_harness.h and
// bench/queue_harness.c.
//
// Threads: GOMAXPROCS is left at its default, the number of CPUs.  The
// throughput cases (q1, q2) run plain goroutines, scheduled by Go as Go
// programs normally run: a goroutine cannot be pinned without locking it
// to its thread, and a locked goroutine that blocks hands its thread over
// through the kernel on every wait, which more than halves q1 (about 5
// instead of 12 Mitems/s here).  The wake-up and idle cases lock each
// goroutine to its OS thread (runtime.LockOSThread) and pin that thread to
// CPU 0 or 1 as the C harness does, so the receiver is one thread that
// really sleeps in the kernel when the channel is empty, and its CPU
// clock can be read.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	capacity     = 1024
	wakeGapNs    = 1000000  // as QBENCH_WAKE_GAP_NS
	idleSettleNs = 20000000 // as QBENCH_IDLE_SETTLE_NS
)

// origin makes time.Since a monotonic clock in ns, read through the vDSO
// as clock_gettime is in C; both sides of a wake-up share it.
var origin = time.Now()

func nowNs() uint64 { return uint64(time.Since(origin)) }

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

// pin locks the calling goroutine to its thread and that thread to cpu.
func pin(cpu int) {
	if cpu < 0 {
		return
	}
	runtime.LockOSThread()
	var mask [16]uint64
	mask[cpu/64] |= 1 << (cpu % 64)
	_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, 0,
		unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask)))
	if e != 0 {
		fmt.Fprintf(os.Stderr, "bench: cannot pin to CPU %d; running unpinned\n", cpu)
	}
}

// ownCPUClock is the CPU clock id of the calling (locked) thread, as
// glibc's pthread_getcpuclockid makes it: MAKE_THREAD_CPUCLOCK(tid,
// CPUCLOCK_SCHED).  Never 0.
func ownCPUClock() int32 {
	return int32(^uint32(syscall.Gettid())<<3 | 6)
}

func cpuNs(clock int32) uint64 {
	var ts syscall.Timespec
	_, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME,
		uintptr(int64(clock)), uintptr(unsafe.Pointer(&ts)), 0)
	if e != 0 {
		fail("clock_gettime: %v", e)
	}
	return uint64(ts.Sec)*1000000000 + uint64(ts.Nsec)
}

// peerClock waits for the receiver to publish its CPU clock.
func peerClock(slot *int32) int32 {
	for {
		if id := atomic.LoadInt32(slot); id != 0 {
			return id
		}
		runtime.Gosched()
	}
}

// run starts one goroutine per job, pinned to its CPU unless -1, releases
// them at once and returns their results and the ns to the last finish.
func run(cpus []int, jobs []func() uint64) ([]uint64, uint64) {
	var arrived int32
	var goFlag int32
	var wg sync.WaitGroup
	out := make([]uint64, len(jobs))
	for i := range jobs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			pin(cpus[i])
			atomic.AddInt32(&arrived, 1)
			for atomic.LoadInt32(&goFlag) == 0 {
				runtime.Gosched()
			}
			out[i] = jobs[i]()
		}(i)
	}
	for atomic.LoadInt32(&arrived) < int32(len(jobs)) {
		runtime.Gosched()
	}
	t0 := nowNs()
	atomic.StoreInt32(&goFlag, 1)
	wg.Wait()
	return out, nowNs() - t0
}

func throughput(pairs, count uint64) {
	ch := make(chan uint64, capacity)
	per := count / pairs
	var cpus []int
	var jobs []func() uint64
	for i := uint64(0); i < pairs; i++ {
		first := i + 1
		jobs = append(jobs, func() uint64 {
			v := first
			for k := uint64(0); k < per; k++ {
				ch <- v
				v += pairs
			}
			return 0
		}, func() uint64 {
			sum := uint64(0)
			for k := uint64(0); k < per; k++ {
				sum += <-ch
			}
			return sum
		})
		cpus = append(cpus, -1, -1) // see the top of this file
	}
	sums, ns := run(cpus, jobs)
	sum := uint64(0)
	for _, s := range sums {
		sum += s
	}
	if want := count * (count + 1) / 2; sum != want {
		fail("items lost or duplicated: sum %d instead of %d", sum, want)
	}
	fmt.Printf("%.0f\n", float64(count)*1e9/float64(ns))
}

func sleepNs(ns uint64) { time.Sleep(time.Duration(ns)) }

func wake(count uint64) {
	ch := make(chan uint64, capacity)
	warmup := count/10 + 1
	var clock int32
	samples := make([]uint64, 0, count)
	out, _ := run([]int{0, 1}, []func() uint64{
		func() uint64 {
			peer := peerClock(&clock)
			awake := uint64(0)
			for i := uint64(0); i < warmup+count; i++ {
				sleepNs(wakeGapNs / 2)
				c1 := cpuNs(peer)
				sleepNs(wakeGapNs / 2)
				c2 := cpuNs(peer)
				if i >= warmup && c2 != c1 {
					awake++
				}
				ch <- nowNs()
			}
			return awake
		},
		func() uint64 {
			atomic.StoreInt32(&clock, ownCPUClock())
			for i := uint64(0); i < warmup+count; i++ {
				sent := <-ch
				now := nowNs()
				if i >= warmup {
					samples = append(samples, now-sent)
				}
			}
			return 0
		},
	})
	sort.Slice(samples, func(a, b int) bool { return samples[a] < samples[b] })
	n := len(samples)
	fmt.Printf("%d %d %d\n", samples[n/2], samples[n*99/100], out[0])
}

func idle(ms uint64) {
	ch := make(chan uint64, capacity)
	var clock int32
	var before uint64 // the receiver's CPU ns just before <-ch, never 0
	run([]int{0, 1}, []func() uint64{
		func() uint64 {
			peer := peerClock(&clock)
			c0 := atomic.LoadUint64(&before)
			for ; c0 == 0; c0 = atomic.LoadUint64(&before) {
				runtime.Gosched()
			}
			sleepNs(idleSettleNs)
			c1, t1 := cpuNs(peer), nowNs()
			sleepNs(ms * 1000000)
			c2, t2 := cpuNs(peer), nowNs()
			fmt.Printf("%.1f %.1f\n", float64(c2-c1)*1e6/float64(t2-t1),
				float64(c1-c0)/1e3)
			ch <- 1
			return 0
		},
		func() uint64 {
			own := ownCPUClock()
			atomic.StoreInt32(&clock, own)
			c := cpuNs(own)
			if c == 0 {
				c = 1
			}
			atomic.StoreUint64(&before, c)
			return <-ch
		},
	})
}

func main() {
	if len(os.Args) != 4 || os.Args[1] != "go" {
		usage()
	}
	count, err := strconv.ParseUint(os.Args[3], 10, 64)
	count &^= 1
	if err != nil || count == 0 {
		usage()
	}
	switch os.Args[2] {
	case "q1":
		throughput(1, count)
	case "q2":
		throughput(2, count)
	case "wake":
		wake(count)
	case "idle":
		idle(count)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: go q1|q2|wake|idle COUNT")
	os.Exit(2)
}
