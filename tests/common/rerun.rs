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
