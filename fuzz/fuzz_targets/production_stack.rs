//! Runs a fuzz input on a thread with the stack production code gets (tokio's worker and blocking
//! threads: 2 MiB), not libFuzzer's main thread (8 MiB): an input that needs more stack than the
//! gateway or the worker has crashes the target. A panic is passed on to libFuzzer unchanged.

/// The stack size of tokio's threads, where every parser and adapter runs in production.
pub const PRODUCTION_STACK_BYTES: usize = 2 * 1024 * 1024;

pub fn run(input: impl FnOnce() + Send) {
    std::thread::scope(|scope| {
        let joined = std::thread::Builder::new()
            .stack_size(PRODUCTION_STACK_BYTES)
            .spawn_scoped(scope, input)
            .expect("spawn the fuzz thread")
            .join();
        if let Err(panic) = joined {
            std::panic::resume_unwind(panic);
        }
    });
}
