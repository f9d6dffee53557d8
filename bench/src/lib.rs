//! Shared workload builders for the benchmarks: accounts, transfer batches, account choice.
