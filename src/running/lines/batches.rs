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
async fn a_large_handed_over_capture_gives_the_same_lines() {
    let mut data = Vec::new();
    for i in 0..200_000 {
        data.extend(format!("line {i}\n").as_bytes());
        if i == 150_000 {
            data.extend(b"bad \xff\r\n");
        }
    }
    data.extend(b"tail");
    let expected = reference(&data);
    let mut reader = LineReader::with_buffered(data.clone(), &b""[..]);
    let mut got = Vec::new();
    while let Some(line) = reader.next_line().await.unwrap() {
        got.push(line);
    }
    assert!(got == expected);
    assert_eq!(reader.delivered(), data.len() as u64);
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
