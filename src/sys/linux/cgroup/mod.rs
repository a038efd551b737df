//! cgroup v2: the per-process root and the cgroups below it. Callers name
//! this module only; the files below split what `/proc` says (`mount`), the
//! root's lifecycle (`root`, `sweep`) and the per-cgroup operations (`dir`).

mod baseline;
mod dir;
mod files;
mod mount;
mod root;
mod sweep;

pub(crate) use baseline::Baseline;
#[cfg(feature = "stats")]
pub(crate) use baseline::{keyed, number};
pub(crate) use dir::{Cgroup, KillSwitch, populated};
pub(crate) use files::remove_tree;
pub(crate) use mount::{find_cgroup2_mount, own_cgroup, start_time};
pub(crate) use root::{CgroupRoot, RootError, existing_root, root, root_name};
