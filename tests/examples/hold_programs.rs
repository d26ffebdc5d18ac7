//! Loads N socket filters with maps (as the benchmarks do) and holds them until killed: for
//! profiling `ebpfstatd` against a busy host by hand.
//!
//! `cargo run --release -p ebpfstat-tests --example hold_programs -- 1000`

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let _fleet = ebpfstat_tests::Fleet::load("hold_", n);
    eprintln!("holding {n} programs; Ctrl-C to release them");
    loop {
        std::thread::park();
    }
}
