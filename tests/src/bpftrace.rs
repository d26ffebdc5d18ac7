//! Debian's `bpftrace` as a real third-party loader: tracepoint programs and maps nobody here
//! wrote, held by a process named `bpftrace`.

use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ebpfstatd::bpf::sys::{self, ObjKind};
use ebpfstatd::sampler::maps::c_name;

use crate::process::Reaped;

/// A running `bpftrace -e <script>`, killed when dropped.
#[derive(Debug)]
pub struct Bpftrace {
    pub child: Reaped,
    /// Ids of the programs it loaded (those named as asked).
    pub ids: Vec<u32>,
}

/// Mounts tracefs where bpftrace (and the test kit) look for tracepoints, unless it is there
/// (this VM does not mount it at boot).
pub fn ensure_tracefs() {
    let events = std::path::Path::new("/sys/kernel/tracing/events");
    if !events.exists() {
        let status = Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status()
            .expect("mount tracefs");
        assert!(status.success(), "cannot mount tracefs");
    }
}

/// Ids of loaded programs whose kernel name is `name`.
pub fn programs_named(name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut id = 0;
    while let Ok(Some(next)) = sys::next_id(ObjKind::Prog, id) {
        id = next;
        let Ok(fd) = sys::fd_by_id(ObjKind::Prog, id) else {
            continue;
        };
        if let Ok(info) = sys::prog_info(fd.as_fd(), &mut Vec::new())
            && c_name(&info.name) == name
        {
            out.push(id);
        }
    }
    out
}

impl Bpftrace {
    /// Starts `bpftrace -e script` and waits (120 s: under emulation it compiles slowly) until
    /// `count` programs with kernel name `program` are loaded (bpftrace names a tracepoint
    /// program after the tracepoint).
    pub fn start(script: &str, program: &str, count: usize) -> Self {
        ensure_tracefs();
        let before = programs_named(program);
        let child = Reaped(
            Command::new("bpftrace")
                .args(["-e", script])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("bpftrace (install it: tests/setup)"),
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ids: Vec<u32> = programs_named(program)
                .into_iter()
                .filter(|id| !before.contains(id))
                .collect();
            if ids.len() >= count {
                return Self { child, ids };
            }
            assert!(Instant::now() < deadline, "bpftrace never loaded {program}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }
}
