//! Measurements that need the process to themselves: `stream_memory` reads
//! this process's VmHWM, so it is the only test that runs by default here;
//! `line_throughput` is ignored and runs only when asked for (`--ignored`).

mod line_throughput;
mod stream_memory;
