//! The compute thread pool the model's matrix products run on: one worker
//! thread per compute core beyond the caller's own, which takes part too.
//!
//! A decode step is ~200 products of a few tens of microseconds each, so
//! the hand-off must cost far less than that and must not sleep between
//! products: a worker spins for a short while after each job ([`SPIN`])
//! and only then parks, so an idle model burns no core, and a busy one
//! never waits for a wake-up.
//!
//! Work is split into many small tasks taken from a shared counter, and the
//! caller only waits for workers that actually joined a job: when another
//! process takes a core, the thread that still runs takes the tasks the
//! descheduled one would have, instead of everyone waiting for it (a
//! fixed split made two threads slower than one under load). A worker
//! descheduled in the middle of a task still holds the caller up ([`STALL`]).
//! When such waits add up to a good part of the recent past ([`WINDOW`],
//! [`STALLED_SHARE`]), another process holds the core, and the caller runs
//! the following jobs alone for a few milliseconds, longer while it keeps
//! happening ([`SOLO_MIN`], [`SOLO_MAX`]), then tries the workers again. A
//! lone hiccup (a VM's vCPU preempted for a moment) is only waited out:
//! going solo for it cost more than the hiccup itself.
//!
//! Must not know what the tasks compute.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a worker keeps looking for the next job before it parks.
const SPIN: Duration = Duration::from_micros(200);

/// A job stalled when the caller, done with its own tasks, waited longer
/// than this and longer than its own work for a worker still inside: the
/// worker lost its core mid-task to another process.
const STALL: Duration = Duration::from_micros(100);

/// Stalls count as contention when, within one `WINDOW`, the waits on
/// them add up to more than a `STALLED_SHARE`-th of it (another process
/// on the core gets time slices of a few milliseconds, so its stalls fill
/// a third or more of any such window).
const WINDOW: Duration = Duration::from_millis(20);
const STALLED_SHARE: u32 = 4;

/// How long jobs then run on the caller alone, at first and at most; the
/// period doubles while stalls keep coming back and resets when they stop.
const SOLO_MIN: Duration = Duration::from_millis(5);
const SOLO_MAX: Duration = Duration::from_millis(200);

/// A job: called with task indices until none are left.
type Job = dyn Fn(usize) + Sync;

/// `state`: the job's epoch in the high bits, `CLOSED`, and the number of
/// workers inside the job in the low bits.
const CLOSED: u64 = 1 << 31;
const ACTIVE: u64 = CLOSED - 1;

struct Shared {
    state: AtomicU64,
    /// The current job; written only while no worker can join (closed).
    job: UnsafeCell<Option<*const Job>>,
    /// The next task index of the current job.
    next: AtomicUsize,
    tasks: AtomicUsize,
    /// Workers asleep, and the condition they sleep on.
    sleepers: Mutex<usize>,
    wake: Condvar,
}

// SAFETY: `job` is written by the submitter only while the job is closed
// and no worker is active (see `Pool::run`), and read by a worker only
// after it joined the open job, which orders the read after the write.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// A pool of compute threads. One job runs at a time; [`Pool::run`]
/// returns when every task has run.
pub struct Pool {
    shared: Arc<Shared>,
    threads: usize,
    /// Serialises jobs (the model and the embedder share the cores).
    submit: Mutex<Contention>,
}

/// What the pool knows about other processes taking its cores.
#[derive(Debug, Default)]
struct Contention {
    /// Run jobs on the caller alone until then.
    solo_until: Option<Instant>,
    /// The current solo period.
    backoff: Duration,
    last_stall: Option<Instant>,
    /// The current window: when it began and the stalled waits in it.
    window_start: Option<Instant>,
    stalled: Duration,
}

impl Contention {
    /// True while jobs should not wait for workers.
    fn solo(&mut self, now: Instant) -> bool {
        match self.solo_until {
            Some(until) if now < until => true,
            Some(_) => {
                self.solo_until = None;
                false
            }
            None => false,
        }
    }

    /// Notes a parallel job in which the caller worked `own` and then
    /// waited `wait` for the workers.
    fn record(&mut self, own: Duration, wait: Duration, now: Instant) {
        if wait <= STALL || wait <= own {
            return;
        }
        match self.window_start {
            Some(t) if now.duration_since(t) < WINDOW => self.stalled += wait,
            _ => {
                self.window_start = Some(now);
                self.stalled = wait;
            }
        }
        if self.stalled <= WINDOW / STALLED_SHARE {
            return;
        }
        self.window_start = None;
        self.stalled = Duration::ZERO;
        let recent = self
            .last_stall
            .is_some_and(|t| now.duration_since(t) < self.backoff * 4);
        self.backoff = if recent {
            (self.backoff * 2).min(SOLO_MAX)
        } else {
            SOLO_MIN
        };
        self.last_stall = Some(now);
        self.solo_until = Some(now + self.backoff);
        tracing::trace!(?wait, ?own, solo = ?self.backoff, "compute worker stalled; running jobs alone");
    }
}

impl Pool {
    /// A pool using `threads` cores: the caller plus `threads - 1` workers.
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: AtomicU64::new(CLOSED),
            job: UnsafeCell::new(None),
            next: AtomicUsize::new(0),
            tasks: AtomicUsize::new(0),
            sleepers: Mutex::new(0),
            wake: Condvar::new(),
        });
        for i in 1..threads {
            let s = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("hearth-compute-{i}"))
                .spawn(move || worker(&s));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a compute thread; running with fewer");
            }
        }
        Self {
            shared,
            threads,
            submit: Mutex::new(Contention::default()),
        }
    }

    /// The process-wide pool, sized by [`crate::process::compute_threads`]
    /// at first use.
    pub fn global() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| Pool::new(crate::process::compute_threads()))
    }

    /// Threads that run a job, the caller included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(0) .. f(tasks - 1)`, each exactly once, on the pool and the
    /// calling thread; returns when all have run.
    pub fn run(&self, tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if tasks == 0 {
            return;
        }
        if self.threads == 1 || tasks == 1 {
            (0..tasks).for_each(f);
            return;
        }
        // A poisoned lock only means another job panicked; the pool's
        // state is consistent between jobs.
        let mut contention = self.submit.lock().unwrap_or_else(|p| p.into_inner());
        let start = Instant::now();
        if contention.solo(start) {
            (0..tasks).for_each(f);
            return;
        }
        let s = &*self.shared;
        // SAFETY: the job is closed and no worker is active (the previous
        // `run` waited for that), so nobody reads `job` now. The lifetime
        // is erased; the pointer is cleared before this function returns,
        // and no worker uses it after leaving the job.
        unsafe {
            let ptr: *const Job = std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static Job>(f);
            *s.job.get() = Some(ptr);
        }
        s.tasks.store(tasks, Ordering::Relaxed);
        s.next.store(0, Ordering::Relaxed);
        // Open the next epoch with no one inside.
        let old = s.state.load(Ordering::Relaxed);
        let epoch = (old >> 32).wrapping_add(1);
        s.state.store(epoch << 32, Ordering::Release);
        if *s.sleepers.lock().unwrap_or_else(|p| p.into_inner()) > 0 {
            s.wake.notify_all();
        }
        take_tasks(s, f);
        // Close: no worker joins from now on; wait for those inside.
        let mut cur = s.state.fetch_or(CLOSED, Ordering::AcqRel) | CLOSED;
        let own_done = Instant::now();
        while cur & ACTIVE != 0 {
            if own_done.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            cur = s.state.load(Ordering::Acquire);
        }
        // SAFETY: closed with no worker inside (see above).
        unsafe { *s.job.get() = None };
        let end = Instant::now();
        contention.record(own_done - start, end - own_done, end);
    }
}

/// Takes and runs tasks of the current job until none are left.
fn take_tasks(s: &Shared, f: &(dyn Fn(usize) + Sync + '_)) {
    let tasks = s.tasks.load(Ordering::Relaxed);
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= tasks {
            break;
        }
        f(i);
    }
}

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        // Look for a new open job: spin, then sleep.
        let start = Instant::now();
        let state = loop {
            let st = s.state.load(Ordering::Acquire);
            if st >> 32 != seen && st & CLOSED == 0 {
                break st;
            }
            if st >> 32 != seen {
                // Missed a job that already closed: wait for the next one.
                seen = st >> 32;
            }
            if start.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let mut sleepers = s.sleepers.lock().unwrap_or_else(|p| p.into_inner());
            *sleepers += 1;
            // Re-check under the lock: `run` takes it before notifying.
            while s.state.load(Ordering::Acquire) >> 32 == seen {
                sleepers = s.wake.wait(sleepers).unwrap_or_else(|p| p.into_inner());
            }
            *sleepers -= 1;
            drop(sleepers);
        };
        seen = state >> 32;
        // Join, unless it closed meanwhile.
        let mut cur = state;
        let joined = loop {
            if cur >> 32 != seen || cur & CLOSED != 0 {
                break false;
            }
            match s
                .state
                .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break true,
                Err(now) => cur = now,
            }
        };
        if !joined {
            continue;
        }
        // SAFETY: joined the open job, so `job` holds its closure until
        // this worker leaves (the submitter waits for that).
        if let Some(job) = unsafe { *s.job.get() } {
            // SAFETY: the closure outlives the job (see `Pool::run`).
            take_tasks(s, unsafe { &*job });
        }
        s.state.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A mutable slice shared with the tasks of one job, each writing its own
/// disjoint part (rows of a matrix, a block of outputs).
pub struct Disjoint<'a, T> {
    ptr: *mut T,
    len: usize,
    _slice: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: tasks reach the data only through `part`/`write`, whose callers
// promise disjoint ranges, so sharing the handle is sharing `&mut` pieces.
unsafe impl<T: Send> Sync for Disjoint<'_, T> {}

impl<'a, T> Disjoint<'a, T> {
    pub fn new(slice: &'a mut [T]) -> Self {
        Self {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            _slice: std::marker::PhantomData,
        }
    }

    /// Elements `range` (bounds checked).
    ///
    /// # Safety
    /// No other task may use any element of `range` while this borrow lives.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn part(&self, range: std::ops::Range<usize>) -> &mut [T] {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "part out of bounds"
        );
        // SAFETY: in bounds (checked); exclusive by the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }

    /// Sets element `i` (bounds checked).
    ///
    /// # Safety
    /// No other task may use element `i` during the job.
    pub unsafe fn write(&self, i: usize, v: T) {
        assert!(i < self.len, "index out of bounds");
        // SAFETY: in bounds (checked); exclusive by the caller's promise.
        unsafe { *self.ptr.add(i) = v };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_task_runs_exactly_once() {
        for threads in [1, 2, 3] {
            let pool = Pool::new(threads);
            for tasks in [0, 1, 2, 7, 100, 1000] {
                let hits: Vec<AtomicU32> = (0..tasks).map(|_| AtomicU32::new(0)).collect();
                pool.run(tasks, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn many_jobs_in_a_row_and_after_sleeping() {
        let pool = Pool::new(2);
        let sum = AtomicUsize::new(0);
        for round in 0..2000 {
            pool.run(8, &|i| {
                sum.fetch_add(i, Ordering::Relaxed);
            });
            if round % 500 == 0 {
                // Let the worker park, then wake it.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        assert_eq!(sum.load(Ordering::Relaxed), 2000 * 28);
    }

    #[test]
    fn stalls_send_jobs_to_the_caller_for_a_growing_while() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let us = Duration::from_micros;
        let mut c = Contention::default();
        // Waiting less than one's own work is not a stall.
        c.record(ms(2), ms(1), t0);
        assert!(!c.solo(t0));
        c.record(us(10), us(50), t0);
        assert!(!c.solo(t0));
        // A lone stall is waited out.
        c.record(us(30), ms(4), t0);
        assert!(!c.solo(t0 + ms(4)));
        // Stalls filling more than a quarter of the window: alone for
        // SOLO_MIN, then workers again.
        c.record(us(30), ms(2), t0 + ms(6));
        assert!(c.solo(t0 + ms(7)));
        assert!(!c.solo(t0 + ms(6) + SOLO_MIN));
        // Contention that keeps coming back doubles the period, up to
        // SOLO_MAX.
        let mut now = t0 + ms(6) + SOLO_MIN;
        let mut last = SOLO_MIN;
        for _ in 0..10 {
            c.record(us(30), ms(3), now);
            assert!(!c.solo(now), "one 3 ms stall alone");
            c.record(us(30), ms(3), now + ms(3));
            assert!(c.solo(now + ms(3)));
            assert!(c.backoff >= last && c.backoff <= SOLO_MAX);
            last = c.backoff;
            now += ms(3) + c.backoff;
        }
        assert_eq!(c.backoff, SOLO_MAX);
        // Stalls spread over separate windows never add up.
        let later = now + Duration::from_secs(5);
        for k in 0..10 {
            c.record(us(30), ms(4), later + WINDOW * k);
            assert!(!c.solo(later + WINDOW * k));
        }
        // After a quiet stretch, contention starts from SOLO_MIN again.
        let quiet = later + Duration::from_secs(5);
        c.record(us(30), ms(3), quiet);
        c.record(us(30), ms(3), quiet + ms(3));
        assert_eq!(c.backoff, SOLO_MIN);
    }

    #[test]
    fn workers_take_part() {
        let pool = Pool::new(2);
        let ids = Mutex::new(std::collections::HashSet::new());
        for _ in 0..200 {
            pool.run(64, &|_| {
                std::thread::sleep(Duration::from_micros(20));
                ids.lock().unwrap().insert(std::thread::current().id());
            });
        }
        assert_eq!(ids.lock().unwrap().len(), 2);
    }
}
