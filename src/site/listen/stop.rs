//! The forced exit: after SIGTERM/SIGINT the process ends within a bounded time, whatever is
//! stuck (a blocked file read, a task that never yields, every runtime thread busy).

use std::{
    io::Read,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, OnceLock,
    },
    time::{Duration, Instant},
};

use crate::server::Shutdown;

/// How long the process may take to stop after SIGTERM/SIGINT before it exits anyway.
pub const FORCED_EXIT_AFTER: Duration = Duration::from_secs(5);
/// The exit status when the stop did not finish in time (a clean stop exits with 0).
pub const FORCED_EXIT_CODE: i32 = 1;

/// Makes sure the process ends after SIGTERM/SIGINT, stuck or not: the first signal triggers
/// every [`stop_on_signal`] shutdown and starts a [`FORCED_EXIT_AFTER`] countdown on a thread
/// of its own (so it runs even when every runtime thread is blocked, or while start-up is still
/// reading files), after which the process exits with [`FORCED_EXIT_CODE`]; a second signal
/// exits at once. A clean stop ends the process before that. Armed once per process; later
/// calls do nothing. Only for a process that serves: once armed, these signals no longer end
/// the process on their own.
pub fn arm_forced_exit() {
    #[cfg(unix)]
    {
        static ARMED: OnceLock<()> = OnceLock::new();
        ARMED.get_or_init(|| {
            if let Err(error) = install_forced_exit() {
                tracing::warn!(%error, "cannot arm the forced exit after SIGTERM");
            }
        });
    }
}

/// Shutdowns the forced-exit thread triggers when the stop signal arrives (see
/// [`arm_forced_exit`]).
static STOP_ON_SIGNAL: Mutex<Vec<Shutdown>> = Mutex::new(Vec::new());

/// Has [`arm_forced_exit`]'s thread trigger `shutdown` at the stop signal, so the clean stop
/// begins even when no runtime thread is free to see the signal.
pub fn stop_on_signal(shutdown: Shutdown) {
    let mut list = STOP_ON_SIGNAL.lock().unwrap_or_else(|e| e.into_inner());
    // A signal that came during start-up stops the server as soon as it exists.
    if SIGNALLED.load(Ordering::SeqCst) {
        shutdown.trigger();
    }
    list.push(shutdown);
}

/// Set (under the [`STOP_ON_SIGNAL`] lock) once the stop signal has arrived.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
fn install_forced_exit() -> std::io::Result<()> {
    use std::os::{fd::AsRawFd, unix::net::UnixStream};
    let (mut receiver, sender) = UnixStream::pair()?;
    // The signal handler must never block.
    sender.set_nonblocking(true)?;
    let fd = sender.as_raw_fd();
    // The write end lives as long as the process: the handler may run at any time.
    std::mem::forget(sender);
    std::thread::Builder::new()
        .name("loopwatch-exit".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            loop {
                match receiver.read(&mut byte) {
                    Ok(1) => break,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    _ => return,
                }
            }
            {
                let list = STOP_ON_SIGNAL.lock().unwrap_or_else(|e| e.into_inner());
                SIGNALLED.store(true, Ordering::SeqCst);
                for shutdown in list.iter() {
                    shutdown.trigger();
                }
            }
            let deadline = Instant::now() + FORCED_EXIT_AFTER;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                if receiver.set_read_timeout(Some(left)).is_err() {
                    std::thread::sleep(left);
                    break;
                }
                if let Ok(1) = receiver.read(&mut byte) {
                    eprintln!("loopwatch: second stop signal; exiting now");
                    std::process::exit(FORCED_EXIT_CODE);
                }
                // Otherwise it timed out or was interrupted: check the deadline again.
            }
            eprintln!(
                "loopwatch: still stopping {} s after the stop signal; exiting anyway",
                FORCED_EXIT_AFTER.as_secs()
            );
            std::process::exit(FORCED_EXIT_CODE);
        })?;
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the action only calls write(2) on a descriptor that is never closed, which is
        // async-signal-safe, and allocates nothing.
        unsafe {
            signal_hook_registry::register(signal, move || {
                let byte = 1u8;
                libc::write(fd, std::ptr::addr_of!(byte).cast(), 1);
            })
        }?;
    }
    Ok(())
}
