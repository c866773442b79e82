//! Scenario files: the validated model ([`Scenario`], [`Step`], [`Action`], [`Expect`]) and
//! loading with located validation ([`load`]). Steps are parsed by their action families
//! ([`actions`]); running them is `crate::run::steps`.
//!
//! A scenario names the cluster, the workload, the steps and the expectations (see the
//! README for the format). Validation runs before anything starts and reports every
//! problem with file, line, column, field and a hint.

pub mod actions;
mod ec2;
mod kraft;
mod load;
mod model;
pub(crate) mod units;
mod warnings;

pub use actions::{
    Action, BrokerAction, ClusterIdSource, Cut, ElectionKind, FeatureTarget, KraftAction,
    MirrorAction, NetworkAction, NodeAction, PaceAction, PlannedPartition, ReassignPlan, ZkAction,
};
pub use ec2::{Ec2Spec, Reuse};
pub use kraft::{backend_override_refusal, on_kraft};
pub use load::{line_col, load, load_watch, parse, parse_watch};
pub use model::*;
pub use units::{check_broker_map, parse_byte_rate, parse_duration};
pub use warnings::warnings;
