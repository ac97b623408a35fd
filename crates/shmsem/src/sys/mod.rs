//! Operating-system services other than waiting: byte-range locks that the kernel drops when a
//! process dies, process identity and liveness, the wall clock, users and groups, access control
//! lists, descriptors, and `fork` (its epoch, hooks and gate).
//!
//! This file is the one switch between operating systems: each OS has a folder of its own whose
//! items keep the same names and signatures, re-exported here, so that the rest of the crate
//! calls `sys::name` whatever the OS. Nothing here knows what a semaphore is.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use linux::*;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
compile_error!("shmsem's process liveness is only wired in for Linux and Android");

/// What a liveness probe of a process found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The process exists and is the one recorded (a stopped process is alive).
    Alive,
    /// The process is gone, or its pid now names another process.
    Dead,
}

/// Who a process is: enough to tell it from a later process that reuses its pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot.
    pub start_time: u64,
}
