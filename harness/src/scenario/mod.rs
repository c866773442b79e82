//! Scenario files: the model ([`Scenario`], [`Step`], [`Action`], [`Expect`]), loading with
//! located validation ([`load`]), and the step executor ([`executor`]).
//!
//! A scenario names the cluster, the workload, the steps and the expectations (see the
//! README for the format). Validation runs before anything starts and reports every
//! problem with file, line, column, field and a hint.

pub mod duration;
pub mod executor;
mod load;
mod model;

pub use load::{line_col, load, parse, ACTIONS};
pub use model::*;
