//! Helpers shared by the cross-crate tests: the reference model, the seeded PRNG and workload generators.

pub mod model;
pub mod rng;
pub mod workload;
