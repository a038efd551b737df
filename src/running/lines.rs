//! Line splitting over a pipe: `\n` and `\r\n` end a line, an unterminated
//! last line is still delivered, and a line longer than [`MAX_LINE`] is
//! delivered in `MAX_LINE`-byte pieces rather than buffered without bound.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::pump::{READ_CHUNK, decode_line};

/// The longest line delivered in one piece (1 MiB).
pub const MAX_LINE: usize = 1024 * 1024;

/// Reads lines from `R`, keeping unread bytes for whoever continues.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    reader: R,
    buf: Vec<u8>,
    /// Start of the unread part of `buf`.
    start: usize,
    /// How far past `start` we already searched for a newline.
    scanned: usize,
    eof: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(crate) fn new(reader: R) -> LineReader<R> {
        LineReader {
            reader,
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            scanned: 0,
            eof: false,
        }
    }

    /// The next line, or `None` at end-of-file.
    pub(crate) async fn next_line(&mut self) -> io::Result<Option<String>> {
        loop {
            let unread = &self.buf[self.start..];
            if let Some(pos) = unread[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.start + self.scanned + pos;
                return Ok(Some(self.take_until(end, 1)));
            }
            self.scanned = unread.len();
            if unread.len() >= MAX_LINE {
                return Ok(Some(self.take_until(self.start + MAX_LINE, 0)));
            }
            if self.eof {
                if unread.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(self.take_until(self.buf.len(), 0)));
            }
            self.fill().await?;
        }
    }

    fn take_until(&mut self, end: usize, skip: usize) -> String {
        let line = decode_line(&self.buf[self.start..end]);
        self.start = end + skip;
        self.scanned = 0;
        line
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        match self.reader.read(&mut self.buf[len..]).await {
            Ok(n) => {
                self.buf.truncate(len + n);
                self.eof = n == 0;
                Ok(())
            }
            Err(e) => {
                self.buf.truncate(len);
                self.eof = true;
                Err(e)
            }
        }
    }

    /// Unread buffered bytes and the reader, for draining what is left.
    pub(crate) fn into_parts(mut self) -> (Vec<u8>, R) {
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
}
