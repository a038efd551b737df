//! Cuts `\n`-ended lines out of text that is already valid UTF-8, found
//! eight bytes at a time. Each cut sits next to a `\n` (ASCII, so a char
//! boundary), checked against the byte itself, so no cut re-checks UTF-8.

/// The lines of `text`, each without its `\n`; text after the last `\n`
/// is never returned.
#[derive(Debug, Clone)]
pub(crate) struct Newlines<'a> {
    text: &'a str,
    /// Where the next line starts: 0 or one past a `\n`.
    pos: usize,
    /// `mask` marks the newlines among the 8 bytes from `word`: bit 7 of
    /// byte `i` stands for `text[word + i]`. Short lines are found with a
    /// few bit operations, long ones with one `memchr` each.
    word: usize,
    mask: u64,
}

impl<'a> Newlines<'a> {
    #[inline]
    pub(crate) fn new(text: &'a str) -> Newlines<'a> {
        Newlines {
            text,
            pos: 0,
            word: 0,
            mask: newlines_in_word(text.as_bytes(), 0),
        }
    }

    /// The next line without its `\n`, or `None` when no `\n` is left.
    #[inline]
    pub(crate) fn next_line(&mut self) -> Option<&'a str> {
        while self.mask == 0 {
            if !self.skip_to_next_newline() {
                return None;
            }
        }
        let newline = self.word + (self.mask.trailing_zeros() / 8) as usize;
        self.mask &= self.mask - 1;
        // Both checks hold by construction; they keep the cut below sound
        // whatever the mask says, for about the cost of one char-boundary check.
        if self.text.as_bytes().get(newline) != Some(&b'\n') || self.pos > newline {
            return None;
        }
        // SAFETY: `pos <= newline < text.len()` (checked above, `get`
        // found the byte); `text[newline]` is `\n`, an ASCII byte, so a
        // char boundary, and `pos` is 0 or one past an earlier `\n` (it is
        // only ever set below), so a char boundary too.
        let line = unsafe { self.text.get_unchecked(self.pos..newline) };
        self.pos = newline + 1;
        Some(line)
    }

    /// Loads the word holding the next newline after the current word:
    /// `false` when there is none.
    #[inline]
    fn skip_to_next_newline(&mut self) -> bool {
        let bytes = self.text.as_bytes();
        let from = self.word + 8;
        if from >= bytes.len() {
            return false;
        }
        let ahead = newlines_in_word(bytes, from);
        if ahead != 0 {
            self.word = from;
            self.mask = ahead;
            return true;
        }
        match memchr::memchr(b'\n', &bytes[from..]) {
            Some(at) => {
                self.word = from + at;
                self.mask = newlines_in_word(bytes, self.word);
                true
            }
            None => {
                self.word = bytes.len();
                false
            }
        }
    }
}

/// The newline bytes among `bytes[at..at + 8]`, as a mask with bit 7 of
/// byte `i` set when `bytes[at + i]` is `\n` (bytes past the end count as
/// not newlines).
#[inline]
fn newlines_in_word(bytes: &[u8], at: usize) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let word = match bytes.get(at..at + 8) {
        Some(eight) => u64::from_le_bytes(eight.try_into().unwrap_or([0; 8])),
        None => {
            let mut padded = [0u8; 8];
            let tail = bytes.get(at..).unwrap_or_default();
            padded[..tail.len()].copy_from_slice(tail);
            u64::from_le_bytes(padded)
        }
    };
    // A byte of `x` is zero exactly where `word` holds `\n`; the high bit
    // of each byte of the result is set exactly for those zero bytes.
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

    #[test]
    fn lines_end_at_each_newline_and_the_unterminated_tail_is_left() {
        assert_eq!(all(""), Vec::<&str>::new());
        assert_eq!(all("no newline"), Vec::<&str>::new());
        assert_eq!(all("\n"), [""]);
        assert_eq!(all("a\nbb\n\nccc"), ["a", "bb", ""]);
    }

    #[test]
    fn multibyte_text_is_cut_only_at_newlines() {
        // Bytes of multibyte characters sit at every offset of a word; none
        // of them is 0x0a, so only real newlines end lines.
        let line = "é€𝄞ü\u{a0a}ñ";
        let text: String = (0..50)
            .map(|i| format!("{}\n", &line.repeat(i % 4)))
            .collect();
        let expected: Vec<String> = (0..50).map(|i| line.repeat(i % 4)).collect();
        assert_eq!(all(&text), expected);
    }

    #[test]
    fn long_lines_are_found_past_empty_words() {
        let long = "x".repeat(1000);
        let text = format!("{long}\nshort\n{long}");
        assert_eq!(all(&text), [long.as_str(), "short"]);
    }
}
