//! `LineReader`: the lines of a pipe, read by the caller. Whole lines are
//! checked as UTF-8 once per read and handed out as slices of that buffer;
//! long lines, invalid UTF-8 and the unterminated tail go item by item.

use std::io;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::batch::{BatchBuilder, LineBatch};
use super::pump::READ_CHUNK;
use super::split::{MAX_LINE, find_newline, find_span};

/// How much the reader asks the pipe for at once. A batch is at most one
/// read's worth, and a buffer this size stays in the cache while its
/// lines are checked, counted and sliced.
const LINE_BUF: usize = READ_CHUNK;

/// Below this much spare capacity, compact or grow before reading, so
/// reads stay large.
const MIN_READ: usize = LINE_BUF / 4;

/// Reads lines from `R`, keeping unread bytes for whoever continues.
///
/// The unread bytes are `ready[pos..]` followed by `buf[start..]`. Polling
/// is cancel-safe: every byte read from the pipe stays in one of the two
/// until it has been returned as part of a line.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    reader: R,
    /// Whole lines, each ending with `\n` and none needing a cut, checked
    /// as UTF-8 when they moved here from `buf`; delivered up to `pos`.
    ready: String,
    pos: usize,
    /// Bytes read and not moved to `ready`; `buf[..start]` is delivered.
    buf: Vec<u8>,
    start: usize,
    /// Whether `buf` may hold whole lines that were not offered to `ready`.
    fresh: bool,
    /// The first `raw` unread bytes of `buf` are lines that failed the
    /// UTF-8 check: each is decoded on its own, lossily.
    raw: usize,
    /// How far past `start` the search for a newline got.
    scanned: usize,
    eof: bool,
    /// Bytes delivered as lines before `ready` (over the reader's whole
    /// life); `pos` more were delivered from it.
    delivered: u64,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    #[cfg(test)]
    pub(crate) fn new(reader: R) -> LineReader<R> {
        LineReader::with_buffered(Vec::new(), reader)
    }

    /// A reader that first returns `buffered` (bytes already taken from
    /// `reader` by someone else), then continues with `reader`.
    pub(crate) fn with_buffered(buffered: Vec<u8>, reader: R) -> LineReader<R> {
        LineReader {
            reader,
            ready: String::new(),
            pos: 0,
            fresh: !buffered.is_empty(),
            buf: buffered,
            start: 0,
            raw: 0,
            scanned: 0,
            eof: false,
            delivered: 0,
        }
    }

    /// The next line, or `None` at end-of-file.
    #[cfg(test)]
    pub(crate) async fn next_line(&mut self) -> io::Result<Option<String>> {
        std::future::poll_fn(|cx| self.poll_next_line(cx)).await
    }

    /// The next line if one is checked and waiting: one slice, one copy.
    /// The caller's fast path; `None` says "poll", not end-of-file. A
    /// `Box<str>` is two words, so it comes back from a call in registers.
    #[inline]
    pub(crate) fn take_ready_line(&mut self) -> Option<Box<str>> {
        let rest = self.ready.get(self.pos..)?;
        let end = find_newline(rest.as_bytes())?;
        let line = rest.get(..end)?;
        let line = Box::from(line.strip_suffix('\r').unwrap_or(line));
        self.pos += end + 1;
        Some(line)
    }

    /// Polls for the next line; `Ok(None)` at end-of-file.
    pub(crate) fn poll_next_line(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Option<String>>> {
        loop {
            if let Some(line) = self.take_ready_line() {
                return Poll::Ready(Ok(Some(line.into())));
            }
            if let Some(line) = self.take_line() {
                return Poll::Ready(Ok(Some(line)));
            }
            if self.eof {
                return Poll::Ready(Ok(None));
            }
            ready!(self.poll_fill(cx))?;
        }
    }

    /// Polls for every line that is complete in the buffer, reading once
    /// first if none is; `Ok(None)` at end-of-file.
    pub(crate) fn poll_next_batch(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Option<LineBatch>>> {
        loop {
            if let Some(batch) = self.take_batch() {
                return Poll::Ready(Ok(Some(batch)));
            }
            if self.eof {
                return Poll::Ready(Ok(None));
            }
            ready!(self.poll_fill(cx))?;
        }
    }

    /// With `ready` used up: moves the next whole lines from `buf` there,
    /// or else takes the next item from `buf` on its own.
    fn take_line(&mut self) -> Option<String> {
        if self.fresh {
            self.promote();
            if let Some(line) = self.take_ready_line() {
                return Some(line.into());
            }
        }
        let unread = &self.buf[self.start..];
        let span = find_span(unread, &mut self.scanned, self.eof)?;
        let line = span.text(unread);
        self.consume(span.next);
        Some(line)
    }

    /// Every complete line that is buffered, as one batch (the same lines,
    /// in the same order, as repeated `poll_next_line` calls would return).
    fn take_batch(&mut self) -> Option<LineBatch> {
        if self.pos == self.ready.len() && self.fresh {
            self.promote();
        }
        if self.pos < self.ready.len() {
            self.delivered += self.ready.len() as u64;
            // The checked buffer itself becomes the batch: no copy.
            let text = if self.pos == 0 {
                std::mem::take(&mut self.ready)
            } else {
                self.ready[self.pos..].to_owned()
            };
            self.ready.clear();
            self.pos = 0;
            return Some(LineBatch::from_lines(text));
        }
        let unread = &self.buf[self.start..];
        // No line in a buffer this short can need cutting, so everything up
        // to the last newline is whole lines, taken with one copy (here:
        // lines that failed the UTF-8 check, decoded at once).
        if unread.len() <= MAX_LINE
            && let Some(pos) = memchr::memrchr(b'\n', &unread[self.scanned..])
        {
            let taken = self.scanned + pos + 1;
            let batch = LineBatch::from_terminated(unread[..taken].to_vec());
            self.consume(taken);
            return Some(batch);
        }
        // A long line or the unterminated tail: item by item.
        let mut builder = BatchBuilder::default();
        while let Some(span) = find_span(&self.buf[self.start..], &mut self.scanned, self.eof) {
            let bytes = &self.buf[self.start..self.start + span.content_end];
            if span.piece {
                builder.push_exact(bytes);
            } else {
                builder.push_line(bytes);
            }
            self.consume(span.next);
        }
        builder.finish()
    }

    /// Moves the whole lines at the front of `buf` into `ready` (used up
    /// by now), checking their UTF-8 once. The read buffer itself becomes
    /// `ready`; only the unterminated rest is copied, into the old `ready`.
    fn promote(&mut self) {
        self.fresh = false;
        if self.raw > 0 || self.pos < self.ready.len() {
            return;
        }
        let unread = &self.buf[self.start..];
        // A line ending within this window needs no cut.
        let window = &unread[..unread.len().min(MAX_LINE + 1)];
        let Some(last) = memchr::memrchr(b'\n', window) else {
            return;
        };
        let taken = last + 1;
        let rest_len = unread.len() - taken;
        let mut spare = std::mem::take(&mut self.ready).into_bytes();
        spare.clear();
        self.delivered += self.pos as u64;
        self.pos = 0;
        self.scanned = 0;
        // Copy whichever part is smaller: normally the unterminated rest, but
        // the lines when a large capture was handed over, so its bytes are
        // not moved again for every megabyte taken from its front.
        let copied_lines = rest_len > taken;
        let lines = if copied_lines {
            spare.extend_from_slice(&unread[..taken]);
            self.start += taken;
            spare
        } else {
            spare.extend_from_slice(&unread[taken..]);
            let mut lines = std::mem::replace(&mut self.buf, spare);
            lines.truncate(self.start + taken);
            lines.drain(..self.start);
            self.start = 0;
            lines
        };
        match String::from_utf8(lines) {
            Ok(text) => self.ready = text,
            Err(e) => {
                // The lines before the first invalid one are still fine; the
                // rest go back in front of `buf`, to be decoded line by line.
                let valid = e.utf8_error().valid_up_to();
                let mut lines = e.into_bytes();
                let good = memchr::memrchr(b'\n', &lines[..valid]).map_or(0, |p| p + 1);
                let bad = lines.split_off(good);
                self.raw = bad.len();
                if copied_lines {
                    // Still in `buf`, right before `start`.
                    self.start -= bad.len();
                } else {
                    let mut unread = bad;
                    unread.extend_from_slice(&self.buf);
                    self.buf = unread;
                }
                self.ready = String::from_utf8(lines).unwrap_or_default();
            }
        }
    }

    /// Moves the unread part of `ready` back in front of `buf`, so the
    /// unread bytes are one slice.
    fn demote(&mut self) {
        if self.pos == self.ready.len() {
            return;
        }
        let mut unread =
            Vec::with_capacity(self.ready.len() - self.pos + self.buf.len() - self.start);
        unread.extend_from_slice(&self.ready.as_bytes()[self.pos..]);
        unread.extend_from_slice(&self.buf[self.start..]);
        self.delivered += self.pos as u64;
        self.ready.clear();
        self.pos = 0;
        self.buf = unread;
        self.start = 0;
        self.scanned = 0;
        self.raw = 0;
        self.fresh = true;
    }

    /// The bytes read and not yet delivered, an unterminated tail included.
    pub(crate) fn unread(&mut self) -> &[u8] {
        self.demote();
        &self.buf[self.start..]
    }

    /// Whether the pipe has reached end-of-file (or failed).
    pub(crate) fn at_eof(&self) -> bool {
        self.eof
    }

    /// Reads once more from the pipe, appending to the unread bytes.
    pub(crate) fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.eof {
            return Poll::Ready(Ok(()));
        }
        self.poll_fill(cx)
    }

    /// Marks the first `n` unread bytes as delivered.
    pub(crate) fn consume(&mut self, n: usize) {
        self.demote();
        self.start += n;
        self.delivered += n as u64;
        self.raw = self.raw.saturating_sub(n);
        self.scanned = 0;
        // What follows an item taken on its own may be whole lines again.
        self.fresh = true;
        if self.start == self.buf.len() {
            self.start = 0;
            self.buf.clear();
        }
    }

    /// Reads once from the pipe into the spare capacity of `buf` (no
    /// zeroing, no intermediate copy).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.make_room();
        // `read_buf` is cancel-safe: polled once and dropped, it loses nothing.
        let read = std::pin::pin!(self.reader.read_buf(&mut self.buf)).poll(cx);
        match ready!(read) {
            Ok(n) => {
                self.eof = n == 0;
                self.fresh = n > 0;
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                self.eof = true;
                Poll::Ready(Err(e))
            }
        }
    }

    /// Ensures at least `MIN_READ` spare bytes after the unread ones,
    /// dropping delivered bytes before growing the buffer.
    fn make_room(&mut self) {
        if self.buf.capacity() - self.buf.len() >= MIN_READ {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < MIN_READ {
            let more = self.buf.len().max(LINE_BUF);
            self.buf.reserve(more);
        }
    }

    /// How many bytes (counting the initially buffered ones) were delivered
    /// as lines so far.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered + self.pos as u64
    }

    /// Unread buffered bytes and the reader, for draining what is left.
    pub(crate) fn into_parts(mut self) -> (Vec<u8>, R) {
        self.demote();
        self.buf.drain(..self.start);
        (self.buf, self.reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8]) -> Vec<String> {
        let mut reader = LineReader::new(input);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn splits_lf_crlf_and_unterminated_tail() {
        assert_eq!(lines_of(b"a\nb\r\n\nc").await, ["a", "b", "", "c"]);
        assert!(lines_of(b"").await.is_empty());
    }

    #[tokio::test]
    async fn caps_enormous_lines() {
        let big = vec![b'x'; MAX_LINE * 2 + 10];
        let lines = lines_of(&big).await;
        assert_eq!(
            lines.iter().map(String::len).collect::<Vec<_>>(),
            [MAX_LINE, MAX_LINE, 10]
        );
    }

    #[tokio::test]
    async fn buffered_bytes_come_first_and_leftovers_are_returned() {
        let mut reader = LineReader::with_buffered(b"one\ntw".to_vec(), &b"o\nthree\nfo"[..]);
        assert_eq!(reader.next_line().await.unwrap().as_deref(), Some("one"));
        assert_eq!(reader.next_line().await.unwrap().as_deref(), Some("two"));
        let (unread, rest) = reader.into_parts();
        assert_eq!(unread, b"three\nfo");
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn an_invalid_line_among_checked_ones_is_decoded_on_its_own() {
        let input = b"ok\r\nbad\xff\r\nfine\n\xe2\x82\nagain\ntail";
        let mut reader = LineReader::new(&input[..]);
        let mut got = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            got.push(line);
            assert!(reader.delivered() <= input.len() as u64);
        }
        assert_eq!(
            got,
            ["ok", "bad\u{fffd}", "fine", "\u{fffd}", "again", "tail"]
        );
        assert_eq!(reader.delivered(), input.len() as u64);
    }

    #[tokio::test]
    async fn unread_bytes_are_one_slice_after_lines_were_taken() {
        let input = b"one\ntwo\nthree\npart";
        let mut reader = LineReader::new(&input[..]);
        assert_eq!(reader.next_line().await.unwrap().as_deref(), Some("one"));
        assert_eq!(reader.delivered(), 4);
        assert_eq!(reader.unread(), b"two\nthree\npart");
        reader.consume(4);
        assert_eq!(reader.delivered(), 8);
        assert_eq!(reader.next_line().await.unwrap().as_deref(), Some("three"));
        let (unread, _) = reader.into_parts();
        assert_eq!(unread, b"part");
    }

    #[tokio::test]
    async fn many_reads_across_compactions_lose_nothing() {
        let text: String = (0..50_000).map(|i| format!("line {i}\r\n")).collect();
        let lines = lines_of(text.as_bytes()).await;
        assert_eq!(lines.len(), 50_000);
        assert_eq!(lines[49_999], "line 49999");
        assert!(
            lines
                .iter()
                .enumerate()
                .all(|(i, l)| *l == format!("line {i}"))
        );
    }
}

#[cfg(test)]
mod batches;

#[cfg(test)]
mod throughput;
