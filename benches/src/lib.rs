//! Criterion benchmarks of cargohold; see `benches/`.
