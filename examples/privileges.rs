//! Privileges and parent death: an environment allow-list, a new session, a
//! privilege drop (when run as root), `kill_on_parent_death` and the guardian.
//!
//! Run it with `cargo run --example privileges` (as root to see the uid drop).

use processkit::{Command, GuardianStatus, ProcessGroup, guardian_status};

#[tokio::main]
async fn main() -> processkit::Result<()> {
    // Only the named variables reach the child.
    let env = Command::new("env")
        .inherit_env(["PATH"])
        .env("GREETING", "hi")
        .run()
        .await?;
    let mut names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    names.sort();
    println!("inherit_env:  the child sees {names:?}");

    // A new session: the child's session id is its own pid.
    let ids = Command::new("sh")
        .args(["-c", "echo $$ $(cut -d' ' -f6 /proc/$$/stat)"])
        .setsid()
        .run()
        .await?;
    println!("setsid:       pid and session id: {ids}");

    // A privilege drop, which needs root.
    let me = Command::new("id").arg("-u").run().await?;
    if me == "0" {
        let who = Command::new("id").uid(65534).gid(65534).run().await?;
        println!("uid/gid:      as nobody: {who}");
    } else {
        println!("uid/gid:      skipped (needs root; running as uid {me})");
    }

    // Dies with us even if we are SIGKILLed.
    let mut daemon = Command::new("sleep")
        .arg("30")
        .kill_on_parent_death()
        .start()
        .await?;
    println!("pdeathsig:    pid {:?} armed", daemon.id());
    daemon.kill()?;

    // The guardian covers the whole tree when we die abruptly.
    let _group = ProcessGroup::new()?;
    match guardian_status() {
        GuardianStatus::Running { pid } => println!("guardian:     running as pid {pid}"),
        other => println!("guardian:     {other:?}"),
    }
    Ok(())
}
