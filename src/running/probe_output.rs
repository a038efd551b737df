//! `wait_for_output`: a readiness probe on stdout's text as it accumulates,
//! for a prompt that no newline ends (`$ `, `>>> `). Like every probe it
//! fails with `Error::NotReady` and never kills the child.

use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use super::{MAX_LINE, RunningProcess};
use crate::error::{Error, NotReadyReason, Result};

/// The most text the predicate is shown: older bytes are dropped first, so
/// a child that never prints what is awaited cannot grow memory without bound.
const MAX_SEEN: usize = MAX_LINE;

impl RunningProcess {
    /// Reads stdout until the text accumulated so far satisfies `pred`, and
    /// returns that text. Unlike [`wait_for_line`](RunningProcess::wait_for_line)
    /// it does not wait for a newline, so it sees a prompt such as `$ ` or
    /// `>>> ` that ends without one: `pred` is called with everything read
    /// and not yet consumed (complete lines and the unterminated tail, as
    /// the child wrote them: a terminal's `\r\n` included) each time more
    /// arrives, and at most the last MiB of it.
    ///
    /// The returned text is consumed: the next call, a line stream or a
    /// finisher starts after it. Bytes consumed here bypass an
    /// [`on_stdout_line`](crate::Command::on_stdout_line) handler. Works on
    /// a plain pipe as on a pseudo-terminal (`Command::pty`, feature `pty`).
    ///
    /// Fails with [`Error::NotReady`] when `deadline` passes
    /// ([`NotReadyReason::DeadlineExpired`]) or stdout closes before `pred`
    /// holds ([`NotReadyReason::StdoutClosed`]). The child is never killed here.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::Command;
    /// use std::time::Duration;
    /// let mut run = Command::new("python3").arg("-i").keep_stdin_open().start().await?;
    /// let banner = run
    ///     .wait_for_output(|text| text.ends_with(">>> "), Duration::from_secs(10))
    ///     .await?;
    /// # let _ = banner; Ok(()) }
    /// ```
    pub async fn wait_for_output(
        &mut self,
        mut pred: impl FnMut(&str) -> bool,
        deadline: Duration,
    ) -> Result<String> {
        let begun = Instant::now();
        let mut judged = None;
        let search = std::future::poll_fn(|cx| self.poll_output(cx, &mut pred, &mut judged));
        let reason = match tokio::time::timeout(deadline, search).await {
            Ok(Some(text)) => return Ok(text),
            Ok(None) => {
                self.check_cancelled()?;
                NotReadyReason::StdoutClosed
            }
            Err(_) => NotReadyReason::DeadlineExpired,
        };
        Err(Error::NotReady {
            program: self.program.clone(),
            reason,
            waited: begun.elapsed(),
        })
    }

    /// Shows `pred` the unread text whenever it grew (`judged`: how many
    /// bytes it saw last); the text it accepts, or `None` at end-of-file.
    /// Cancel-safe: every byte read stays in the line reader.
    fn poll_output(
        &mut self,
        cx: &mut Context<'_>,
        pred: &mut impl FnMut(&str) -> bool,
        judged: &mut Option<usize>,
    ) -> Poll<Option<String>> {
        self.resume_stderr_capture();
        let reader = ready!(self.stdout.poll_line_reader(cx));
        loop {
            let eof = reader.at_eof();
            let unread = reader.unread();
            let shown = if eof {
                unread.len()
            } else {
                complete_utf8(unread)
            };
            if *judged != Some(shown) {
                *judged = Some(shown);
                let text = String::from_utf8_lossy(&unread[..shown]);
                if pred(&text) {
                    let text = text.into_owned();
                    reader.consume(shown);
                    return Poll::Ready(Some(text));
                }
            }
            if reader.at_eof() || ready!(reader.poll_read_more(cx)).is_err() {
                return Poll::Ready(None);
            }
            let len = reader.unread().len();
            if len > MAX_SEEN {
                reader.consume(len - MAX_SEEN);
                *judged = None;
            }
        }
    }
}

/// How many leading bytes of `bytes` to show: all but a UTF-8 sequence cut
/// short at the end, whose remaining bytes are still to come.
fn complete_utf8(bytes: &[u8]) -> usize {
    let len = bytes.len();
    // The start of the last character: at most three continuation bytes back.
    let Some(lead) = (1..=4.min(len))
        .map(|back| len - back)
        .find(|&at| bytes[at] & 0xC0 != 0x80)
    else {
        return len;
    };
    let needed = match bytes[lead] {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    };
    if lead + needed > len { lead } else { len }
}

#[cfg(test)]
mod tests {
    use super::complete_utf8;

    #[test]
    fn a_character_cut_short_at_the_end_waits() {
        assert_eq!(complete_utf8(b""), 0);
        assert_eq!(complete_utf8(b"$ "), 2);
        let euro = "€".as_bytes(); // three bytes
        assert_eq!(complete_utf8(euro), 3);
        assert_eq!(complete_utf8(&[b'a', euro[0]]), 1);
        assert_eq!(complete_utf8(&[b'a', euro[0], euro[1]]), 1);
        // Invalid bytes are not waited for: they are shown (replaced).
        assert_eq!(complete_utf8(&[b'a', 0x80]), 2);
        assert_eq!(complete_utf8(&[0xff]), 1);
    }
}
