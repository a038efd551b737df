//! The spawn options, seen from inside the child under every Linux
//! mechanism, with and without a privilege drop: `arg0`, `umask`,
//! `priority`, `rlimit`, `pre_exec`; the Windows-only ones refused here;
//! `foreground` under a real terminal.
#![cfg(target_os = "linux")]

use std::time::Duration;

use processkit::{Command, Error, JobRunner, Mechanism, ProcessRunner, ProcessRunnerExt, Rlimit};

use crate::common::privileges::is_root;

fn runners() -> Vec<(Mechanism, JobRunner)> {
    [
        Mechanism::CgroupV2,
        Mechanism::Subreaper,
        Mechanism::ProcessGroup,
    ]
    .into_iter()
    .filter(|&m| {
        processkit::ProcessGroup::with_options(
            processkit::ProcessGroupOptions::default().mechanism(m),
        )
        .is_ok()
    })
    .map(|m| (m, JobRunner::with_mechanism(m)))
    .collect()
}

/// The same command as it is, and (as root) as user `nobody`.
fn variants(cmd: Command) -> Vec<(&'static str, Command)> {
    let mut all = vec![("as us", cmd.clone())];
    if is_root() {
        all.push(("as nobody", cmd.uid(65534).gid(65534)));
    }
    all
}

async fn stdout_of(runner: &JobRunner, cmd: &Command) -> String {
    runner
        .run(cmd)
        .await
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

#[tokio::test]
async fn each_option_is_seen_from_inside_the_child() {
    let script = "echo umask=$(umask); echo nofile=$(ulimit -n); echo core=$(ulimit -c); \
                  echo nice=$(nice)";
    let cmd = Command::new("sh")
        .args(["-c", script])
        .umask(0o027)
        .priority(7)
        .rlimit(Rlimit::NoFile, 200, 300)
        .rlimit(Rlimit::NoFile, 256, 256)
        .rlimit(Rlimit::Core, 0, 0);
    for (mechanism, runner) in runners() {
        for (who, cmd) in variants(cmd.clone()) {
            let out = stdout_of(&runner, &cmd).await;
            assert_eq!(
                out, "umask=0027\nnofile=256\ncore=0\nnice=7",
                "{mechanism}, {who}"
            );
        }
    }
}

#[tokio::test]
async fn arg0_names_the_program_it_runs() {
    let cmd = Command::new("cat")
        .arg0("renamed-cat")
        .arg("/proc/self/cmdline");
    for (mechanism, runner) in runners() {
        for (who, cmd) in variants(cmd.clone()) {
            let out = runner.output_bytes(&cmd).await.unwrap();
            assert_eq!(
                out.stdout(),
                b"renamed-cat\0/proc/self/cmdline\0",
                "{mechanism}, {who}"
            );
        }
    }
    let err = Command::new("true").arg0("a\0b").run().await.unwrap_err();
    assert!(matches!(err, Error::InvalidCommand { .. }), "{err:?}");
}

#[tokio::test]
async fn a_pre_exec_hook_runs_in_the_child_last() {
    // SAFETY: the hook only calls write(2) on a static buffer.
    let cmd = unsafe {
        Command::new("sh")
            .args(["-c", "echo program"])
            .pre_exec(|| {
                let line = b"hook\n";
                libc::write(1, line.as_ptr().cast(), line.len());
                Ok(())
            })
    };
    for (mechanism, runner) in runners() {
        let result = runner.run(&cmd).await;
        if mechanism == Mechanism::Subreaper {
            assert!(
                matches!(result, Err(Error::Unsupported { .. })),
                "{result:?}"
            );
            continue;
        }
        assert_eq!(result.unwrap(), "hook\nprogram", "{mechanism}");
    }
    // SAFETY: the hook returns an error without any call.
    let refusing = unsafe {
        Command::new("true").pre_exec(|| Err(std::io::Error::from_raw_os_error(libc::EACCES)))
    };
    let err = refusing.run().await.unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
}

#[tokio::test]
async fn windows_only_options_are_refused_here() {
    for cmd in [
        Command::new("true").creation_flags(0x10),
        Command::new("true").raw_arg("/c"),
    ] {
        let err = cmd.run().await.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    }
    // A zero flag asks for nothing.
    Command::new("true").creation_flags(0).run().await.unwrap();
}

/// Helper: run by the test below under `script`, which gives it a terminal.
#[test]
#[ignore = "helper process for the foreground test"]
fn helper_foreground() {
    if std::env::var_os("PK_FOREGROUND_HELPER").is_none() {
        return;
    }
    // `$5` is the process group, `$8` the terminal's foreground group. The
    // terminal is handed over right after the spawn, so a check made at the
    // child's very start may come first: look for up to a second.
    let check = "i=0; while [ $i -lt 50 ]; do read -r stat < /proc/self/stat; set -- $stat; \
                 if [ \"$5\" = \"$8\" ]; then echo foreground; exit; fi; \
                 sleep 0.02; i=$((i+1)); done; echo background";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for mechanism in [Mechanism::ProcessGroup, Mechanism::Subreaper] {
        let runner = JobRunner::with_mechanism(mechanism);
        for (name, cmd) in [
            ("plain", Command::new("sh").args(["-c", check])),
            (
                "foreground",
                Command::new("sh").args(["-c", check]).foreground(),
            ),
        ] {
            let out = runtime.block_on(runner.run(&cmd)).unwrap();
            println!("{mechanism} {name}={out}");
        }
    }
    // The terminal came back: we are its foreground group again.
    let ours = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = ours
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    println!(
        "ours={}",
        if fields[2] == fields[5] {
            "foreground"
        } else {
            "background"
        }
    );
}

#[tokio::test]
async fn foreground_hands_the_terminal_over_and_takes_it_back() {
    let exe = std::env::current_exe().unwrap();
    let command = format!(
        "{} --exact spawn_options::helper_foreground --ignored --nocapture --test-threads=1",
        exe.display()
    );
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("PK_FOREGROUND_HELPER", "1")
            .output_string(),
    )
    .await
    .expect("the helper under script finished")
    .unwrap();
    let text = out.stdout().replace('\r', "");
    for mechanism in ["process-group", "subreaper"] {
        assert!(
            text.contains(&format!("{mechanism} plain=background")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{mechanism} foreground=foreground")),
            "{text}"
        );
    }
    assert!(text.contains("ours=foreground"), "{text}");
}
