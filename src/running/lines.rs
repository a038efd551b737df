//! Line splitting over a pipe: `\n` and `\r\n` end a line, an unterminated
//! last line is still delivered, and a line longer than [`MAX_LINE`] is
//! delivered in `MAX_LINE`-byte pieces rather than buffered without bound.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

use super::batch::{BatchBuilder, LineBatch};
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
    /// Bytes delivered as lines so far, over the reader's whole life.
    delivered: u64,
}

/// The next item in the buffer: its bytes `start..content_end` (relative to
/// the unread part), and where the item after it begins.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    content_end: usize,
    /// Where the item after this one begins.
    pub(super) next: usize,
    /// A piece cut from a long line keeps its bytes as they are; a whole
    /// line loses one trailing `\r`.
    piece: bool,
}

impl Span {
    /// The first `MAX_LINE` bytes of a line that is longer than that.
    fn piece() -> Span {
        Span {
            content_end: MAX_LINE,
            next: MAX_LINE,
            piece: true,
        }
    }
}

/// Where the next complete item of `unread` ends, if it holds one. A line
/// whose content (without `\n` or `\r\n`) is longer than `MAX_LINE` is cut
/// into `MAX_LINE`-byte pieces wherever the reads happened to end; the cut
/// does not depend on how the bytes arrived. `scanned` remembers how far
/// the search for a newline got, so each byte is searched once; reset it
/// to 0 after consuming an item.
#[inline]
pub(super) fn find_span(unread: &[u8], scanned: &mut usize, eof: bool) -> Option<Span> {
    // A newline further out than this ends a line that needs cutting.
    let window = unread.len().min(MAX_LINE + 2);
    let from = (*scanned).min(window);
    if let Some(pos) = find_newline(&unread[from..window]) {
        let pos = from + pos;
        if pos <= MAX_LINE || unread[MAX_LINE] == b'\r' {
            return Some(Span {
                content_end: pos,
                next: pos + 1,
                piece: false,
            });
        }
        return Some(Span::piece());
    }
    *scanned = window;
    let len = unread.len();
    // With exactly one byte past `MAX_LINE` and that byte `\r`, a `\n`
    // may still follow and make it a whole line.
    let too_long = len > MAX_LINE + 1 || (len == MAX_LINE + 1 && unread[MAX_LINE] != b'\r');
    if too_long {
        return Some(Span::piece());
    }
    if eof && len > 0 {
        return Some(Span {
            content_end: len,
            next: len,
            piece: false,
        });
    }
    None
}

/// The first `\n` in `bytes`. Most lines are short: a plain look at the
/// first few bytes finds their end before memchr's setup would pay off.
#[inline]
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const NEAR: usize = 16;
    let near = &bytes[..bytes.len().min(NEAR)];
    if let Some(pos) = near.iter().position(|&b| b == b'\n') {
        return Some(pos);
    }
    memchr::memchr(b'\n', &bytes[near.len()..]).map(|pos| near.len() + pos)
}

impl Span {
    /// The item's text: a piece as it is, a whole line without one trailing
    /// `\r`; invalid UTF-8 replaced. `unread` starts where the item does.
    #[inline]
    pub(super) fn text(self, unread: &[u8]) -> String {
        let bytes = &unread[..self.content_end];
        if self.piece {
            String::from_utf8_lossy(bytes).into_owned()
        } else {
            decode_line(bytes)
        }
    }
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    #[cfg(test)]
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
            delivered: 0,
        }
    }

    /// The next line, or `None` at end-of-file.
    #[cfg(test)]
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

    /// A complete line from the buffer; at end-of-file also the unterminated rest.
    #[inline]
    fn take_line(&mut self) -> Option<String> {
        let span = self.next_span()?;
        let line = span.text(&self.buf[self.start..self.end]);
        self.consume(span.next);
        Some(line)
    }

    /// Every complete line in the buffer as one batch (the same lines, in
    /// the same order, as repeated `take_line` calls would return).
    fn take_batch(&mut self) -> Option<LineBatch> {
        let unread = &self.buf[self.start..self.end];
        // No line in a buffer this short can need cutting, so everything up
        // to the last newline is whole lines, taken with one copy.
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
        while let Some(span) = self.next_span() {
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

    /// Where the next complete item ends, if the buffer holds one.
    #[inline]
    fn next_span(&mut self) -> Option<Span> {
        find_span(&self.buf[self.start..self.end], &mut self.scanned, self.eof)
    }

    /// The bytes read and not yet delivered, an unterminated tail included.
    pub(crate) fn unread(&self) -> &[u8] {
        &self.buf[self.start..self.end]
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
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n;
        self.delivered += n as u64;
        self.scanned = 0;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
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

    /// How many bytes (counting the initially buffered ones) were delivered
    /// as lines so far.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered
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
mod batches {
    //! Batches and single lines against a reference splitter, over reads
    //! that end anywhere (inside `\r\n`, inside a UTF-8 character, inside a
    //! long line).
    use super::*;

    /// Hands out `data` in reads of the given sizes, cycling through them.
    struct Chunked {
        data: Vec<u8>,
        at: usize,
        sizes: Vec<usize>,
        turn: usize,
    }

    impl AsyncRead for Chunked {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            let size = this.sizes[this.turn % this.sizes.len()];
            this.turn += 1;
            let n = size.min(buf.remaining()).min(this.data.len() - this.at);
            buf.put_slice(&this.data[this.at..this.at + n]);
            this.at += n;
            Poll::Ready(Ok(()))
        }
    }

    fn reader(data: &[u8], sizes: &[usize]) -> LineReader<Chunked> {
        LineReader::new(Chunked {
            data: data.to_vec(),
            at: 0,
            sizes: sizes.to_vec(),
            turn: 0,
        })
    }

    /// What the lines of `data` are, computed all at once: split at `\n`,
    /// drop one trailing `\r`, cut content longer than `MAX_LINE` into
    /// `MAX_LINE`-byte pieces, replace invalid UTF-8 piece by piece.
    fn reference(data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut segments: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        if segments.last().is_some_and(|s| s.is_empty()) {
            segments.pop();
        }
        for segment in segments {
            let content = segment.strip_suffix(b"\r").unwrap_or(segment);
            if content.is_empty() {
                out.push(String::new());
            }
            for piece in content.chunks(MAX_LINE) {
                out.push(String::from_utf8_lossy(piece).into_owned());
            }
        }
        out
    }

    /// Reads every line, taking a batch where `pattern` says so.
    async fn read_all(data: &[u8], sizes: &[usize], pattern: &[bool]) -> Vec<String> {
        let mut reader = reader(data, sizes);
        let mut out = Vec::new();
        for turn in 0.. {
            if pattern[turn % pattern.len()] {
                let batch = std::future::poll_fn(|cx| reader.poll_next_batch(cx)).await;
                match batch.unwrap() {
                    Some(batch) => {
                        assert!(!batch.is_empty());
                        assert_eq!(batch.len(), batch.iter().count());
                        out.extend(batch.iter().map(str::to_owned));
                    }
                    None => break,
                }
            } else {
                match reader.next_line().await.unwrap() {
                    Some(line) => out.push(line),
                    None => break,
                }
            }
        }
        out
    }

    async fn check(data: &[u8], sizes: &[usize]) {
        let expected = reference(data);
        for pattern in [&[false][..], &[true], &[true, false], &[false, false, true]] {
            let got = read_all(data, sizes, pattern).await;
            assert_eq!(
                got.len(),
                expected.len(),
                "reads {sizes:?}, batches {pattern:?}"
            );
            assert!(got == expected, "reads {sizes:?}, batches {pattern:?}");
        }
    }

    #[tokio::test]
    async fn short_lines_match_the_reference_for_any_read_sizes() {
        let data = b"a\r\nb\n\n\r\n\r\r\nx\xe2\x82\xacy\n\xff\xfe\r\n\xe2\x82\nno end\r";
        for sizes in [&[1usize][..], &[2], &[3, 1], &[7, 5, 2], &[1 << 20]] {
            check(data, sizes).await;
        }
        check(b"", &[4]).await;
        check(b"\n", &[4]).await;
        check(b"tail without newline", &[3]).await;
    }

    #[tokio::test]
    async fn long_lines_are_cut_the_same_way_whatever_the_reads() {
        let m = MAX_LINE;
        let mut data = Vec::new();
        data.extend(std::iter::repeat_n(b'x', 2 * m + 10));
        data.push(b'\n');
        data.extend(std::iter::repeat_n(b'y', m));
        data.extend(b"\r\n");
        data.extend(std::iter::repeat_n(b'z', m));
        data.extend(b"\n");
        // A three-byte character straddling the cut, and a CR right at it.
        data.extend(std::iter::repeat_n(b'w', m - 1));
        data.extend("\u{20ac}".as_bytes());
        data.extend(std::iter::repeat_n(b'v', m - 1));
        data.extend(b"\r\rshort\n");
        data.extend(std::iter::repeat_n(b'u', m));
        data.push(b'\r');
        for sizes in [&[1usize << 20][..], &[65_536, 3], &[m - 2, 5, 1]] {
            check(&data, sizes).await;
        }
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
        for width in [2usize, 8, 71] {
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
            let begun = Instant::now();
            let mut reader = LineReader::new(text.as_bytes());
            let mut k = 0u64;
            while let Some(batch) = std::future::poll_fn(|cx| reader.poll_next_batch(cx))
                .await
                .unwrap()
            {
                for l in &batch {
                    k += 1;
                    std::hint::black_box(l);
                }
            }
            let batched = begun.elapsed();
            assert_eq!(n, m);
            assert_eq!(k, m);
            eprintln!(
                "{width}-byte lines: ours {ours:?}, batches {batched:?}, tokio {theirs:?}, \
                 ratios {:.2} and {:.2}",
                theirs.as_secs_f64() / ours.as_secs_f64(),
                theirs.as_secs_f64() / batched.as_secs_f64()
            );
        }
    }
}
