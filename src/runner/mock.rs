//! `MockRunner`: a `mockall` mock of [`ProcessRunner`] (feature `mock`), for
//! tests that set expectations on exactly which commands run and how often.

use super::{BoxFuture, ProcessRunner};
use crate::command::Command;
use crate::error::Result;
use crate::result::ProcessResult;
use crate::running::RunningProcess;

// mockall cannot mock methods whose boxed future borrows `self`, so the mock
// answers through this private synchronous twin of the trait, and the
// `ProcessRunner` impl below wraps each answer in a ready future. Being
// private, the twin never shadows the real trait's methods for callers.
trait Answers {
    fn start(&self, cmd: &Command) -> Result<RunningProcess>;
    fn output_bytes(&self, cmd: &Command) -> Result<ProcessResult<Vec<u8>>>;
}

mockall::mock! {
    /// A `mockall` mock of [`ProcessRunner`] (feature `mock`).
    ///
    /// Set expectations with `expect_start` and `expect_output_bytes`; the
    /// closures receive the `&Command` and return what the trait method
    /// resolves to. Every output verb (`run`, `output_string`, `exit_code`,
    /// `probe`) goes through `output_bytes`; `start` and `first_line`
    /// through `start`. An unexpected call fails the test, as with any
    /// `mockall` mock.
    ///
    /// ```
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::{Command, MockRunner, ProcessResult, ProcessRunnerExt};
    /// let mut mock = MockRunner::new();
    /// mock.expect_output_bytes()
    ///     .withf(|cmd| cmd.get_program() == "git")
    ///     .times(1)
    ///     .returning(|_| Ok(ProcessResult::new("git", Some(0), b"main\n".to_vec(), Vec::new())));
    /// assert_eq!(mock.run(&Command::new("git").arg("branch")).await?, "main");
    /// # Ok(()) }
    /// ```
    pub Runner {}

    impl Answers for Runner {
        fn start(&self, cmd: &Command) -> Result<RunningProcess>;
        fn output_bytes(&self, cmd: &Command) -> Result<ProcessResult<Vec<u8>>>;
    }
}

impl ProcessRunner for MockRunner {
    fn start<'a>(&'a self, cmd: &'a Command) -> BoxFuture<'a, Result<RunningProcess>> {
        let answer = Answers::start(self, cmd);
        Box::pin(std::future::ready(answer))
    }

    fn output_bytes<'a>(
        &'a self,
        cmd: &'a Command,
    ) -> BoxFuture<'a, Result<ProcessResult<Vec<u8>>>> {
        let answer = Answers::output_bytes(self, cmd);
        Box::pin(std::future::ready(answer))
    }
}
