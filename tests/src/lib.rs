//! Helpers shared by the cross-crate tests: the reference model and workload generators.
