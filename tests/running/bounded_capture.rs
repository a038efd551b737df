//! `max_output`: head and tail kept with a marker, `truncated()`, memory
//! bounded however much the child writes; and a started child nobody reads
//! never stalls on a full pipe.
// The children are Unix tools; /proc gives the memory high-water mark.
#![cfg(unix)]

use std::time::Duration;

use processkit::{Command, StreamExt};

const MARKER: &str = "\n[processkit: output truncated]\n";

#[tokio::test]
async fn a_bounded_capture_keeps_the_head_and_the_tail() {
    let cmd = Command::new("seq").args(["1", "300000"]);
    let whole = cmd.clone().output_string().await.unwrap();
    assert!(!whole.truncated());
    assert!(!whole.stdout().contains(MARKER));
    let kept = cmd.max_output(64 * 1024).output_string().await.unwrap();
    assert!(kept.truncated());
    let text = kept.stdout();
    assert!(text.starts_with("1\n2\n3\n"), "{}", &text[..20]);
    assert!(text.ends_with("299999\n300000\n"));
    assert!(text.contains(MARKER));
    // Within the bound, give or take the slack of the last read.
    assert!(text.len() < 200 * 1024, "kept {} bytes", text.len());
    // A bound the output fits in changes nothing.
    let small = Command::new("seq")
        .args(["1", "10"])
        .max_output(1 << 20)
        .output_string()
        .await
        .unwrap();
    assert!(!small.truncated());
    assert_eq!(small.stdout(), "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
}

const HELPER: &str = "PK_BOUNDED_HELPER";

/// Helper: 2 GiB through `output_bytes` with a 1 MiB bound; reports its
/// memory high-water mark (`VmHWM`, KiB).
#[test]
#[ignore = "helper process for the bounded-memory test"]
fn helper_flood() {
    if std::env::var_os(HELPER).is_none() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // PK_BOUNDED_BYTES overrides the size, for measuring by hand.
    let size = std::env::var("PK_BOUNDED_BYTES").unwrap_or_else(|_| "2147483648".into());
    let cmd = Command::new("head")
        .args(["-c", &size, "/dev/zero"])
        .max_output(1 << 20);
    let result = runtime.block_on(cmd.output_bytes()).unwrap();
    assert!(result.truncated());
    assert!(result.stdout().len() < 4 << 20);
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .to_owned();
    println!("PK_HWM_KIB {hwm}");
}

#[test]
fn memory_stays_bounded_whatever_the_child_writes() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "bounded_capture::helper_flood",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER, "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hwm: u64 = text
        .lines()
        .find_map(|l| l.split("PK_HWM_KIB ").nth(1))
        .expect("the helper's report")
        .trim()
        .parse()
        .unwrap();
    eprintln!("2 GiB through a 1 MiB bound: VmHWM {hwm} KiB");
    assert!(hwm < 16 * 1024, "VmHWM {hwm} KiB");
}

#[tokio::test]
async fn a_started_child_nobody_reads_finishes() {
    let mut run = Command::new("head")
        .args(["-c", "67108864", "/dev/zero"])
        .start()
        .await
        .unwrap();
    let code = tokio::time::timeout(Duration::from_secs(60), run.wait())
        .await
        .expect("the child stalled on a full pipe");
    assert_eq!(code.unwrap(), Some(0));
}

#[tokio::test]
async fn lines_read_late_start_with_what_was_kept() {
    let mut run = Command::new("sh")
        .args(["-c", "seq 1 3; sleep 0.3; echo 4"])
        .start()
        .await
        .unwrap();
    // The first lines are drained into the capture while nobody reads.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let lines: Vec<String> = run.stdout_lines().collect().await;
    assert_eq!(lines, ["1", "2", "3", "4"]);
}
