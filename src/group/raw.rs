//! `ProcessGroup::spawn`: the escape hatch for a command processkit does not
//! build. A caller's `tokio::process::Command` starts inside the group and
//! dies with it; everything else about the child stays the caller's.

use super::ProcessGroup;
use crate::error::{Error, Operation, Result};
use crate::sys::raw_spawn::{RawSpawnError, spawn_into};

impl ProcessGroup {
    /// Starts a command you built with tokio inside this group, for the
    /// option processkit's [`Command`](crate::Command) lacks. The child, and
    /// everything it starts, is a member like any other: it is signalled,
    /// frozen, counted, stopped and killed with the group, and dropping the
    /// group kills it.
    ///
    /// How it joins, by mechanism:
    ///
    /// - **cgroup v2**: the child moves into a cgroup of its own below the
    ///   group's, from a pre-exec hook added to `cmd`, before it runs
    ///   anything. The hook stays on `cmd` (std cannot remove one) and does
    ///   nothing unless `cmd` is spawned through this method again. std runs
    ///   it after dropping privileges, so a `cmd` that sets its own
    ///   `uid`/`gid` may be refused by the kernel: use processkit's
    ///   [`Command::uid`](crate::Command::uid) instead.
    /// - **process group**: the child leads a process group of its own
    ///   (this replaces a `process_group` set on `cmd`), tracked like every
    ///   run's; a descendant that starts its own session leaves it, as with
    ///   [`start`](Self::start).
    /// - **subreaper**: refused with [`Error::Unsupported`]. That mechanism
    ///   holds a run's tree through a shim that starts the program; a child
    ///   that tokio spawns is this process's own, and its orphans would not
    ///   land under any shim. Rather than hold it less well, the group
    ///   refuses it: use [`start`](Self::start), or request the cgroup or
    ///   process-group mechanism.
    /// - **Job Object** (Windows): the child is created suspended, placed in
    ///   the group's job, then resumed. std cannot read back a command's
    ///   creation flags, so this **replaces** any you set on `cmd`; pass
    ///   them to [`spawn_with_creation_flags`](Self::spawn_with_creation_flags)
    ///   to keep them.
    ///
    /// What the raw path does not give: processkit's output pumps (the
    /// child's stdio is whatever `cmd` says, tokio's default being to
    /// inherit), timeouts, idle timeouts and cancellation, per-run stats and
    /// profiles, a per-run [`stop_signal`](crate::Command::stop_signal)
    /// (a group stop sends it SIGTERM) and PATH/PATHEXT lookup. You wait for
    /// and reap the child through tokio's `Child`; dropping that handle does
    /// not kill it (unless you set `kill_on_drop`), the group does.
    ///
    /// Must be called inside a tokio runtime with its IO driver, as tokio's
    /// own spawn. A suspended group refuses it with an [`Error::Io`] of kind
    /// `ResourceBusy`, like [`start`](Self::start).
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::ProcessGroup;
    /// let group = ProcessGroup::new()?;
    /// let mut cmd = tokio::process::Command::new("my-server");
    /// cmd.arg("--port").arg("8080");
    /// let mut child = group.spawn(&mut cmd)?;
    /// # let _ = child.id();
    /// drop(group); // kills my-server and everything it started
    /// let _ = child.wait().await;
    /// # Ok(()) }
    /// ```
    pub fn spawn(&self, cmd: &mut tokio::process::Command) -> Result<tokio::process::Child> {
        self.spawn_with_creation_flags(cmd, 0)
    }

    /// [`spawn`](Self::spawn) with Windows process creation flags (such as
    /// `CREATE_NO_WINDOW`), OR'd with the suspended start the group needs.
    /// Flags other than 0 anywhere but Windows are an [`Error::Unsupported`].
    pub fn spawn_with_creation_flags(
        &self,
        cmd: &mut tokio::process::Command,
        creation_flags: u32,
    ) -> Result<tokio::process::Child> {
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        spawn_into(&self.container, cmd, creation_flags).map_err(|e| match e {
            RawSpawnError::Unsupported(reason) => Error::Unsupported {
                operation: "ProcessGroup::spawn",
                reason: reason.to_owned(),
            },
            RawSpawnError::Slot(source) => Error::io(&program, Operation::PrepareContainer, source),
            RawSpawnError::Spawn(source) if not_found(cmd, &source) => Error::NotFound { program },
            RawSpawnError::Spawn(source) => Error::Spawn { program, source },
            RawSpawnError::Contain(source) => {
                Error::io(&program, Operation::PlaceInContainer, source)
            }
        })
    }
}

/// Whether a failed spawn means the program is missing (not the working
/// directory, which std reports with the same error kind).
fn not_found(cmd: &tokio::process::Command, error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::NotFound
        && cmd
            .as_std()
            .get_current_dir()
            .is_none_or(std::path::Path::is_dir)
}
