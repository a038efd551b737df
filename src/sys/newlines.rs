//! Cuts `\n`-ended lines out of text that is already valid UTF-8, marking
//! the newlines of a block of bytes at once: 32 bytes with SSE2 on x86_64, an
//! 8-byte word elsewhere. A cut sits next to a `\n` (ASCII, so a char
//! boundary), so no cut re-checks UTF-8.

/// The lines of `text`, each without its `\n`; text after the last `\n`
/// is never returned.
#[derive(Debug, Clone)]
pub(crate) struct Newlines<'a> {
    text: &'a str,
    /// Where the next line starts: 0 or one past a `\n`.
    pos: usize,
    /// `mask` marks the newlines not yet returned among the `BLOCK` bytes
    /// from `block` (see [`block_mask`]). Short lines are found with a few
    /// bit operations, long ones with one `memchr` each.
    block: usize,
    mask: u64,
}

impl<'a> Newlines<'a> {
    #[inline]
    pub(crate) fn new(text: &'a str) -> Newlines<'a> {
        Newlines {
            text,
            pos: 0,
            block: 0,
            mask: block_mask(text.as_bytes(), 0),
        }
    }

    /// The next line without its `\n`, or `None` when no `\n` is left.
    #[inline]
    pub(crate) fn next_line(&mut self) -> Option<&'a str> {
        if self.mask == 0 {
            (self.block, self.mask) = next_block(self.text.as_bytes(), self.block + BLOCK);
            if self.mask == 0 {
                return None;
            }
        }
        let newline = self.block + first_marked(self.mask);
        self.mask &= self.mask - 1;
        debug_assert!(self.pos <= newline && self.text.as_bytes()[newline] == b'\n');
        // SAFETY: a mask marks exactly the `\n` bytes of its block that lie
        // inside `text` (`block_mask`, and the exhaustive test below for the
        // word version), so `text[newline]` is a `\n`: in bounds, and a char
        // boundary as an ASCII byte. `pos` is 0 or one past an earlier
        // newline (set only below), so a char boundary, and `pos <= newline`
        // because newlines come out in increasing order: the lowest mark
        // first, and a new block only past every mark of the one before.
        let line = unsafe { self.text.get_unchecked(self.pos..newline) };
        self.pos = newline + 1;
        Some(line)
    }
}

/// The first block at or after `from` that holds a newline, and its mask;
/// a mask of 0 when no newline is left. Out of line, so the per-line path
/// stays small enough to inline into the caller's loop (this runs once a
/// block), and returning in registers, so that path's state can stay in
/// them too.
#[inline(never)]
fn next_block(bytes: &[u8], from: usize) -> (usize, u64) {
    if from >= bytes.len() {
        return (bytes.len(), 0);
    }
    let ahead = block_mask(bytes, from);
    if ahead != 0 {
        return (from, ahead);
    }
    match memchr::memchr(b'\n', &bytes[from..]) {
        Some(at) => (from + at, block_mask(bytes, from + at)),
        None => (bytes.len(), 0),
    }
}

/// How many bytes one mask covers.
#[cfg(target_arch = "x86_64")]
const BLOCK: usize = 32;
#[cfg(not(target_arch = "x86_64"))]
const BLOCK: usize = 8;

/// The offset within its block of the newline `mask` marks first.
#[inline]
fn first_marked(mask: u64) -> usize {
    // SSE2 marks byte `i` with bit `i`, the word version with bit `8i + 7`.
    if cfg!(target_arch = "x86_64") {
        mask.trailing_zeros() as usize
    } else {
        (mask.trailing_zeros() / 8) as usize
    }
}

/// `bytes[at..at + N]`, padded with zeros (never a newline) past the end.
#[inline]
fn block_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut block = [0u8; N];
    match bytes.get(at..at + N) {
        Some(full) => block.copy_from_slice(full),
        None => {
            let tail = bytes.get(at..).unwrap_or_default();
            block[..tail.len()].copy_from_slice(tail);
        }
    }
    block
}

/// The newlines among `bytes[at..at + 32]`: bit `i` set exactly when
/// `bytes[at + i]` is `\n` (bytes past the end are not newlines).
#[cfg(target_arch = "x86_64")]
#[inline]
fn block_mask(bytes: &[u8], at: usize) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    // A whole block is read in place; only a short tail is copied, padded.
    let mut padded = [0u8; BLOCK];
    let block: &[u8; BLOCK] = match bytes.get(at..at + BLOCK) {
        Some(full) => full.try_into().unwrap_or(&padded),
        None => {
            padded = block_at(bytes, at);
            &padded
        }
    };
    // SAFETY: SSE2 is part of every x86_64 target; both loads read 16 bytes
    // inside `block`, a 32-byte array, and `_mm_loadu_si128` takes any
    // alignment.
    let (low, high) = unsafe {
        let newline = _mm_set1_epi8(b'\n' as i8);
        let base = block.as_ptr().cast::<__m128i>();
        let low = _mm_cmpeq_epi8(_mm_loadu_si128(base), newline);
        let high = _mm_cmpeq_epi8(_mm_loadu_si128(base.add(1)), newline);
        (_mm_movemask_epi8(low), _mm_movemask_epi8(high))
    };
    // Each movemask fills the low 16 bits of its result, one per byte.
    u64::from(low as u16) | (u64::from(high as u16) << 16)
}

#[cfg(not(target_arch = "x86_64"))]
use word_mask as block_mask;

/// The newlines among `bytes[at..at + 8]`: bit 7 of byte `i` set exactly
/// when `bytes[at + i]` is `\n` (bytes past the end are not newlines).
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline]
fn word_mask(bytes: &[u8], at: usize) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let word = u64::from_le_bytes(block_at(bytes, at));
    // A byte of `x` is zero exactly where `word` holds `\n`. Per byte,
    // `(x & 0x7f) + 0x7f` is at most 0xfe, so no carry reaches the next
    // byte, and its high bit is set exactly when the low seven bits of `x`
    // are not all zero; or'd with `x` itself, the high bit is clear exactly
    // for a zero byte.
    let x = word ^ 0x0a0a_0a0a_0a0a_0a0a;
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Vec<&str> {
        let mut lines = Newlines::new(text);
        std::iter::from_fn(|| lines.next_line()).collect()
    }

    /// The offsets of the `\n` bytes in `bytes[at..at + len]`.
    fn newlines_in(bytes: &[u8], at: usize, len: usize) -> Vec<usize> {
        (0..len)
            .filter(|&i| bytes.get(at + i) == Some(&b'\n'))
            .collect()
    }

    fn marked(mut mask: u64, first: impl Fn(u64) -> usize) -> Vec<usize> {
        let mut offsets = Vec::new();
        while mask != 0 {
            offsets.push(first(mask));
            mask &= mask - 1;
        }
        offsets
    }

    #[test]
    fn the_word_mask_marks_exactly_the_newlines_for_every_byte_value() {
        // Bytes do not carry into each other, so every value in every lane,
        // next to every kind of neighbour, covers all words.
        for lane in 0..8 {
            for value in 0..=255u8 {
                for neighbours in [0u8, b'\n', 0x0b, 0x80, 0xff] {
                    let mut word = [neighbours; 8];
                    word[lane] = value;
                    let mask = word_mask(&word, 0);
                    let expected = newlines_in(&word, 0, 8);
                    let got = marked(mask, |m| (m.trailing_zeros() / 8) as usize);
                    assert_eq!(got, expected, "lane {lane}, value {value:#x}");
                    assert_eq!(mask & !0x8080_8080_8080_8080, 0);
                }
            }
        }
    }

    #[test]
    fn the_block_mask_marks_exactly_the_newlines_of_its_block() {
        let mut state = 7u32;
        let bytes: Vec<u8> = (0..4096)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                [b'\n', b'a', 0x8a, 0x0b, 0xff, 0][(state >> 16) as usize % 6]
            })
            .collect();
        for at in 0..bytes.len() {
            let got = marked(block_mask(&bytes, at), first_marked);
            assert_eq!(got, newlines_in(&bytes, at, BLOCK), "at {at}");
        }
    }

    #[test]
    fn lines_end_at_each_newline_and_the_unterminated_tail_is_left() {
        assert_eq!(all(""), Vec::<&str>::new());
        assert_eq!(all("no newline"), Vec::<&str>::new());
        assert_eq!(all("\n"), [""]);
        assert_eq!(all("a\nbb\n\nccc"), ["a", "bb", ""]);
    }

    #[test]
    fn lines_of_every_length_around_the_block_size_are_found() {
        let lines: Vec<String> = (0..200).map(|i| "x".repeat(i % 70)).collect();
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        assert_eq!(all(&text), lines);
        assert_eq!(all(&format!("{text}tail")), lines);
    }

    #[test]
    fn multibyte_text_is_cut_only_at_newlines() {
        // Bytes of multibyte characters sit at every offset of a block; none
        // of them is 0x0a, so only real newlines end lines.
        let line = "é€𝄞ü\u{a0a}ñ";
        let text: String = (0..50)
            .map(|i| format!("{}\n", &line.repeat(i % 4)))
            .collect();
        let expected: Vec<String> = (0..50).map(|i| line.repeat(i % 4)).collect();
        assert_eq!(all(&text), expected);
    }

    #[test]
    fn long_lines_are_found_past_empty_blocks() {
        let long = "x".repeat(1000);
        let text = format!("{long}\nshort\n{long}");
        assert_eq!(all(&text), [long.as_str(), "short"]);
    }
}
