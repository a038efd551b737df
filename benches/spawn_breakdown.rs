//! Where a contained spawn's time goes: the tiny child started by tokio
//! plain (posix_spawn), with a no-op pre-exec hook (forces fork+exec), with a
//! hook that joins an existing cgroup (fork + migration), next to a bare
//! cgroup mkdir+rmdir and processkit's own start+wait, `probe` (stderr
//! piped) and `exit_code` (no pipes), in a cgroup and in a process group.

mod support;

// pre_exec hooks exist on Unix only.
#[cfg(unix)]
mod breakdown {
    use std::fs::File;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::time::Instant;

    use super::support::{self, Contest, size};
    use processkit::{Command, JobRunner, Mechanism, Stdio};

    const NAMES: [&str; 9] = [
        "tokio status (posix_spawn)",
        "tokio status + no-op pre_exec (fork)",
        "tokio status + pre_exec joins cgroup",
        "cgroup mkdir + rmdir only",
        "processkit start+wait (cgroup v2)",
        "processkit probe, stderr piped (cgroup v2)",
        "processkit exit_code, no pipes (cgroup v2)",
        "processkit start+wait (process group)",
        "processkit start+wait, no pipes (pgroup)",
    ];

    /// The tiny child with stdout and stderr sent to /dev/null: no pipes
    /// to make, register and drain, as with tokio's `status()`.
    fn without_pipes(tiny: &Path) -> Command {
        Command::new(tiny)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
    }

    async fn in_process_group(cmd: &Command) {
        let runner = JobRunner::with_mechanism(Mechanism::ProcessGroup);
        let mut run = runner.start(cmd).await.unwrap();
        assert_eq!(run.wait().await.unwrap(), Some(0));
    }

    /// A cgroup made by hand for the join contender, removed on drop.
    struct JoinCgroup {
        dir: PathBuf,
        procs: File,
    }

    impl Drop for JoinCgroup {
        fn drop(&mut self) {
            let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
            for _ in 0..1000 {
                if std::fs::remove_dir(&self.dir).is_ok() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    async fn once(which: usize, tiny: &Path, join: &JoinCgroup, scratch: &Path, round: usize) {
        match which {
            0 => assert!(
                tokio::process::Command::new(tiny)
                    .status()
                    .await
                    .unwrap()
                    .success()
            ),
            1 => {
                let mut cmd = tokio::process::Command::new(tiny);
                // SAFETY: the hook does nothing.
                unsafe {
                    cmd.pre_exec(|| Ok(()));
                }
                assert!(cmd.status().await.unwrap().success());
            }
            2 => {
                let mut cmd = tokio::process::Command::new(tiny);
                let procs = join.procs.try_clone().unwrap();
                // SAFETY: the hook makes one write(2) on a descriptor opened before fork.
                unsafe {
                    cmd.pre_exec(move || (&procs).write_all(b"0"));
                }
                assert!(cmd.status().await.unwrap().success());
            }
            3 => {
                let dir = scratch.join(format!("pk-bench-mkdir-{}-{round}", std::process::id()));
                std::fs::create_dir(&dir).unwrap();
                std::fs::remove_dir(&dir).unwrap();
            }
            4 => {
                let mut run = Command::new(tiny).start().await.unwrap();
                assert_eq!(run.wait().await.unwrap(), Some(0));
            }
            5 => assert!(Command::new(tiny).probe().await.unwrap()),
            6 => assert_eq!(Command::new(tiny).exit_code().await.unwrap(), 0),
            7 => in_process_group(&Command::new(tiny)).await,
            _ => in_process_group(&without_pipes(tiny)).await,
        }
    }

    pub fn main() {
        support::header("spawn_breakdown");
        let Some(parent) = support::writable_cgroup_dir() else {
            println!("no writable cgroup v2 here: nothing to break down");
            return;
        };
        let tiny = support::tiny_child();
        let dir = parent.join(format!("pk-bench-join-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("create the join cgroup");
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
            .expect("open cgroup.procs");
        let join = JoinCgroup { dir, procs };
        let rounds = size(300, 20);
        let rt = support::runtime();
        rt.block_on(async {
            let mut contest = Contest::new("spawn+wait cost breakdown, small parent", &NAMES);
            for round in 0..rounds {
                for which in contest.order(round) {
                    let begun = Instant::now();
                    once(which, &tiny, &join, &parent, round).await;
                    contest.record(which, begun.elapsed());
                }
            }
            contest.report(0, None);
        });
        drop(join);
    }
}

fn main() {
    #[cfg(unix)]
    breakdown::main();
    #[cfg(not(unix))]
    println!("spawn_breakdown measures fork-based pre-exec hooks: Unix only");
}
