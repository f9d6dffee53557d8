//! Measures BLAKE3 and CRC32C throughput on 1 MiB and 200-byte inputs (the WAL's two entry shapes).
use std::time::Instant;
fn main() {
    for size in [200usize, 1 << 20] {
        let data = vec![7u8; size];
        let rounds = (256 << 20) / size;
        let t = Instant::now();
        let mut x = 0u8;
        for _ in 0..rounds {
            x ^= blake3::hash(&data).as_bytes()[0];
        }
        let b = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut c = 0u32;
        for _ in 0..rounds {
            c ^= bursar_wal::format::crc32c(&[&data]);
        }
        let r = t.elapsed().as_secs_f64();
        println!(
            "{size:>8} B: blake3 {:.2} GB/s ({:.0} ns each), crc32c {:.2} GB/s ({:.0} ns each) [{x}{c}]",
            256.0 * 1.048576 / 1000.0 / b * 1000.0 / 1000.0 * 1000.0 / 1000.0 * 1.0,
            b * 1e9 / rounds as f64,
            0.268 / r,
            r * 1e9 / rounds as f64
        );
    }
}
