//! Job containers below the public API: the member list covers the whole
//! tree, freezing suspends every thread, and adoption pulls a process in.

use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::sync::Arc;
use std::time::{Duration, Instant};

use windows_sys::Win32::System::Threading::{
    OpenThread, ResumeThread, SuspendThread, THREAD_SUSPEND_RESUME,
};

use crate::sys::spawn::{self, EnvPlan, SpawnOptions, SpawnSpec, StartedChild, StdinPlan};
use crate::sys::{Container, Slot};

const GENEROUS: Duration = Duration::from_secs(30);

/// `cmd.exe` running `ping.exe` for two minutes (a child and a grandchild),
/// started in a slot of `container` through the sys spawn path itself.
async fn sleeper_tree(container: &Container) -> (StartedChild, Slot) {
    let args = ["/c".into(), "ping -n 120 127.0.0.1 > nul".into()];
    let spec = SpawnSpec::new(
        "cmd".as_ref(),
        &args,
        &EnvPlan::default(),
        None,
        StdinPlan::Null,
        false,
        &SpawnOptions::default(),
    )
    .expect("a valid spec");
    let mut slot = container.slot(crate::signal::Signal::Term).expect("a slot");
    let started = spawn::start(spec, &mut slot).await.expect("cmd starts");
    (started, slot)
}

fn group() -> Arc<Container> {
    Arc::new(Container::new(None, false).expect("a job container"))
}

/// Polls (bounded) until `check` passes.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + GENEROUS;
    while !check() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The suspend count of every thread of `pid`, read by suspending and
/// immediately resuming each one.
fn suspend_counts(pid: u32) -> Vec<u32> {
    let mut counts = Vec::new();
    for tid in super::threads::thread_ids(|owner| owner == pid).unwrap() {
        // SAFETY: OpenThread takes plain integers; a null result is checked.
        let raw = unsafe { OpenThread(THREAD_SUSPEND_RESUME, 0, tid) };
        if raw.is_null() {
            continue;
        }
        // SAFETY: `raw` is a fresh handle that nothing else owns.
        let thread = unsafe { OwnedHandle::from_raw_handle(raw) };
        // SAFETY: the handle is valid and has THREAD_SUSPEND_RESUME access.
        let previous = unsafe { SuspendThread(thread.as_raw_handle()) };
        // SAFETY: as above; this undoes the probe's own suspend.
        unsafe { ResumeThread(thread.as_raw_handle()) };
        counts.push(previous);
    }
    counts
}

#[tokio::test]
async fn members_list_the_whole_tree_until_it_is_killed() {
    let container = group();
    let run = sleeper_tree(&container).await;
    let child = run.0.child.id().unwrap();
    eventually("cmd.exe and ping.exe are both members", || {
        let members = container.members().unwrap();
        members.contains(&child) && members.len() >= 2
    })
    .await;
    assert!(container.is_populated().unwrap());
    container.kill_all().unwrap();
    eventually("the job is empty", || {
        container.members().unwrap().is_empty()
    })
    .await;
}

#[tokio::test]
async fn freezing_suspends_every_thread_and_thawing_undoes_it() {
    let container = group();
    let _run = sleeper_tree(&container).await;
    eventually("two members", || container.members().unwrap().len() >= 2).await;
    let members = container.members().unwrap();
    container.set_frozen(true).unwrap();
    for &pid in &members {
        let counts = suspend_counts(pid);
        assert!(
            !counts.is_empty() && counts.iter().all(|&c| c >= 1),
            "{pid}: {counts:?}"
        );
    }
    container.set_frozen(false).unwrap();
    for &pid in &members {
        let counts = suspend_counts(pid);
        assert!(counts.iter().all(|&c| c == 0), "{pid}: {counts:?}");
    }
    container.kill_all().unwrap();
}

/// Kills a process we started outside any job, if a test failed before the job did.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn an_adopted_process_dies_with_the_job() {
    let mut outsider = KillOnDrop(
        std::process::Command::new("ping")
            .args(["-n", "120", "127.0.0.1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let container = group();
    container.adopt(outsider.0.id()).unwrap();
    assert!(container.members().unwrap().contains(&outsider.0.id()));
    container.kill_all().unwrap();
    eventually("the adopted process exited", || {
        outsider.0.try_wait().unwrap().is_some()
    })
    .await;
}

#[test]
fn a_process_cannot_adopt_itself() {
    let container = group();
    let err = container.adopt(std::process::id()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn a_single_run_container_kills_its_tree_on_drop() {
    let container = Arc::new(Container::new(None, true).unwrap());
    let run = sleeper_tree(&container).await;
    eventually("two members", || container.members().unwrap().len() >= 2).await;
    let members = container.members().unwrap();
    let watched: Vec<OwnedHandle> = members.iter().map(|&p| open(p)).collect();
    drop(run);
    drop(container);
    eventually("every member exited", || watched.iter().all(exited)).await;
}

fn open(pid: u32) -> OwnedHandle {
    use windows_sys::Win32::System::Threading::{OpenProcess, PROCESS_SYNCHRONIZE};
    // SAFETY: OpenProcess takes plain integers; a null result is checked.
    let raw = unsafe { OpenProcess(PROCESS_SYNCHRONIZE, 0, pid) };
    assert!(!raw.is_null(), "pid {pid} is gone already");
    // SAFETY: `raw` is a fresh handle that nothing else owns.
    unsafe { OwnedHandle::from_raw_handle(raw) }
}

fn exited(process: &OwnedHandle) -> bool {
    use windows_sys::Win32::Foundation::WAIT_OBJECT_0;
    use windows_sys::Win32::System::Threading::WaitForSingleObject;
    // SAFETY: the handle is valid and has SYNCHRONIZE access.
    unsafe { WaitForSingleObject(process.as_raw_handle(), 0) == WAIT_OBJECT_0 }
}

#[cfg(feature = "limits")]
fn job_of(container: &Container) -> &super::JobContainer {
    let crate::sys::ContainerKind::Job(job) = &container.kind;
    job
}

#[cfg(feature = "stats")]
#[tokio::test]
async fn accounting_counts_the_whole_tree() {
    let container = group();
    let _run = sleeper_tree(&container).await;
    eventually("two active processes", || {
        container.usage().unwrap().active_process_count >= 2
    })
    .await;
    let usage = container.usage().unwrap();
    assert!(usage.total_processes.unwrap() >= 2);
    assert_eq!(
        usage.cpu_time,
        Some(usage.user_cpu_time.unwrap() + usage.system_cpu_time.unwrap())
    );
    container.kill_all().unwrap();
    eventually("no active process", || {
        container.usage().unwrap().active_process_count == 0
    })
    .await;
}

#[cfg(feature = "limits")]
#[test]
#[ignore = "Wine 8 reports no limit flags back when queried; real Windows only"]
fn limits_are_written_to_the_job_without_losing_kill_on_close() {
    use windows_sys::Win32::System::JobObjects::{
        JOB_OBJECT_LIMIT_ACTIVE_PROCESS, JOB_OBJECT_LIMIT_JOB_MEMORY,
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    };
    let container = group();
    let job = job_of(&container);
    let limits = crate::sys::Limits {
        memory_max: Some(256 << 20),
        max_processes: Some(8),
        cpu_quota: None,
    };
    job.set_limits(&limits).unwrap();
    let info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = job.job.query().unwrap();
    let flags = info.BasicLimitInformation.LimitFlags;
    for flag in [
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        JOB_OBJECT_LIMIT_JOB_MEMORY,
        JOB_OBJECT_LIMIT_ACTIVE_PROCESS,
    ] {
        assert_eq!(flags & flag, flag, "flags {flags:#x} lack {flag:#x}");
    }
    assert_eq!(info.JobMemoryLimit, 256 << 20);
    assert_eq!(info.BasicLimitInformation.ActiveProcessLimit, 8);
}

#[cfg(feature = "limits")]
#[tokio::test]
async fn a_job_with_limits_still_kills_its_processes_on_close() {
    let job = super::job::Job::new(true).unwrap();
    let limits = crate::sys::Limits {
        memory_max: Some(256 << 20),
        max_processes: Some(8),
        cpu_quota: None,
    };
    job.set_limits(&limits).unwrap();
    let mut outsider = KillOnDrop(
        std::process::Command::new("ping")
            .args(["-n", "120", "127.0.0.1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let process = super::process::open_for_job(outsider.0.id()).unwrap();
    job.assign(std::os::windows::io::AsHandle::as_handle(&process))
        .unwrap();
    drop(job);
    eventually("closing the job killed its process", || {
        outsider.0.try_wait().unwrap().is_some()
    })
    .await;
}

#[cfg(feature = "limits")]
#[test]
#[ignore = "Wine 8 does not implement job CPU rate control; real Windows only"]
fn a_cpu_quota_is_accepted_by_the_job() {
    let container = group();
    let limits = crate::sys::Limits {
        cpu_quota: Some(0.5),
        ..Default::default()
    };
    job_of(&container).set_limits(&limits).unwrap();
}

#[cfg(feature = "limits")]
#[test]
fn cpu_quota_converts_against_the_host_cpu_count() {
    use super::accounting::cpu_rate;
    assert_eq!(cpu_rate(0.5, 4), 1250);
    assert_eq!(cpu_rate(2.0, 4), 5000);
    assert_eq!(cpu_rate(8.0, 4), 10_000);
    assert_eq!(cpu_rate(0.0, 4), 1);
    assert_eq!(cpu_rate(1.0, 0), 10_000);
}
