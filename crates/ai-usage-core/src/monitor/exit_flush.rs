//! Flushes the global monitor when the process exits normally.
//!
//! The global monitor is a `static`, so Rust never drops it: without this
//! hook, a short program that records and returns from `main` (or calls
//! [`std::process::exit`]) would leave its last records queued in memory.
//! Both paths end in the C library's `exit`, which runs the functions
//! registered with `atexit` while every other thread still runs, so the
//! writer thread can still drain the queue.
//!
//! What does not run this hook: a panic with `panic = "abort"`,
//! `std::process::abort`, a signal that kills the process (SIGKILL, an
//! unhandled SIGTERM/SIGINT) and `libc::_exit`. What is still queued then is
//! lost; what the writer already wrote (every `flush_interval`, default
//! 200 ms) is on disk.
#![allow(unsafe_code)]

use std::sync::Once;

static REGISTER: Once = Once::new();

/// The process that registered the hook: a forked child inherits `atexit`
/// handlers but not the writer thread, so it must not wait for it.
static OWNER_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// What runs at exit: the global monitor's flush, handed in by the module
/// that owns that monitor (so this hook does not depend on it).
static FLUSH: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Registers [`flush_at_exit`] once per process, to run `flush`. Called
/// when the global monitor is created.
pub(super) fn register(flush: fn()) {
    REGISTER.call_once(|| {
        let _ = OWNER_PID.set(std::process::id());
        let _ = FLUSH.set(flush);
        // SAFETY: `atexit` only stores a function pointer; it has no
        // preconditions on the caller. The pointer is to a plain
        // `extern "C" fn()` that lives for the whole program (it is a
        // function item, not a closure), takes no arguments and returns
        // nothing, which is exactly the type `atexit` expects. The function
        // never unwinds across the C boundary (see `flush_at_exit`).
        let rc = unsafe { libc::atexit(flush_at_exit) };
        if rc != 0 {
            tracing::warn!(
                "could not register the exit flush; call flush() before the program exits"
            );
        }
    });
}

extern "C" fn flush_at_exit() {
    // A panic must not unwind into the C library.
    let _ = std::panic::catch_unwind(|| {
        if OWNER_PID.get() != Some(&std::process::id()) {
            return;
        }
        if let Some(flush) = FLUSH.get() {
            flush();
        }
    });
}
