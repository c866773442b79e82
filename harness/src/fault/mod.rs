//! Fault machinery that is not a plain signal or firewall rule. Process faults (kill,
//! pause, …) are node operations in [`crate::cluster`]; partition, loss and bandwidth are
//! rules in [`crate::cluster::netns`]; here is the delaying proxy `delay` uses where the
//! kernel has no netem.

pub mod proxy;
