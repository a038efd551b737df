//! The guardian's fixed-size table of process groups to kill when the owner
//! dies. It never allocates, so it is usable in a forked child, and it speaks
//! a tiny wire format: a positive pgid tracks, a negative one forgets.

use std::os::fd::OwnedFd;

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
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) pgid: i32,
    /// The leader's pidfd, if it came with one.
    pub(crate) pidfd: Option<OwnedFd>,
    /// The leader's start time, or 0 when unknown.
    pub(crate) start: u64,
}

const EMPTY: Entry = Entry {
    pgid: 0,
    pidfd: None,
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

    /// Applies one wire message that came with descriptor `pidfd`. `alive`
    /// tells whether a group still has members; it is consulted only to make
    /// room in a full table. Every descriptor the table lets go of
    /// (forgotten, replaced, refused) goes to `release`, which closes it.
    pub(crate) fn apply(
        &mut self,
        message: Message,
        pidfd: Option<OwnedFd>,
        alive: impl Fn(&Entry) -> bool,
        release: &mut impl FnMut(OwnedFd),
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
            if let Err(refused) = self.insert(entry, alive, release)
                && let Some(fd) = refused.pidfd
            {
                release(fd);
            }
        } else {
            if value < -1 {
                self.remove(-value, release);
            }
            if let Some(fd) = pidfd {
                release(fd);
            }
        }
    }

    /// Stores the entry, or hands it back when there is no room. A newer
    /// group with the same id replaces the old one: the old id was free, so
    /// the old group is gone.
    fn insert(
        &mut self,
        entry: Entry,
        alive: impl Fn(&Entry) -> bool,
        release: &mut impl FnMut(OwnedFd),
    ) -> Result<(), Entry> {
        self.remove(entry.pgid, release);
        if self.len == CAPACITY {
            self.retain(alive, release);
        }
        if self.len == CAPACITY {
            self.dropped += 1;
            return Err(entry);
        }
        self.entries[self.len] = entry;
        self.len += 1;
        Ok(())
    }

    fn remove(&mut self, pgid: i32, release: &mut impl FnMut(OwnedFd)) {
        if let Some(i) = self.as_slice().iter().position(|e| e.pgid == pgid) {
            self.drop_at(i, release);
        }
    }

    fn retain(&mut self, keep: impl Fn(&Entry) -> bool, release: &mut impl FnMut(OwnedFd)) {
        let mut i = 0;
        while i < self.len {
            if keep(&self.entries[i]) {
                i += 1;
            } else {
                self.drop_at(i, release);
            }
        }
    }

    fn drop_at(&mut self, i: usize, release: &mut impl FnMut(OwnedFd)) {
        self.len -= 1;
        self.entries.swap(i, self.len);
        let gone = std::mem::replace(&mut self.entries[self.len], EMPTY);
        if let Some(fd) = gone.pidfd {
            release(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsRawFd, RawFd};

    use super::*;

    fn pgids(t: &PgidTable) -> Vec<i32> {
        t.as_slice().iter().map(|e| e.pgid).collect()
    }

    /// A real descriptor, and its number to recognise it by once released.
    fn descriptor() -> (Option<OwnedFd>, RawFd) {
        let fd = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        let raw = fd.as_raw_fd();
        (Some(fd), raw)
    }

    #[test]
    fn tracks_and_forgets() {
        let mut closed = Vec::new();
        let mut release = |fd: OwnedFd| closed.push(fd.as_raw_fd());
        let mut t = Box::new(PgidTable::new());
        let (first, first_raw) = descriptor();
        t.apply(track(100, 5), first, |_| true, &mut release);
        t.apply(track(200, 0), None, |_| true, &mut release);
        assert_eq!(pgids(&t), [100, 200]);
        assert_eq!(t.as_slice()[0].start, 5);
        // A newer group with the same id replaces the old entry and its pidfd.
        let (second, second_raw) = descriptor();
        t.apply(track(100, 6), second, |_| true, &mut release);
        assert_eq!(pgids(&t), [200, 100]);
        t.apply(forget(100), None, |_| true, &mut release);
        assert_eq!(pgids(&t), [200]);
        // pgid 0, 1 and their negations are never tracked: they would broadcast.
        let mut refused = Vec::new();
        for bad in [0i32, 1, -1] {
            let (fd, raw) = descriptor();
            refused.push(raw);
            t.apply(encode(bad, 0), fd, |_| true, &mut release);
        }
        assert_eq!(pgids(&t), [200]);
        assert_eq!(closed[..2], [first_raw, second_raw]);
        assert_eq!(closed[2..], refused);
    }

    #[test]
    fn a_full_table_makes_room_by_dropping_dead_groups() {
        let closed = std::cell::Cell::new(0usize);
        let mut release = |_fd: OwnedFd| closed.set(closed.get() + 1);
        let mut t = Box::new(PgidTable::new());
        // Some of the groups that will be found dead carry a pidfd (a few
        // only, to stay far below the descriptor limit).
        let mut with_pidfd = 0;
        for pgid in 2..(CAPACITY as i32 + 2) {
            let pidfd = if pgid % 64 == 3 {
                with_pidfd += 1;
                descriptor().0
            } else {
                None
            };
            t.apply(track(pgid, 0), pidfd, |_| true, &mut release);
        }
        t.apply(track(99_999, 0), descriptor().0, |_| true, &mut release);
        assert_eq!(t.dropped, 1, "no room while every group lives");
        assert_eq!(closed.get(), 1, "a refused pidfd is released");
        t.apply(track(99_999, 0), None, |e| e.pgid % 2 == 0, &mut release);
        assert!(pgids(&t).contains(&99_999));
        assert!(
            t.as_slice()
                .iter()
                .all(|e| e.pgid % 2 == 0 || e.pgid == 99_999)
        );
        assert_eq!(t.len, 1 + CAPACITY / 2, "only the dead groups left");
        assert_eq!(closed.get(), 1 + with_pidfd, "dead groups' pidfds released");
    }
}
