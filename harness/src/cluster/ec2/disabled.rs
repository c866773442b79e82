//! The backend without the AWS SDK (a build with `--no-default-features`): a run on it,
//! and an EC2 cleanup, say how to build it in. [`Fleet`] has no values.

use super::{Ec2Record, Ec2Spec};
use crate::error::HarnessError;
use crate::scenario::ClusterSpec;

fn not_built() -> HarnessError {
    HarnessError::Missing {
        what: "this harness was built without the ec2 backend".into(),
        hint: "build with the default features (`cargo build --release --workspace`: the AWS SDK, ~7 minutes of build on 2 cores)".into(),
    }
}

/// The run's instances: none can exist in this build.
pub enum Fleet {}

impl Fleet {
    /// Refuses: no AWS SDK in this build.
    pub fn start(_: &ClusterSpec, _: &Ec2Spec, _: &str) -> Result<Fleet, HarnessError> {
        Err(not_built())
    }

    /// Unreachable: there is no fleet.
    pub fn record(&self) -> Ec2Record {
        match *self {}
    }

    /// Unreachable: there is no fleet.
    pub fn inventory(&self, _: &Ec2Spec, _: std::path::PathBuf) -> crate::cluster::ssh::Inventory {
        match *self {}
    }

    /// Unreachable: there is no fleet.
    pub fn terminate(&mut self) -> Result<(), HarnessError> {
        match *self {}
    }
}

/// Refuses: no AWS SDK in this build.
pub fn reap(
    _: Option<&str>,
    _: &[String],
    _: Option<&str>,
) -> Result<Vec<(String, String)>, HarnessError> {
    Err(not_built())
}
