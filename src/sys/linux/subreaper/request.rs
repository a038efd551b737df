//! A spawn request for the zygote, flattened into one message: a header of
//! `u32` words, the supplementary groups, then NUL-terminated strings (argv,
//! environment, exec candidates, working directory). Decoding builds the
//! pointer arrays in a buffer made before fork, without allocating.

use std::ffi::{CStr, CString, c_char};

use crate::sys::spawn::SpawnSpec;
use crate::sys::spawn::setup::{JoinView, Rlimits, SetupView};

/// The largest request the zygote takes, well inside a socket's default
/// send buffer; a bigger spawn (a huge environment) is forked from the owner.
pub(super) const MAX_REQUEST: usize = 96 * 1024;
/// Room for every pointer a request of `MAX_REQUEST` bytes can need: one per
/// string (at least two bytes each) plus the terminators and `/bin/sh`.
pub(super) const MAX_POINTERS: usize = MAX_REQUEST / 2 + 8;

const MAGIC: u32 = 0x706b_7332; // "pks2"
/// The fixed words, then the resource limits: `(soft, hard)` as four words
/// per limit in the order of `setup::LIMITS`, whether set or not.
const FIXED_WORDS: usize = 13;
const LIMIT_WORDS: usize = 4 * 7;
const HEADER_WORDS: usize = FIXED_WORDS + LIMIT_WORDS;
/// No request is shorter: a shorter message to an idle shim means "exit".
pub(super) const MIN_REQUEST: usize = HEADER_WORDS * 4;

const SETSID: u32 = 1;
const GROUPS: u32 = 2;
const GID: u32 = 4;
const UID: u32 = 8;
const PARENT_DEATH: u32 = 16;
const CWD: u32 = 32;
const OWNER_CWD: u32 = 64;
const UMASK: u32 = 128;
const PRIORITY: u32 = 256;
/// The program takes its stdin (a pseudo-terminal) as its controlling terminal.
const CONTROLLING_TTY: u32 = 512;

/// The request for `spec`, or `None` when it is larger than `MAX_REQUEST`.
/// `owner_cwd` is our working directory, which the shim enters so the
/// program inherits it (the zygote's own is `/`).
/// `env` is the child's environment as the spawn prepared it; `ignored`
/// the signals we ignore (see `shim::ignored_here`).
pub(super) fn encode(
    spec: &SpawnSpec,
    env: &[CString],
    owner_cwd: Option<&CStr>,
    ignored: u64,
) -> Option<Vec<u8>> {
    let setup = &spec.setup;
    let groups = setup.groups.as_deref().unwrap_or_default();
    let flag = |on: bool, bit: u32| if on { bit } else { 0 };
    let flags = flag(setup.setsid, SETSID)
        | flag(setup.groups.is_some(), GROUPS)
        | flag(setup.gid.is_some(), GID)
        | flag(setup.uid.is_some(), UID)
        | flag(setup.parent_death.is_some(), PARENT_DEATH)
        | flag(setup.cwd.is_some(), CWD)
        | flag(owner_cwd.is_some(), OWNER_CWD)
        | flag(setup.umask.is_some(), UMASK)
        | flag(setup.priority.is_some(), PRIORITY)
        | flag(setup.controlling_tty, CONTROLLING_TTY);
    let limits_set = setup
        .rlimits
        .iter()
        .enumerate()
        .fold(0u32, |mask, (i, l)| mask | u32::from(l.is_some()) << i);
    let fixed: [u32; FIXED_WORDS] = [
        MAGIC,
        spec.argv.len() as u32,
        env.len() as u32,
        spec.candidates.len() as u32,
        groups.len() as u32,
        flags,
        setup.gid.unwrap_or(0),
        setup.uid.unwrap_or(0),
        ignored as u32,
        (ignored >> 32) as u32,
        setup.umask.unwrap_or(0),
        setup.priority.unwrap_or(0) as u32,
        limits_set,
    ];
    let limits = setup.rlimits.iter().flat_map(|l| {
        let (soft, hard) = l.unwrap_or((0, 0));
        [
            soft as u32,
            (soft >> 32) as u32,
            hard as u32,
            (hard >> 32) as u32,
        ]
    });
    let mut out = Vec::with_capacity(4096);
    for word in fixed
        .into_iter()
        .chain(limits)
        .chain(groups.iter().copied())
    {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    // The program sees `arg0` as its name when one is set; exec still
    // goes by the candidates.
    let argv0 = spec.arg0.iter().chain(spec.argv.first()).take(1);
    let strings = argv0
        .chain(spec.argv.iter().skip(1))
        .chain(env)
        .chain(&spec.candidates);
    let cwds = setup.cwd.as_deref().into_iter().chain(owner_cwd);
    for s in strings.map(CString::as_c_str).chain(cwds) {
        out.extend_from_slice(s.to_bytes_with_nul());
        if out.len() > MAX_REQUEST {
            return None;
        }
    }
    Some(out)
}

/// A decoded request: pointer arrays (in the caller's pointer buffer) and
/// the child's setup, borrowing the message.
pub(super) struct Decoded<'a> {
    pub(super) argv: *const *const c_char,
    pub(super) envp: *const *const c_char,
    pub(super) candidates: *const *const c_char,
    pub(super) script_argv: *mut *const c_char,
    pub(super) setup: SetupView<'a>,
    /// The owner's working directory, for the shim to enter.
    pub(super) owner_cwd: Option<&'a CStr>,
    /// The signals the owner ignores.
    pub(super) ignored: u64,
}

/// Decodes `message` (8-byte aligned) into `pointers`. No allocation: a
/// forked shim calls it. `None` for a malformed request. `parent` is the
/// shim's pid, for the parent-death signal.
pub(super) fn decode<'a>(
    message: &'a [u8],
    pointers: &mut [*const c_char],
    parent: libc::pid_t,
) -> Option<Decoded<'a>> {
    let word = |i: usize| -> Option<u32> {
        let bytes = message.get(i * 4..i * 4 + 4)?;
        Some(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    };
    if word(0)? != MAGIC {
        return None;
    }
    let (argc, envc, candc) = (word(1)? as usize, word(2)? as usize, word(3)? as usize);
    let (ngroups, flags) = (word(4)? as usize, word(5)?);
    let groups_at = HEADER_WORDS * 4;
    let strings_at = groups_at.checked_add(ngroups.checked_mul(4)?)?;
    let group_bytes = message.get(groups_at..strings_at)?;
    // SAFETY: the message is 8-byte aligned and the header a whole number
    // of words, so the groups start 4-byte aligned; `u32` has no invalid
    // bit patterns.
    let (_, groups, _) = unsafe { group_bytes.align_to::<libc::gid_t>() };
    if groups.len() != ngroups || argc == 0 {
        return None;
    }
    let cwd_count = usize::from(flags & CWD != 0);
    // argv, NULL, envp, NULL, candidates, NULL, /bin/sh, slot, argv[1..], NULL
    let needed = argc + envc + candc + 3 + 2 + argc;
    if needed > pointers.len() {
        return None;
    }
    let mut strings = message[strings_at..].split_inclusive(|&b| b == 0);
    let mut next = || -> Option<&'a CStr> { CStr::from_bytes_with_nul(strings.next()?).ok() };
    let mut at = 0;
    let mut array = |count: usize, pointers: &mut [*const c_char]| -> Option<usize> {
        let start = at;
        for _ in 0..count {
            pointers[at] = next()?.as_ptr();
            at += 1;
        }
        pointers[at] = std::ptr::null();
        at += 1;
        Some(start)
    };
    let argv = array(argc, pointers)?;
    let envp = array(envc, pointers)?;
    let candidates = array(candc, pointers)?;
    let cwd = if cwd_count == 1 { Some(next()?) } else { None };
    let owner_cwd = if flags & OWNER_CWD != 0 {
        Some(next()?)
    } else {
        None
    };
    let script = at;
    pointers[script] = c"/bin/sh".as_ptr();
    pointers[script + 1] = std::ptr::null();
    for i in 1..argc {
        pointers[script + 1 + i] = pointers[argv + i];
    }
    pointers[script + 1 + argc] = std::ptr::null();
    let base = pointers.as_mut_ptr();
    // SAFETY: every index is within `pointers` (checked against `needed`).
    let (argv, envp, candidates, script_argv) = unsafe {
        (
            base.add(argv).cast_const(),
            base.add(envp).cast_const(),
            base.add(candidates).cast_const(),
            base.add(script),
        )
    };
    Some(Decoded {
        argv,
        envp,
        candidates,
        script_argv,
        owner_cwd,
        ignored: u64::from(word(8)?) | u64::from(word(9)?) << 32,
        setup: SetupView {
            join: JoinView::None,
            setsid: flags & SETSID != 0,
            controlling_tty: flags & CONTROLLING_TTY != 0,
            groups: (flags & GROUPS != 0).then_some(groups),
            gid: (flags & GID != 0).then(|| word(6).unwrap_or(0)),
            uid: (flags & UID != 0).then(|| word(7).unwrap_or(0)),
            cwd,
            parent_death: (flags & PARENT_DEATH != 0).then_some(parent),
            umask: (flags & UMASK != 0).then(|| word(10).unwrap_or(0) as libc::mode_t),
            priority: (flags & PRIORITY != 0).then(|| word(11).unwrap_or(0) as i32),
            rlimits: decode_limits(&word)?,
        },
    })
}

/// The resource limits of a request's header.
fn decode_limits(word: &impl Fn(usize) -> Option<u32>) -> Option<Rlimits> {
    let set = word(FIXED_WORDS - 1)?;
    let mut limits: Rlimits = [None; 7];
    for (i, limit) in limits.iter_mut().enumerate() {
        if set & (1 << i) == 0 {
            continue;
        }
        let at = FIXED_WORDS + 4 * i;
        let soft = u64::from(word(at)?) | u64::from(word(at + 1)?) << 32;
        let hard = u64::from(word(at + 2)?) | u64::from(word(at + 3)?) << 32;
        *limit = Some((soft, hard));
    }
    Some(limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::spawn::linux::tests::spec;
    use crate::sys::spawn::setup::Join;
    use crate::sys::spawn::spec::Environment;

    fn read(pointers: *const *const c_char) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0.. {
            // SAFETY: a null-terminated array decode built.
            let p = unsafe { *pointers.add(i) };
            if p.is_null() {
                return out;
            }
            // SAFETY: each entry points at a NUL-terminated string.
            out.push(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
        }
        out
    }

    #[test]
    fn a_request_round_trips() {
        let env = Environment::Exact(vec![c"A=1".into(), c"B=2".into()]);
        let mut plan = spec(c"/bin/echo", &[c"echo", c"hi"], env, Join::Subreaper);
        plan.setup.setsid = true;
        plan.setup.controlling_tty = true;
        plan.setup.groups = Some(vec![5, 6]);
        plan.setup.uid = Some(1000);
        plan.setup.cwd = Some(c"/tmp".into());
        plan.setup.parent_death = Some(1);
        plan.setup.umask = Some(0o027);
        plan.setup.priority = Some(-3);
        plan.setup.rlimits[4] = Some((64, u64::MAX));
        plan.arg0 = Some(c"renamed".into());
        let Environment::Exact(vars) = &plan.env else {
            unreachable!("built with an exact environment")
        };
        let bytes = encode(&plan, vars, Some(c"/home"), 1 << 40 | 1).unwrap();
        let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: `aligned` has at least `bytes.len()` bytes.
        let message = unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), aligned.as_mut_ptr().cast(), bytes.len());
            std::slice::from_raw_parts(aligned.as_ptr().cast::<u8>(), bytes.len())
        };
        let mut pointers = vec![std::ptr::null(); 64];
        let decoded = decode(message, &mut pointers, 77).unwrap();
        assert_eq!(read(decoded.argv), ["renamed", "hi"]);
        assert_eq!(read(decoded.envp), ["A=1", "B=2"]);
        assert_eq!(read(decoded.candidates), ["/bin/echo"]);
        assert_eq!(read(decoded.script_argv.cast_const()), ["/bin/sh"]);
        let setup = decoded.setup;
        assert!(setup.setsid && setup.controlling_tty);
        assert_eq!(setup.groups, Some(&[5, 6][..]));
        assert_eq!((setup.gid, setup.uid), (None, Some(1000)));
        assert_eq!(setup.cwd, Some(c"/tmp"));
        assert_eq!(setup.parent_death, Some(77));
        assert_eq!((setup.umask, setup.priority), (Some(0o027), Some(-3)));
        assert_eq!(setup.rlimits[4], Some((64, u64::MAX)));
        assert_eq!(setup.rlimits.iter().flatten().count(), 1);
        assert_eq!(decoded.owner_cwd, Some(c"/home"));
        assert_eq!(decoded.ignored, 1 << 40 | 1);
        assert!(decode(&message[..20], &mut pointers, 77).is_none());
    }
}
