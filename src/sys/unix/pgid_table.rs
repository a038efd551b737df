//! The guardian's fixed-size table of process groups to kill when the owner
//! dies. It never allocates, so it is usable in a forked child, and it speaks
//! a tiny wire format: a positive pgid tracks, a negative one forgets.

/// How many live process groups the guardian can track at once.
pub(crate) const CAPACITY: usize = 4096;

/// One wire message: the pgid to track, or its negation to forget it.
pub(crate) type Message = [u8; 4];

/// Encodes "track `pgid`".
pub(crate) fn track(pgid: i32) -> Message {
    pgid.to_ne_bytes()
}

/// Encodes "forget `pgid`" (its group is gone or already killed).
pub(crate) fn forget(pgid: i32) -> Message {
    (-pgid).to_ne_bytes()
}

/// Process groups the owner has started and not yet torn down.
pub(crate) struct PgidTable {
    pgids: [i32; CAPACITY],
    len: usize,
    /// Groups that arrived while the table was full of live groups.
    pub(crate) dropped: usize,
}

impl PgidTable {
    pub(crate) const fn new() -> PgidTable {
        PgidTable {
            pgids: [0; CAPACITY],
            len: 0,
            dropped: 0,
        }
    }

    /// The tracked pgids.
    pub(crate) fn as_slice(&self) -> &[i32] {
        &self.pgids[..self.len]
    }

    /// Applies one wire message. `alive` tells whether a group still has
    /// members; it is consulted only to make room in a full table.
    pub(crate) fn apply(&mut self, message: Message, alive: impl Fn(i32) -> bool) {
        let value = i32::from_ne_bytes(message);
        if value > 1 {
            self.insert(value, alive);
        } else if value < -1 {
            self.remove(-value);
        }
    }

    fn insert(&mut self, pgid: i32, alive: impl Fn(i32) -> bool) {
        if self.as_slice().contains(&pgid) {
            return;
        }
        if self.len == CAPACITY {
            self.retain(alive);
        }
        if self.len == CAPACITY {
            self.dropped += 1;
            return;
        }
        self.pgids[self.len] = pgid;
        self.len += 1;
    }

    fn remove(&mut self, pgid: i32) {
        if let Some(i) = self.as_slice().iter().position(|&p| p == pgid) {
            self.len -= 1;
            self.pgids[i] = self.pgids[self.len];
        }
    }

    fn retain(&mut self, keep: impl Fn(i32) -> bool) {
        let mut i = 0;
        while i < self.len {
            if keep(self.pgids[i]) {
                i += 1;
            } else {
                self.len -= 1;
                self.pgids[i] = self.pgids[self.len];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_and_forgets() {
        let mut t = PgidTable::new();
        t.apply(track(100), |_| true);
        t.apply(track(200), |_| true);
        t.apply(track(100), |_| true);
        assert_eq!(t.as_slice(), &[100, 200]);
        t.apply(forget(100), |_| true);
        assert_eq!(t.as_slice(), &[200]);
        // pgid 0, 1 and their negations are never tracked: they would broadcast.
        for bad in [0i32, 1, -1] {
            t.apply(bad.to_ne_bytes(), |_| true);
        }
        assert_eq!(t.as_slice(), &[200]);
    }

    #[test]
    fn a_full_table_makes_room_by_dropping_dead_groups() {
        let mut t = Box::new(PgidTable::new());
        for pgid in 2..(CAPACITY as i32 + 2) {
            t.apply(track(pgid), |_| true);
        }
        t.apply(track(99_999), |_| true);
        assert_eq!(t.dropped, 1, "no room while every group lives");
        t.apply(track(99_999), |pgid| pgid % 2 == 0);
        assert!(t.as_slice().contains(&99_999));
        assert!(t.as_slice().iter().all(|p| p % 2 == 0 || *p == 99_999));
    }
}
