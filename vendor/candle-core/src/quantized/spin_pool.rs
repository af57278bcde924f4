//! Sentinel: a small fork-join pool for the quantized matmuls, whose helpers spin between jobs.
//!
//! A model's forward pass on the CPU is a few hundred matmuls of tens of microseconds each, with
//! a little serial work between them. Rayon suits neither way of calling it: injected from a
//! thread outside the pool, every matmul costs two futex hand-offs while the caller sleeps (57 µs
//! each on the 2-core machines measured); with the caller as a pool worker, the other workers are
//! asleep by the next matmul and wake too late to take a share, so the caller does nearly all the
//! work alone (94% of it, measured). Like llama.cpp's thread pool, the helpers here spin for a
//! while after each job ([`SPIN`]), so the next matmul of the same pass finds them awake, and park
//! only when the pass is over. The caller takes chunks too; chunks are claimed one at a time, so a
//! helper that arrives late takes fewer.
//!
//! One caller at a time: a second thread that calls while the pool is busy runs its chunks on
//! rayon instead.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a helper keeps spinning after its last chunk before it parks.
const SPIN: Duration = Duration::from_micros(1000);

type Task<'a> = dyn Fn(usize) + Sync + 'a;

struct Shared {
    /// The running job: its epoch in the high 32 bits, the next unclaimed chunk in the low 32.
    claim: AtomicU64,
    /// The running job's task: the address of the caller's `&Task`, dereferenced only by whoever
    /// holds a claimed, unfinished chunk of it (the caller cannot return before that chunk is done).
    task: AtomicPtr<&'static Task<'static>>,
    chunks: AtomicUsize,
    done: AtomicUsize,
    panicked: AtomicBool,
    /// One flag per helper: set while it is parked (or about to park).
    parked: Vec<AtomicBool>,
    threads: OnceLock<Vec<Thread>>,
}

pub(crate) struct SpinPool {
    shared: &'static Shared,
    caller: Mutex<()>,
}

fn pool() -> Option<&'static SpinPool> {
    static POOL: OnceLock<Option<SpinPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let helpers = rayon::current_num_threads().saturating_sub(1);
        (helpers > 0).then(|| SpinPool::start(helpers)).flatten()
    })
    .as_ref()
}

impl SpinPool {
    fn start(helpers: usize) -> Option<Self> {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            claim: AtomicU64::new(0),
            task: AtomicPtr::new(std::ptr::null_mut()),
            chunks: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            parked: (0..helpers).map(|_| AtomicBool::new(false)).collect(),
            threads: OnceLock::new(),
        }));
        let mut threads = Vec::with_capacity(helpers);
        for index in 0..helpers {
            let handle = std::thread::Builder::new()
                .name(format!("candle-matmul-{}", index + 1))
                .spawn(move || helper(shared, index))
                .ok()?;
            threads.push(handle.thread().clone());
        }
        let _ = shared.threads.set(threads);
        Some(Self {
            shared,
            caller: Mutex::new(()),
        })
    }
}

/// Threads that run a job: the caller and the helpers.
pub(crate) fn threads() -> usize {
    pool().map_or(1, |pool| pool.shared.parked.len() + 1)
}

/// Runs `task(i)` for every `i` in `0..chunks`, spread over the caller and the pool's helpers.
pub(crate) fn for_each_chunk(chunks: usize, task: &Task<'_>) {
    if chunks == 0 {
        return;
    }
    let guard = match pool() {
        Some(pool) if chunks > 1 => pool.caller.try_lock().ok().map(|guard| (pool, guard)),
        _ => None,
    };
    let Some((pool, _guard)) = guard else {
        use rayon::prelude::*;
        (0..chunks).into_par_iter().for_each(task);
        return;
    };
    let shared = pool.shared;
    // Publish: the task, the counters, then the new epoch with chunk 0 (release). The lifetime is
    // erased; `task` outlives every call made through it, because this function returns only
    // after every chunk is done.
    let task: &'static Task<'static> =
        unsafe { std::mem::transmute::<&Task<'_>, &'static Task<'static>>(task) };
    shared
        .task
        .store(&task as *const _ as *mut _, Ordering::Relaxed);
    shared.chunks.store(chunks, Ordering::Relaxed);
    shared.done.store(0, Ordering::Relaxed);
    let epoch = (shared.claim.load(Ordering::Relaxed) >> 32).wrapping_add(1) & 0xffff_ffff;
    shared.claim.store(epoch << 32, Ordering::SeqCst);
    if let Some(threads) = shared.threads.get() {
        for (flag, thread) in shared.parked.iter().zip(threads) {
            if flag.load(Ordering::SeqCst) {
                thread.unpark();
            }
        }
    }
    run_chunks(shared, epoch);
    // The last chunks are a helper's; if it was preempted while holding one, yield the core to it
    // rather than spin through its time slice.
    let mut spins = 0u32;
    while shared.done.load(Ordering::Acquire) < chunks {
        spins = spins.wrapping_add(1);
        if spins % 1024 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    if shared.panicked.swap(false, Ordering::Relaxed) {
        panic!("a quantized matmul chunk panicked on a helper thread");
    }
}

/// Claims and runs chunks of job `epoch` until none are left or a newer job replaced it.
fn run_chunks(shared: &Shared, epoch: u64) {
    let chunks = shared.chunks.load(Ordering::Relaxed) as u64;
    let mut claim = shared.claim.load(Ordering::Acquire);
    loop {
        if claim >> 32 != epoch || claim & 0xffff_ffff >= chunks {
            return;
        }
        match shared.claim.compare_exchange_weak(
            claim,
            claim + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                let chunk = (claim & 0xffff_ffff) as usize;
                // Holding an unfinished chunk of the current job keeps its caller waiting, so the
                // task it published is alive.
                let task: &Task<'_> = unsafe { *shared.task.load(Ordering::Relaxed) };
                if catch_unwind(AssertUnwindSafe(|| task(chunk))).is_err() {
                    shared.panicked.store(true, Ordering::Relaxed);
                }
                shared.done.fetch_add(1, Ordering::Release);
                claim = shared.claim.load(Ordering::Acquire);
            }
            Err(current) => claim = current,
        }
    }
}

fn helper(shared: &'static Shared, index: usize) {
    let mut seen_epoch = 0u64;
    let mut idle_since = Instant::now();
    let mut spins = 0u32;
    loop {
        let claim = shared.claim.load(Ordering::Acquire);
        let epoch = claim >> 32;
        if epoch != seen_epoch {
            // A job. Claims are checked against its epoch, so a job that finished meanwhile is
            // left alone.
            run_chunks(shared, epoch);
            seen_epoch = epoch;
            idle_since = Instant::now();
            spins = 0;
            continue;
        }
        spins = spins.wrapping_add(1);
        if spins % 256 != 0 || idle_since.elapsed() < SPIN {
            std::hint::spin_loop();
            continue;
        }
        // Park until the next job; the flag and the epoch check pair with the caller's
        // publish-then-check-flags, so a job published meanwhile is never missed.
        shared.parked[index].store(true, Ordering::SeqCst);
        while shared.claim.load(Ordering::SeqCst) >> 32 == seen_epoch {
            std::thread::park();
        }
        shared.parked[index].store(false, Ordering::SeqCst);
        idle_since = Instant::now();
    }
}
