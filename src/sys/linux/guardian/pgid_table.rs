//! The guardian's fixed-size table of process groups to kill when the owner
//! dies. It never allocates, so it is usable in a forked child, and it speaks
//! a tiny wire format: a positive pgid tracks, a negative one forgets.

/// How many live process groups the guardian can track at once.
pub(crate) const CAPACITY: usize = 4096;

/// One wire message: the pgid to track (with its leader's start time, 0 if
/// unknown), or its negation to forget it. A track may carry the leader's
/// pidfd alongside.
pub(crate) type Message = [u8; 12];

/// Encodes "track `pgid`", whose leader started at `start` (clock ticks after boot).
pub(crate) fn track(pgid: i32, start: u64) -> Message {
    encode(pgid, start)
}

/// Encodes "forget `pgid`" (its group is gone or already killed).
pub(crate) fn forget(pgid: i32) -> Message {
    encode(-pgid, 0)
}

fn encode(value: i32, start: u64) -> Message {
    let mut message = [0u8; 12];
    message[..4].copy_from_slice(&value.to_ne_bytes());
    message[4..].copy_from_slice(&start.to_ne_bytes());
    message
}

/// One tracked group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) pgid: i32,
    /// The leader's pidfd, or -1.
    pub(crate) pidfd: i32,
    /// The leader's start time, or 0 when unknown.
    pub(crate) start: u64,
}

const EMPTY: Entry = Entry {
    pgid: 0,
    pidfd: -1,
    start: 0,
};

/// Process groups the owner has started and not yet torn down.
pub(crate) struct PgidTable {
    entries: [Entry; CAPACITY],
    len: usize,
    /// Groups that arrived while the table was full of live groups.
    pub(crate) dropped: usize,
}

impl PgidTable {
    pub(crate) const fn new() -> PgidTable {
        PgidTable {
            entries: [EMPTY; CAPACITY],
            len: 0,
            dropped: 0,
        }
    }

    /// The tracked groups.
    pub(crate) fn as_slice(&self) -> &[Entry] {
        &self.entries[..self.len]
    }

    /// Applies one wire message that came with descriptor `pidfd` (-1 if
    /// none). `alive` tells whether a group still has members; it is consulted
    /// only to make room in a full table. Every descriptor the table lets go
    /// of (forgotten, replaced, refused) goes to `release`.
    pub(crate) fn apply(
        &mut self,
        message: Message,
        pidfd: i32,
        alive: impl Fn(&Entry) -> bool,
        release: &mut impl FnMut(i32),
    ) {
        let mut value = [0u8; 4];
        value.copy_from_slice(&message[..4]);
        let value = i32::from_ne_bytes(value);
        let mut start = [0u8; 8];
        start.copy_from_slice(&message[4..]);
        let start = u64::from_ne_bytes(start);
        if value > 1 {
            let entry = Entry {
                pgid: value,
                pidfd,
                start,
            };
            if !self.insert(entry, alive, release) && pidfd >= 0 {
                release(pidfd);
            }
        } else {
            if value < -1 {
                self.remove(-value, release);
            }
            if pidfd >= 0 {
                release(pidfd);
            }
        }
    }

    /// Whether the entry was stored. A newer group with the same id replaces
    /// the old one: the old id was free, so the old group is gone.
    fn insert(
        &mut self,
        entry: Entry,
        alive: impl Fn(&Entry) -> bool,
        release: &mut impl FnMut(i32),
    ) -> bool {
        self.remove(entry.pgid, release);
        if self.len == CAPACITY {
            self.retain(alive, release);
        }
        if self.len == CAPACITY {
            self.dropped += 1;
            return false;
        }
        self.entries[self.len] = entry;
        self.len += 1;
        true
    }

    fn remove(&mut self, pgid: i32, release: &mut impl FnMut(i32)) {
        if let Some(i) = self.as_slice().iter().position(|e| e.pgid == pgid) {
            self.drop_at(i, release);
        }
    }

    fn retain(&mut self, keep: impl Fn(&Entry) -> bool, release: &mut impl FnMut(i32)) {
        let mut i = 0;
        while i < self.len {
            if keep(&self.entries[i]) {
                i += 1;
            } else {
                self.drop_at(i, release);
            }
        }
    }

    fn drop_at(&mut self, i: usize, release: &mut impl FnMut(i32)) {
        if self.entries[i].pidfd >= 0 {
            release(self.entries[i].pidfd);
        }
        self.len -= 1;
        self.entries[i] = self.entries[self.len];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pgids(t: &PgidTable) -> Vec<i32> {
        t.as_slice().iter().map(|e| e.pgid).collect()
    }

    #[test]
    fn tracks_and_forgets() {
        let mut closed = Vec::new();
        let mut release = |fd| closed.push(fd);
        let mut t = Box::new(PgidTable::new());
        t.apply(track(100, 5), 7, |_| true, &mut release);
        t.apply(track(200, 0), -1, |_| true, &mut release);
        assert_eq!(pgids(&t), [100, 200]);
        assert_eq!(t.as_slice()[0].start, 5);
        // A newer group with the same id replaces the old entry and its pidfd.
        t.apply(track(100, 6), 8, |_| true, &mut release);
        assert_eq!(pgids(&t), [200, 100]);
        t.apply(forget(100), -1, |_| true, &mut release);
        assert_eq!(pgids(&t), [200]);
        // pgid 0, 1 and their negations are never tracked: they would broadcast.
        for bad in [0i32, 1, -1] {
            t.apply(encode(bad, 0), 9, |_| true, &mut release);
        }
        assert_eq!(pgids(&t), [200]);
        assert_eq!(closed, [7, 8, 9, 9, 9]);
    }

    #[test]
    fn a_full_table_makes_room_by_dropping_dead_groups() {
        let closed = std::cell::RefCell::new(Vec::new());
        let mut release = |fd| closed.borrow_mut().push(fd);
        let mut t = Box::new(PgidTable::new());
        for pgid in 2..(CAPACITY as i32 + 2) {
            t.apply(track(pgid, 0), pgid + 10_000, |_| true, &mut release);
        }
        t.apply(track(99_999, 0), 3, |_| true, &mut release);
        assert_eq!(t.dropped, 1, "no room while every group lives");
        assert_eq!(*closed.borrow(), [3], "a refused pidfd is released");
        t.apply(track(99_999, 0), 4, |e| e.pgid % 2 == 0, &mut release);
        let closed = closed.into_inner();
        assert!(pgids(&t).contains(&99_999));
        assert!(
            t.as_slice()
                .iter()
                .all(|e| e.pgid % 2 == 0 || e.pgid == 99_999)
        );
        assert_eq!(
            closed.len(),
            1 + CAPACITY / 2,
            "dead groups' pidfds released"
        );
    }
}
