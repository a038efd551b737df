//! The crate's face of `sys::Container`: what `sys` reports as plain facts
//! (`CreateError`, a refused signal) becomes the `Error` users see here, and
//! `fallback_reason` says why this host uses the weaker mechanism.

use crate::error::{Error, Operation};
use crate::mechanism::Mechanism;
use crate::signal::Signal;
use crate::sys::{self, Container, CreateError, CreateStep};

/// Why this host cannot use its platform's strongest mechanism (on Linux: why
/// no writable cgroup v2 is available), or `None` when it can. Groups that do
/// not request a mechanism then use [`Mechanism::ProcessGroup`], and say so
/// through [`ProcessGroup::mechanism`](crate::ProcessGroup::mechanism).
pub fn fallback_reason() -> Option<&'static str> {
    sys::degraded_reason()
}

impl From<CreateError> for Error {
    fn from(e: CreateError) -> Error {
        match e {
            CreateError::Io { step, source } => {
                let operation = match step {
                    CreateStep::Cgroup => Operation::CreateCgroup,
                    CreateStep::JobObject => Operation::CreateJobObject,
                };
                Error::group_io(operation, source)
            }
            CreateError::Unavailable(mechanism, why) => Error::Unsupported {
                operation: mechanism.name(),
                reason: why.into(),
            },
            CreateError::NotOnPlatform(mechanism) => Error::Unsupported {
                operation: mechanism.name(),
                reason: not_on_this_platform().into(),
            },
        }
    }
}

/// Why a mechanism this platform lacks is refused, by what the platform has.
fn not_on_this_platform() -> &'static str {
    match sys::MECHANISMS {
        [Mechanism::JobObject] => "only Job Objects exist on Windows",
        [Mechanism::ProcessGroup] => "only process groups exist on this platform",
        _ => "not available on Linux",
    }
}

impl Container {
    /// Delivers `signal` to every member, as a crate error.
    #[cfg_attr(not(feature = "process-control"), allow(dead_code))]
    pub(crate) fn signal(&self, signal: Signal) -> Result<(), Error> {
        if signal == Signal::Kill {
            return self
                .kill_all()
                .map_err(|e| Error::group_io(Operation::Kill, e));
        }
        if !sys::DELIVERS_SIGNALS {
            return Err(Error::Unsupported {
                operation: "signal",
                reason: "Windows delivers only Signal::Kill (job terminate)".into(),
            });
        }
        self.signal_all(signal)
            .map_err(|e| Error::group_io(Operation::Signal, e))
    }
}
