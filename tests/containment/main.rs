//! Containers and teardown: no descendant outlives its group (cgroup v2,
//! subreaper or process group), group control and limits, the guardian, and
//! the cgroup and process-group layers under faults.

#[path = "../common/mod.rs"]
mod common;
mod groupctl_support;

mod cgroup_reuse;
mod group_control;
mod group_stop;
mod guardian;
mod limits;
mod no_orphans;
mod orphans;
mod raw_spawn;
mod reliability_cgroup;
mod reliability_pgroup;
mod spec_groups;
mod spec_platform;
mod subreaper;
mod teardown;
