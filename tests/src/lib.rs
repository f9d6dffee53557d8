//! Helpers shared by the cross-crate tests: the reference model, the seeded PRNG, workload generators and the common setup batch.

pub mod exchange_model;
pub mod history;
pub mod model;
pub mod orders_model;
pub mod rng;
pub mod setup;
pub mod workload;
