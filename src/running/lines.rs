//! Line splitting over a pipe: `\n` and `\r\n` end a line, an unterminated
//! last line is still delivered, and a line longer than [`MAX_LINE`] is
//! delivered in `MAX_LINE`-byte pieces rather than buffered without bound.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

use super::pump::{READ_CHUNK, decode_line};

/// The longest line delivered in one piece (1 MiB).
pub const MAX_LINE: usize = 1024 * 1024;

/// Below this much free space at the end of the buffer, compact or grow
/// before reading, so reads stay large.
const MIN_READ: usize = READ_CHUNK / 4;

/// Reads lines from `R`, keeping unread bytes for whoever continues.
///
/// Polling is cancel-safe: every byte read from the pipe stays in `buf`
/// until it has been returned as part of a line.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    reader: R,
    /// Zero-initialised once; `start..end` holds the unread bytes.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// How far past `start` we already searched for a newline.
    scanned: usize,
    eof: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(crate) fn new(reader: R) -> LineReader<R> {
        LineReader::with_buffered(Vec::new(), reader)
    }

    /// A reader that first returns `buffered` (bytes already taken from
    /// `reader` by someone else), then continues with `reader`.
    pub(crate) fn with_buffered(buffered: Vec<u8>, reader: R) -> LineReader<R> {
        let end = buffered.len();
        LineReader {
            reader,
            buf: buffered,
            start: 0,
            end,
            scanned: 0,
            eof: false,
        }
    }

    /// The next line, or `None` at end-of-file.
    pub(crate) async fn next_line(&mut self) -> io::Result<Option<String>> {
        std::future::poll_fn(|cx| self.poll_next_line(cx)).await
    }

    /// Polls for the next line; `Ok(None)` at end-of-file.
    pub(crate) fn poll_next_line(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<Option<String>>> {
        loop {
            if let Some(line) = self.take_line() {
                return Poll::Ready(Ok(Some(line)));
            }
            if self.eof {
                return Poll::Ready(Ok(None));
            }
            ready!(self.poll_fill(cx))?;
        }
    }

    /// A complete line from the buffer; at end-of-file also the unterminated rest.
    fn take_line(&mut self) -> Option<String> {
        let unread = &self.buf[self.start..self.end];
        if let Some(pos) = memchr::memchr(b'\n', &unread[self.scanned..]) {
            let end = self.start + self.scanned + pos;
            return Some(self.take_until(end, 1));
        }
        self.scanned = unread.len();
        if unread.len() >= MAX_LINE {
            return Some(self.take_until(self.start + MAX_LINE, 0));
        }
        if self.eof && !unread.is_empty() {
            return Some(self.take_until(self.end, 0));
        }
        None
    }

    fn take_until(&mut self, end: usize, skip: usize) -> String {
        let line = decode_line(&self.buf[self.start..end]);
        self.start = end + skip;
        self.scanned = 0;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        line
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.make_room();
        let mut read_buf = ReadBuf::new(&mut self.buf[self.end..]);
        match ready!(Pin::new(&mut self.reader).poll_read(cx, &mut read_buf)) {
            Ok(()) => {
                let n = read_buf.filled().len();
                self.end += n;
                self.eof = n == 0;
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                self.eof = true;
                Poll::Ready(Err(e))
            }
        }
    }

    /// Ensures at least `MIN_READ` free bytes after `end`, moving the unread
    /// part to the front before growing the buffer.
    fn make_room(&mut self) {
        if self.buf.len() - self.end >= MIN_READ {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < MIN_READ {
            let grown = (self.buf.len() * 2).max(READ_CHUNK);
            self.buf.resize(grown, 0);
        }
    }

    /// Unread buffered bytes and the reader, for draining what is left.
    pub(crate) fn into_parts(mut self) -> (Vec<u8>, R) {
        self.buf.truncate(self.end);
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
mod throughput {
    use super::*;
    use std::time::Instant;
    use tokio::io::AsyncBufReadExt;

    #[tokio::test]
    #[ignore = "a measurement; run in release mode"]
    async fn in_memory_against_tokio_lines() {
        for width in [8usize, 71] {
            let line = "x".repeat(width - 1) + "\n";
            let text = line.repeat((200 << 20) / width);
            let begun = Instant::now();
            let mut reader = LineReader::new(text.as_bytes());
            let mut n = 0u64;
            while let Some(l) = reader.next_line().await.unwrap() {
                n += 1;
                std::hint::black_box(l);
            }
            let ours = begun.elapsed();
            let begun = Instant::now();
            let mut lines = tokio::io::BufReader::new(text.as_bytes()).lines();
            let mut m = 0u64;
            while let Some(l) = lines.next_line().await.unwrap() {
                m += 1;
                std::hint::black_box(l);
            }
            let theirs = begun.elapsed();
            assert_eq!(n, m);
            eprintln!(
                "{width}-byte lines: ours {ours:?}, tokio {theirs:?}, ratio {:.2}",
                theirs.as_secs_f64() / ours.as_secs_f64()
            );
        }
    }
}
