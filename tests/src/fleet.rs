//! Fleets of socket filters that reference their own map and one map shared by all, attached
//! with `SO_ATTACH_BPF` to UDP sockets on 127.0.0.1: each runs exactly once per datagram its
//! socket receives.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::programs::{
    PROG_TYPE_SOCKET_FILTER, array_map, attach_filter, load_program, map_id, prog_counters,
    prog_id, wait_for_runs,
};
use crate::raise_fd_limit;

/// A socket filter attached to its own loopback UDP socket, with its own map.
#[derive(Debug)]
pub struct FilterProgram {
    pub name: String,
    pub id: u32,
    pub prog: OwnedFd,
    pub own_map: OwnedFd,
    pub own_map_id: u32,
    pub socket: UdpSocket,
    pub addr: SocketAddr,
}

/// N filters sharing one map, and one socket to send from.
#[derive(Debug)]
pub struct Fleet {
    /// Run-time stats stay on while the fleet lives, so driven runs are always counted
    /// (unless made with [`Fleet::load_unheld`]).
    _stats: Option<ebpfstatd::sampler::stats::StatsSwitch>,
    pub shared_map: OwnedFd,
    pub shared_map_id: u32,
    pub programs: Vec<FilterProgram>,
    sender: UdpSocket,
}

impl Fleet {
    /// Loads `n` filters named `{prefix}{i}`; each gets an own array map of `4 + i` entries so
    /// their memory differs.
    pub fn load(prefix: &str, n: usize) -> Self {
        let mut fleet = Self::load_unheld(prefix, n);
        fleet._stats = Some(ebpfstatd::sampler::stats::StatsSwitch::acquire(Path::new(
            "/proc",
        )));
        fleet
    }

    /// The same, without holding stats on: for tests of who holds them.
    pub fn load_unheld(prefix: &str, n: usize) -> Self {
        raise_fd_limit();
        let shared_map = array_map(&format!("{prefix}sh"), 8, 64);
        let shared_map_id = map_id(shared_map.as_fd());
        let sender = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        let mut fleet = Self {
            _stats: None,
            shared_map,
            shared_map_id,
            programs: Vec::with_capacity(n),
            sender,
        };
        for i in 0..n {
            fleet.add(&format!("{prefix}{i}"), None);
        }
        fleet
    }

    /// Loads and attaches one more filter.
    pub fn add(&mut self, name: &str, full_name: Option<&str>) -> &FilterProgram {
        let entries = u32::try_from(4 + self.programs.len()).expect("a few programs");
        let own_map = array_map(name, 8, entries);
        let prog = load_program(
            PROG_TYPE_SOCKET_FILTER,
            name,
            full_name,
            &[own_map.as_fd(), self.shared_map.as_fd()],
            0,
        );
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind filtered socket");
        attach_filter(&socket, prog.as_fd()).expect("SO_ATTACH_BPF");
        let addr = socket.local_addr().expect("local addr");
        let id = prog_id(prog.as_fd());
        let own_map_id = map_id(own_map.as_fd());
        self.programs.push(FilterProgram {
            name: name.to_owned(),
            id,
            prog,
            own_map,
            own_map_id,
            socket,
            addr,
        });
        self.programs.last().expect("just pushed")
    }

    /// Sends `n` datagrams to program `i` and waits until the kernel has run it for each.
    pub fn drive(&self, i: usize, n: u64) {
        let p = &self.programs[i];
        let (_, before, _) = prog_counters(p.prog.as_fd());
        for _ in 0..n {
            self.sender.send_to(b"x", p.addr).expect("send datagram");
        }
        wait_for_runs(p.prog.as_fd(), before + n);
    }

    pub fn ids(&self) -> Vec<u32> {
        self.programs.iter().map(|p| p.id).collect()
    }
}
