//! `Rlimit`: the per-process resource limits a command can set for its
//! child (Unix `setrlimit`), named portably.

/// A per-process resource limit, set in the child before it runs
/// ([`Command::rlimit`](crate::Command::rlimit)). Unix only: on Windows a
/// command that sets one fails with [`Error::Unsupported`](crate::Error::Unsupported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rlimit {
    /// `RLIMIT_CORE`: the largest core dump, in bytes (0: none).
    Core,
    /// `RLIMIT_CPU`: CPU time, in seconds (SIGXCPU at the soft limit).
    Cpu,
    /// `RLIMIT_DATA`: the data segment (heap), in bytes.
    Data,
    /// `RLIMIT_FSIZE`: the largest file the process may write, in bytes.
    FileSize,
    /// `RLIMIT_NOFILE`: one more than the highest descriptor it may open.
    NoFile,
    /// `RLIMIT_STACK`: the main thread's stack, in bytes.
    Stack,
    /// `RLIMIT_AS`: the whole address space, in bytes.
    AddressSpace,
}
