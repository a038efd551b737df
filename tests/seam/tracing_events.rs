//! The `tracing` feature: lifecycle events are emitted with program names,
//! pids and mechanisms, and never carry argument or environment values.
#![cfg(all(feature = "tracing", unix))]

use crate::common;

use std::time::Duration;

use common::CapturingSubscriber;
use processkit::{Command, RestartPolicy, RetryPolicy, Supervisor};

/// Whether `line` has `token` as a whole word (`message=spawn` is not `message=spawner_fallback`).
fn has_token(line: &str, token: &str) -> bool {
    line.split_whitespace().any(|word| word == token)
}

const SECRET_ARG: &str = "hunter2-argument-secret";
const SECRET_ENV: &str = "hunter2-environment-secret";

fn leaky(script: &str) -> Command {
    // The script echoes both secrets, so they also reach stdout and stderr.
    Command::new("sh")
        .args(["-c", script, SECRET_ARG])
        .env("PK_SECRET", SECRET_ENV)
}

const TEST: &str = "lifecycle_events_name_the_program_but_never_argv_or_env_values";
const IN_CHILD: &str = "PK_TRACING_EVENTS_CHILD";

/// Runs in a re-executed copy of this binary: tracing caches each callsite's
/// interest process-wide, and another test hitting a callsite while this one
/// installs its subscriber could leave that callsite disabled for it.
#[test]
fn lifecycle_events_name_the_program_but_never_argv_or_env_values() {
    if std::env::var_os(IN_CHILD).is_some() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        return runtime.block_on(events_carry_no_argv_or_env_values());
    }
    common::run_alone(TEST, &[(IN_CHILD, "1")]);
}

async fn events_carry_no_argv_or_env_values() {
    let capture = CapturingSubscriber::default();
    let _guard = tracing::subscriber::set_default(capture.clone());

    // spawn, exit, teardown
    let out = leaky("echo \"$0 $PK_SECRET\"").run().await.unwrap();
    assert!(
        out.contains(SECRET_ARG) && out.contains(SECRET_ENV),
        "the child saw the secrets"
    );
    // timeout
    let timed = leaky("echo \"$0 $PK_SECRET\" >&2; sleep 1000")
        .timeout(Duration::from_millis(100))
        .output_string()
        .await
        .unwrap();
    assert!(timed.timed_out());
    // retry
    let _ = leaky("echo \"$0 $PK_SECRET\" >&2; exit 3")
        .retry(
            RetryPolicy::new(2)
                .backoff(Duration::from_millis(1), 1.0)
                .retry_on_failed_exit(),
        )
        .run()
        .await
        .unwrap_err();
    // restart and storm
    let outcome = Supervisor::new(leaky("echo \"$0 $PK_SECRET\" >&2; exit 4"))
        .restart(RestartPolicy::OnCrash)
        .backoff(Duration::from_millis(1), 1.0)
        .failure_threshold(1.5)
        .storm_pause(Duration::from_millis(1))
        .max_restarts(2)
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.storms, 1);
    // cancel
    #[cfg(feature = "cancellation")]
    {
        let token = processkit::CancellationToken::new();
        let cmd = leaky("sleep 1000").cancel_on(token.clone());
        let job = tokio::spawn(async move { cmd.output_string().await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        token.cancel();
        assert!(job.await.unwrap().is_err());
    }

    let log = capture.0.lock().unwrap().clone();
    let mut expected = vec![
        "spawn", "exit", "teardown", "timeout", "retry", "restart", "storm",
    ];
    if cfg!(feature = "cancellation") {
        expected.push("cancel");
    }
    for event in expected {
        let found = log
            .lines()
            .any(|l| l.starts_with("processkit") && has_token(l, &format!("message={event}")));
        assert!(found, "no `{event}` event in:\n{log}");
    }
    let spawn = log.lines().find(|l| has_token(l, "message=spawn")).unwrap();
    assert!(spawn.contains("program=sh"), "{spawn}");
    assert!(spawn.contains("pid=Some("), "{spawn}");
    assert!(spawn.contains("mechanism="), "{spawn}");
    let exit = log.lines().find(|l| has_token(l, "message=exit")).unwrap();
    assert!(exit.contains("duration="), "{exit}");
    for secret in [SECRET_ARG, SECRET_ENV, "hunter2"] {
        assert!(
            !log.contains(secret),
            "`{secret}` leaked into events:\n{log}"
        );
    }
}
