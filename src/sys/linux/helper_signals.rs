//! Signal set-up shared by the processes processkit forks to serve it (the
//! guardian, the zygote, the shims): they run a copy of the owner's memory,
//! so the owner's handlers must never run there. After fork: syscalls only.

use std::ffi::c_int;
use std::ptr;

/// Signals a terminal or job control sends a whole foreground group: the
/// helpers ignore or block them, so they outlive a Ctrl-C aimed at the owner
/// and do their work (tearing trees down) only when told.
pub(crate) const TERMINAL_SIGNALS: [c_int; 7] = [
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGPIPE,
];

/// Puts every signal's disposition back to the default (the owner's
/// handlers would run the owner's code in this copy of it). Signals the C
/// library keeps for itself refuse the change and keep its handler.
pub(crate) fn default_every_handler() {
    for signal in 1..=libc::SIGRTMAX() {
        set_disposition(signal, libc::SIG_DFL, 0);
    }
}

/// `sigaction(signal)` with `handler` (`SIG_DFL` or `SIG_IGN`) and `flags`.
pub(crate) fn set_disposition(signal: c_int, handler: libc::sighandler_t, flags: c_int) {
    // SAFETY: sigaction is async-signal-safe and reads a structure zeroed
    // on this stack; an invalid or reserved signal only makes it fail.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        libc::sigemptyset(&mut action.sa_mask);
        action.sa_sigaction = handler;
        action.sa_flags = flags;
        libc::sigaction(signal, &action, ptr::null_mut());
    }
}

/// Sets this thread's signal mask to `signals` (blocked), the rest open.
pub(crate) fn block_only(signals: &[c_int]) {
    // SAFETY: sigemptyset, sigaddset and sigprocmask are async-signal-safe
    // and work on a set on this stack.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &signal in signals {
            libc::sigaddset(&mut set, signal);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &set, ptr::null_mut());
    }
}
