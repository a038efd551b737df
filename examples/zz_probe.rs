use processkit::{Command, JobRunner, Mechanism};
use std::time::{Duration, Instant};
#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let pause: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    for mech in [Mechanism::ProcessGroup, Mechanism::Subreaper] {
        let runner = JobRunner::with_mechanism(mech);
        for _ in 0..5 {
            let mut r = runner.start(&Command::new("/bin/true")).await.unwrap();
            r.wait().await.unwrap();
        }
        let (mut start_t, mut wait_t, mut drop_t) = (0f64, 0f64, 0f64);
        for _ in 0..n {
            if pause > 0 {
                std::thread::sleep(Duration::from_millis(pause));
            }
            let t0 = Instant::now();
            let mut r = runner.start(&Command::new("/bin/true")).await.unwrap();
            let t1 = Instant::now();
            r.wait().await.unwrap();
            let t2 = Instant::now();
            drop(r);
            let t3 = Instant::now();
            start_t += (t1 - t0).as_secs_f64();
            wait_t += (t2 - t1).as_secs_f64();
            drop_t += (t3 - t2).as_secs_f64();
        }
        let us = |x: f64| x / n as f64 * 1e6;
        println!(
            "{mech}: start {:.0} µs, wait {:.0} µs, drop {:.0} µs",
            us(start_t),
            us(wait_t),
            us(drop_t)
        );
    }
}
