//! Runs each fuzz input on a thread with the stack production code gets (tokio's worker and
//! blocking threads: 2 MiB), not libFuzzer's main thread (8 MiB): an input that needs more stack
//! than the gateway or the worker has crashes the target. One such thread serves every input (a
//! thread per input would cost more than most inputs take), and a panic on it is passed on to
//! libFuzzer unchanged.

use std::{
    panic::{self, AssertUnwindSafe},
    sync::{mpsc, Mutex, OnceLock},
    thread,
};

/// The stack size of tokio's threads, where every parser and adapter runs in production.
pub const PRODUCTION_STACK_BYTES: usize = 2 * 1024 * 1024;

type Input = (fn(&[u8]), Vec<u8>, mpsc::Sender<thread::Result<()>>);

static INPUTS: OnceLock<Mutex<mpsc::Sender<Input>>> = OnceLock::new();

/// Runs `check` on `data` on the production-sized thread and waits for it.
pub fn run(check: fn(&[u8]), data: &[u8]) {
    let inputs = INPUTS.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Input>();
        thread::Builder::new()
            .name("production-stack".into())
            .stack_size(PRODUCTION_STACK_BYTES)
            .spawn(move || {
                for (check, data, answer) in receiver {
                    let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(&data)));
                    let _ = answer.send(outcome);
                }
            })
            .expect("spawn the production-stack thread");
        Mutex::new(sender)
    });
    let (answer, outcome) = mpsc::channel();
    inputs
        .lock()
        .expect("the input channel")
        .send((check, data.to_vec(), answer))
        .expect("the production-stack thread takes inputs");
    if let Err(panic) = outcome.recv().expect("the production-stack thread answers") {
        panic::resume_unwind(panic);
    }
}
