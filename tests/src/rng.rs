//! The seeded PRNG of the simulations: the one in `bursar_wal::sim`, so a seed means the same everywhere.

pub use bursar_wal::sim::Rng;
