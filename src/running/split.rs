//! Where the next line of a byte buffer ends: `\n` and `\r\n` end a
//! line, an unterminated last line is still an item at end-of-file, and a
//! line longer than [`MAX_LINE`] is cut into `MAX_LINE`-byte pieces.

use super::pump::decode_line;

/// The longest line delivered in one piece (1 MiB).
pub const MAX_LINE: usize = 1024 * 1024;

/// The next item in the buffer: its bytes `start..content_end` (relative to
/// the unread part), and where the item after it begins.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub(super) content_end: usize,
    /// Where the item after this one begins.
    pub(super) next: usize,
    /// A piece cut from a long line keeps its bytes as they are; a whole
    /// line loses one trailing `\r`.
    pub(super) piece: bool,
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
pub(crate) fn find_span(unread: &[u8], scanned: &mut usize, eof: bool) -> Option<Span> {
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
pub(super) fn find_newline(bytes: &[u8]) -> Option<usize> {
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
