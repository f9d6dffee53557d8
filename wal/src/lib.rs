//! The write-ahead log: segmented, preallocated, memory-mapped, checksummed and hash-chained (issue 3 builds it).
