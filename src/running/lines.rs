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
    /// The caller's fast path; `None` says "poll", not end-of-file.
    #[inline]
    pub(crate) fn take_ready_line(&mut self) -> Option<String> {
        let rest = self.ready.get(self.pos..)?;
        let end = find_newline(rest.as_bytes())?;
        let line = rest.get(..end)?;
        let line = line.strip_suffix('\r').unwrap_or(line).to_owned();
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
                return Poll::Ready(Ok(Some(line)));
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
                return Some(line);
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
        let cut = self.start + last + 1;
        let mut next = std::mem::take(&mut self.ready).into_bytes();
        next.clear();
        next.extend_from_slice(&self.buf[cut..]);
        let mut lines = std::mem::replace(&mut self.buf, next);
        lines.truncate(cut);
        lines.drain(..self.start);
        self.delivered += self.pos as u64;
        self.pos = 0;
        self.start = 0;
        self.scanned = 0;
        match String::from_utf8(lines) {
            Ok(text) => self.ready = text,
            Err(e) => {
                // The lines before the first invalid one are still fine; the
                // rest go back in front of `buf`, to be decoded line by line.
                let valid = e.utf8_error().valid_up_to();
                let mut lines = e.into_bytes();
                let good = memchr::memrchr(b'\n', &lines[..valid]).map_or(0, |p| p + 1);
                let mut rest = lines.split_off(good);
                self.raw = rest.len();
                rest.extend_from_slice(&self.buf);
                self.buf = rest;
                lines.truncate(good);
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
mod batches {
    //! Batches and single lines against a reference splitter, over reads
    //! that end anywhere (inside `\r\n`, inside a UTF-8 character, inside a
    //! long line).
    use super::*;
    use std::pin::Pin;
    use tokio::io::ReadBuf;

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
