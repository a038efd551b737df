//! `LineBatch`: many lines of a child's output in one buffer, so a reader
//! that wants throughput pays one allocation and one UTF-8 check per read
//! instead of one `String` per line.

use std::iter::FusedIterator;

use crate::sys::newlines::Newlines;

/// Lines of a child's output that arrived together, in one buffer.
///
/// Returned by [`LineStream::next_batch`](crate::LineStream::next_batch).
/// Iterating (with [`iter`](LineBatch::iter) or `for line in &batch`) yields
/// `&str` lines borrowed from the batch: exactly the lines, in the same
/// order, that [`LineStream`](crate::LineStream)'s `next()` would have
/// returned one `String` at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineBatch {
    /// Every line exactly as delivered, each followed by `\n`: the `\r` of
    /// a `\r\n` ending is dropped when the batch is made, so iterating
    /// only cuts at `\n`.
    text: String,
    lines: usize,
}

impl LineBatch {
    /// A batch of `bytes` that are complete lines as read from the pipe:
    /// each ends with `\n`, optionally preceded by `\r`.
    pub(crate) fn from_terminated(mut bytes: Vec<u8>) -> LineBatch {
        let lines = memchr::memchr_iter(b'\n', &bytes).count();
        drop_crlf_returns(&mut bytes);
        LineBatch {
            text: decode(bytes),
            lines,
        }
    }

    /// A batch of `text` that is complete lines: each ends with `\n`,
    /// optionally preceded by `\r`.
    pub(crate) fn from_lines(text: String) -> LineBatch {
        if memchr::memchr(b'\r', text.as_bytes()).is_some() {
            return LineBatch::from_terminated(text.into_bytes());
        }
        let lines = memchr::memchr_iter(b'\n', text.as_bytes()).count();
        LineBatch { text, lines }
    }

    /// How many lines the batch holds.
    pub fn len(&self) -> usize {
        self.lines
    }

    /// Whether the batch holds no line (a batch from
    /// [`next_batch`](crate::LineStream::next_batch) always holds at least one).
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// The lines, first to last, without their `\n` or `\r\n`.
    #[inline]
    pub fn iter(&self) -> LineBatchIter<'_> {
        LineBatchIter::new(&self.text, self.lines)
    }
}

impl<'a> IntoIterator for &'a LineBatch {
    type Item = &'a str;
    type IntoIter = LineBatchIter<'a>;

    #[inline]
    fn into_iter(self) -> LineBatchIter<'a> {
        self.iter()
    }
}

/// Iterator over the lines of a [`LineBatch`], from [`LineBatch::iter`].
#[derive(Debug, Clone)]
pub struct LineBatchIter<'a> {
    lines: Newlines<'a>,
    /// Lines not yet returned: the `\n`s left in the text.
    left: usize,
}

impl<'a> LineBatchIter<'a> {
    #[inline]
    fn new(text: &'a str, lines: usize) -> LineBatchIter<'a> {
        LineBatchIter {
            lines: Newlines::new(text),
            left: lines,
        }
    }
}

impl<'a> Iterator for LineBatchIter<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let line = self.lines.next_line()?;
        self.left -= 1;
        Some(line)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for LineBatchIter<'_> {}

impl FusedIterator for LineBatchIter<'_> {}

/// Builds a batch item by item, for the cases a single copy cannot cover.
#[derive(Debug, Default)]
pub(crate) struct BatchBuilder {
    bytes: Vec<u8>,
    lines: usize,
}

impl BatchBuilder {
    /// A line as read, without its `\n`: one trailing `\r` is dropped.
    pub(crate) fn push_line(&mut self, raw: &[u8]) {
        self.push_exact(raw.strip_suffix(b"\r").unwrap_or(raw));
    }

    /// A line whose bytes are all kept, even a trailing `\r`.
    pub(crate) fn push_exact(&mut self, content: &[u8]) {
        self.bytes.extend_from_slice(content);
        self.bytes.push(b'\n');
        self.lines += 1;
    }

    /// The batch, or `None` if nothing was pushed.
    pub(crate) fn finish(self) -> Option<LineBatch> {
        (self.lines > 0).then(|| LineBatch {
            text: decode(self.bytes),
            lines: self.lines,
        })
    }
}

/// Drops the `\r` of every `\r\n`, in place (`\r\r\n` keeps one).
fn drop_crlf_returns(bytes: &mut Vec<u8>) {
    let crlf = memchr::memmem::Finder::new(b"\r\n");
    // `bytes[..kept]` is done; `bytes[from..]` is still to be looked at.
    let (mut kept, mut from) = (0, 0);
    while let Some(at) = crlf.find(&bytes[from..]).map(|i| from + i) {
        bytes.copy_within(from..at, kept);
        kept += at - from;
        from = at + 1;
    }
    if from > 0 {
        bytes.copy_within(from.., kept);
        bytes.truncate(kept + (bytes.len() - from));
    }
}

/// The bytes as text. Invalid UTF-8 is replaced with `U+FFFD` over the whole
/// buffer at once, which gives the same lines as replacing it line by line:
/// `\r` and `\n` are ASCII, so no invalid sequence spans a line end.
fn decode(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(batch: &LineBatch) -> Vec<&str> {
        batch.iter().collect()
    }

    #[test]
    fn terminated_bytes_split_into_lines_without_terminators() {
        let batch = LineBatch::from_terminated(b"a\nb\r\n\n\r\nc\r\r\n".to_vec());
        assert_eq!(lines(&batch), ["a", "b", "", "", "c\r"]);
        assert_eq!(batch.len(), 5);
        assert_eq!(batch.iter().len(), 5);
        assert!(!batch.is_empty());
    }

    #[test]
    fn checked_lines_lose_only_the_return_of_a_crlf_ending() {
        let batch = LineBatch::from_lines("one\r\ntwo\rthree\r\r\n\r\nfour\n".to_owned());
        assert_eq!(lines(&batch), ["one", "two\rthree\r", "", "four"]);
        let mut iter = batch.iter();
        iter.next();
        assert_eq!(iter.len(), 3);
        let plain = LineBatch::from_lines("a\nb\n".to_owned());
        assert_eq!(lines(&plain), ["a", "b"]);
    }

    #[test]
    fn invalid_utf8_is_replaced_per_line() {
        let batch = LineBatch::from_terminated(b"ok\n\xff\xfe\r\n\xe2\x82\nend\xe2\n".to_vec());
        assert_eq!(
            lines(&batch),
            ["ok", "\u{fffd}\u{fffd}", "\u{fffd}", "end\u{fffd}"]
        );
    }

    #[test]
    fn exact_lines_keep_a_trailing_carriage_return() {
        let mut builder = BatchBuilder::default();
        builder.push_exact(b"piece\r");
        builder.push_line(b"line\r");
        builder.push_exact(b"");
        let batch = builder.finish().unwrap();
        assert_eq!(lines(&batch), ["piece\r", "line", ""]);
        assert!(BatchBuilder::default().finish().is_none());
    }

    #[test]
    fn lines_of_every_length_are_found_wherever_they_end() {
        // Lengths 0..=40 and some long ones, in a scrambled order, so line
        // ends fall at every offset within the 8-byte words and the tail.
        let mut state = 12_345u32;
        let mut expected = Vec::new();
        let mut bytes = Vec::new();
        for i in 0..2_000 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = if i % 97 == 0 {
                300
            } else {
                (state >> 16) as usize % 41
            };
            let line: String = (0..len).map(|j| (b'a' + (j % 26) as u8) as char).collect();
            bytes.extend_from_slice(line.as_bytes());
            bytes.extend_from_slice(if state & 1 == 0 { b"\n" } else { b"\r\n" });
            expected.push(line);
        }
        for cut in [bytes.len(), 1, 7, 8, 9, 15, 16, 17] {
            let Some(end) = bytes[..cut].iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            let batch = LineBatch::from_terminated(bytes[..=end].to_vec());
            let got = lines(&batch);
            assert_eq!(got.len(), batch.len());
            assert_eq!(got, expected[..got.len()], "batch of {} bytes", end + 1);
        }
    }

    #[test]
    fn an_empty_batch_iterates_nothing() {
        let batch = LineBatch::default();
        assert!(batch.is_empty());
        assert_eq!(batch.iter().next(), None);
        assert_eq!((&batch).into_iter().count(), 0);
    }
}
