//! Link options of the release daemon.
//!
//! `.eh_frame_hdr`, the binary search table over the unwind tables, is left out of the release
//! binary: 43 KB of the stripped daemon (3,166,504 → 3,123,032 B), which must stay within 3 MiB.
//! Only the in-process unwinder uses it, and in a release daemon nothing unwinds (`panic =
//! "abort"`); what is lost is the frames of a `RUST_BACKTRACE` print, which a stripped binary
//! shows as bare addresses anyway. The unwind tables themselves stay, so a debugger or
//! systemd-coredump still walks the stack of a core dump. Debug builds (tests: panics unwind)
//! keep it.

fn main() {
    println!("cargo:rerun-if-env-changed=PROFILE");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rustc-link-arg-bin=ebpfstatd=-Wl,--no-eh-frame-hdr");
    }
}
