//! Re-running one test of this binary in a fresh process: libtest names a test
//! by its module path, which the caller need not spell out.

use std::sync::OnceLock;

/// The full libtest name (`module::name`) of this binary's test `name`, for
/// `--exact`; `name` may already be a full name. Panics unless exactly one
/// test ends in `name`.
pub fn test_named(name: &str) -> String {
    static ALL: OnceLock<Vec<String>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let out = std::process::Command::new(exe)
            .args(["--list", "--format", "terse"])
            .env_remove("RUST_TEST_THREADS")
            .output()
            .expect("list this binary's tests");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_suffix(": test"))
            .map(str::to_owned)
            .collect()
    });
    let suffix = format!("::{name}");
    let found: Vec<&String> = all
        .iter()
        .filter(|t| *t == name || t.ends_with(&suffix))
        .collect();
    match found.as_slice() {
        [one] => (*one).clone(),
        _ => panic!("test {name:?}: {} matches in this binary", found.len()),
    }
}

/// Runs this binary's test `name` alone in a fresh process with `env` added,
/// and fails unless it ran and passed (its output goes into the message).
pub fn run_alone(name: &str, env: &[(&str, &str)]) {
    let out = std::process::Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "--exact",
            &test_named(name),
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().copied())
        .output()
        .expect("re-run this test binary");
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} {env:?}:\n{text}\n{errors}"
    );
}
