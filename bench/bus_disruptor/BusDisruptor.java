// SPDX-License-Identifier: MIT
/*
 * bench/bus_disruptor/BusDisruptor.java - the LMAX Disruptor (Debian's
 * libdisruptor-java, 3.x) as a publish/subscribe bus, measured the way
 * bench/bus_harness.h measures the C implementations.
 *
 * Usage: java -cp build/bench/bus_disruptor:disruptor.jar BusDisruptor
 *        IMPL CASE COUNT
 * IMPL is dis-block (BlockingWaitStrategy) or dis-sleep
 * (SleepingWaitStrategy); CASE is tSxB, sSxB or lSxB as in bus_harness.h.
 *
 * One publisher thread (ProducerType.SINGLE) and S event handlers, each
 * on its own thread (handleEventsWith), on a ring of 1024 preallocated
 * events.  An event holds a byte array of B bytes: the publisher claims
 * a slot with next(), copies the payload into it (System.arraycopy) and
 * publishes the sequence.  The publisher writes System.nanoTime (on Linux
 * CLOCK_MONOTONIC, the C programs' clock) into the first 8 bytes of its
 * payload before the copy; a handler reads it back from the slot.
 *
 * JIT warm-up: the JVM runs the same case untimed first (an unpaced run
 * of COUNT messages, or 200,000 for lSxB) on a Disruptor of its own, then
 * the timed run on a fresh one.
 */
import com.lmax.disruptor.BlockingWaitStrategy;
import com.lmax.disruptor.EventHandler;
import com.lmax.disruptor.RingBuffer;
import com.lmax.disruptor.SleepingWaitStrategy;
import com.lmax.disruptor.WaitStrategy;
import com.lmax.disruptor.dsl.Disruptor;
import com.lmax.disruptor.dsl.ProducerType;
import com.lmax.disruptor.util.DaemonThreadFactory;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

public final class BusDisruptor {
    static final int RING = 1024;
    static final long PACE_NS = 20000; /* BUS_PACE_NS */
    static final VarHandle LONG = MethodHandles.byteArrayViewVarHandle(
        long[].class, ByteOrder.LITTLE_ENDIAN);

    /* The histogram of bus_harness.h: exact below 32 ns, then 32 buckets
     * per power of two up to 2^40 ns. */
    static final int SUB = 5;
    static final int BUCKETS = (40 - SUB + 1) << SUB;

    static int bucket(long v) {
        if (v < (1L << SUB))
            return (int) Math.max(v, 0);
        int msb = 63 - Long.numberOfLeadingZeros(v);
        if (msb > 39)
            return BUCKETS - 1;
        return ((msb - SUB + 1) << SUB)
            + (int) ((v >>> (msb - SUB)) & ((1 << SUB) - 1));
    }

    static double bucketValue(int i) {
        if (i < (1 << SUB))
            return i;
        int msb = (i >> SUB) - 1 + SUB;
        long m = i & ((1 << SUB) - 1);
        long lo = ((1L << SUB) + m) << (msb - SUB);
        return lo + (double) (1L << (msb - SUB)) / 2;
    }

    static double quantile(long[] h, long n, double q) {
        long want = Math.max(1, (long) (q * n + 0.5)), seen = 0;
        for (int i = 0; i < BUCKETS; i++) {
            seen += h[i];
            if (seen >= want)
                return bucketValue(i);
        }
        return -1;
    }

    static final class Event {
        final byte[] data;
        Event(int bytes) { data = new byte[bytes]; }
    }

    /* Completion, as struct bus_done: the last handler reads the clock. */
    static final class Done {
        int left;
        long lastNs;
        Done(int subs) { left = subs; }
        synchronized void mark(long now) {
            if (now > lastNs)
                lastNs = now;
            if (--left == 0)
                notifyAll();
        }
        synchronized long await() throws InterruptedException {
            while (left > 0)
                wait();
            return lastNs;
        }
    }

    static final class Handler implements EventHandler<Event> {
        final long target;
        final boolean latency;
        final Done done;
        final long[] hist = new long[BUCKETS];
        long handled;

        Handler(long target, boolean latency, Done done) {
            this.target = target;
            this.latency = latency;
            this.done = done;
        }

        @Override
        public void onEvent(Event e, long seq, boolean endOfBatch) {
            if (latency) {
                long sent = (long) LONG.get(e.data, 0);
                hist[bucket(System.nanoTime() - sent)]++;
            }
            if (++handled == target)
                done.mark(System.nanoTime());
        }
    }

    static WaitStrategy strategy(String impl) {
        if (impl.equals("dis-block"))
            return new BlockingWaitStrategy();
        if (impl.equals("dis-sleep"))
            return new SleepingWaitStrategy();
        throw new IllegalArgumentException("IMPL: dis-block or dis-sleep");
    }

    /* One run; returns the span in ns and fills hist (merged). */
    static long run(String impl, int subs, int bytes, long count,
                    boolean paced, boolean latency, long[] hist)
            throws InterruptedException {
        Disruptor<Event> d = new Disruptor<>(() -> new Event(bytes), RING,
            DaemonThreadFactory.INSTANCE, ProducerType.SINGLE,
            strategy(impl));
        Done done = new Done(subs);
        Handler[] hs = new Handler[subs];
        for (int i = 0; i < subs; i++)
            hs[i] = new Handler(count, latency, done);
        d.handleEventsWith(hs);
        RingBuffer<Event> ring = d.start();
        byte[] payload = new byte[bytes];
        for (int i = 8; i < bytes; i++)
            payload[i] = (byte) (i * 7 + 1);

        long t0 = System.nanoTime();
        for (long i = 0; i < count; i++) {
            if (paced) {
                long next = t0 + i * PACE_NS, now;
                while ((now = System.nanoTime()) < next)
                    if (next - now > 5000)
                        Thread.yield();
            }
            LONG.set(payload, 0, System.nanoTime());
            long seq = ring.next();
            System.arraycopy(payload, 0, ring.get(seq).data, 0, bytes);
            ring.publish(seq);
        }
        long span = done.await() - t0;
        d.shutdown();
        for (Handler h : hs) {
            if (h.handled != count)
                throw new IllegalStateException("handled " + h.handled
                                                + " of " + count);
            for (int b = 0; b < BUCKETS; b++)
                hist[b] += h.hist[b];
        }
        return span;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: IMPL CASE COUNT");
            System.exit(2);
        }
        String impl = args[0], c = args[1];
        long count = Long.parseLong(args[2]);
        char kind = c.charAt(0);
        int x = c.indexOf('x');
        int subs = Integer.parseInt(c.substring(1, x));
        int bytes = Integer.parseInt(c.substring(x + 1));
        if ("tsl".indexOf(kind) < 0 || subs < 1 || subs > 64 || bytes < 8) {
            System.err.println("bad CASE " + c);
            System.exit(2);
        }
        boolean paced = kind == 'l', latency = kind != 's';

        run(impl, subs, bytes, paced ? 200000 : count, false, latency,
            new long[BUCKETS]);
        long[] hist = new long[BUCKETS];
        long span = run(impl, subs, bytes, count, paced, latency, hist);
        long n = 0;
        for (long v : hist)
            n += v;
        if (kind == 't')
            System.out.printf("%.0f %.0f %.0f%n", count * 1e9 / span,
                              quantile(hist, n, 0.5),
                              quantile(hist, n, 0.99));
        else if (kind == 'l')
            System.out.printf("%.0f %.0f%n", quantile(hist, n, 0.5),
                              quantile(hist, n, 0.99));
        else
            System.out.printf("%.1f %.2f%n", (double) span / count,
                              (double) span / count / subs);
    }
}
