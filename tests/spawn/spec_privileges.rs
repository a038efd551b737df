//! The spec's "Environment and privileges" example, kept in its exact shape so
//! it must compile, plus runnable versions with programs that exist here.

use processkit::Command;

/// The spec example, verbatim in shape (its programs do not exist here).
#[allow(dead_code)]
async fn spec_environment_and_privileges() -> processkit::Result<()> {
    Command::new("worker")
        .inherit_env(["PATH", "HOME", "LANG"]) // allow-list on a cleared env
        .uid(1000)
        .gid(1000) // Unix: drop privileges
        .setsid() // Unix: new session
        .run()
        .await?;
    Command::new("helper")
        .create_no_window() // Windows: no console window
        .run()
        .await?;
    Command::new("daemonish")
        .kill_on_parent_death() // die with a SIGKILLed parent
        .start()
        .await?;
    Ok(())
}

#[cfg(unix)]
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|u| u.split_whitespace().next() == Some("0"))
            })
        })
        .unwrap_or(false)
}

#[cfg(unix)]
#[tokio::test]
async fn the_worker_runs_as_the_dropped_user_in_a_new_session_with_an_allow_listed_env() {
    if !is_root() {
        eprintln!("skipped: dropping privileges needs root");
        return;
    }
    let out = Command::new("sh")
        .args(["-c", "id -u; id -g; ps -o sid= -p $$ | tr -d ' '; echo $$; env | cut -d= -f1 | sort | tr '\\n' ' '"])
        .inherit_env(["PATH", "HOME", "LANG"])
        .uid(1000)
        .gid(1000)
        .setsid()
        .run()
        .await
        .expect("worker stand-in");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], ["1000", "1000"]);
    assert_eq!(lines[2], lines[3], "the child leads its own session");
    let names: Vec<&str> = lines[4].split_whitespace().collect();
    for name in &names {
        // sh adds a few of its own (PWD, SHLVL, _); nothing else of ours leaks.
        assert!(
            ["PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "OLDPWD"].contains(name),
            "unexpected variable {name} in {names:?}"
        );
    }
    assert!(names.contains(&"PATH"));
}

#[cfg(unix)]
#[tokio::test]
async fn a_kill_on_parent_death_child_starts_and_dies_with_its_handle() {
    let run = Command::new("sleep")
        .arg("1000")
        .kill_on_parent_death()
        .start()
        .await
        .expect("daemonish stand-in");
    let pid = run.id().expect("running");
    // A vfork-style spawn returns once exec has begun; the new name follows.
    let mut stat = String::new();
    for _ in 0..500 {
        stat = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        if stat.lines().any(|l| l == "Name:\tsleep") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(stat.lines().any(|l| l == "Name:\tsleep"), "{stat}");
    drop(run);
    let mut gone = false;
    for _ in 0..500 {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = state.rsplit(") ").next().and_then(|r| r.chars().next());
        if matches!(state, None | Some('Z') | Some('X')) {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(gone, "dropping the handle killed the child");
}
