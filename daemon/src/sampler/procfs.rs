//! Reading `/proc` text: fdinfo files of bpf objects, for map memory and for who holds what.

use std::path::Path;

/// Reads a small `/proc` text file into `buf`, reused between calls: an open, reads until the
/// end, a close. (`fs::read_to_string` first asks for the size, a `statx` per file that `/proc`
/// answers with 0 anyway, and allocates; a rescan reads an fdinfo file per bpf fd on the host.)
pub fn read_proc_text<'b>(path: &Path, buf: &'b mut Vec<u8>) -> std::io::Result<&'b str> {
    use std::io::Read;
    buf.clear();
    let mut file = std::fs::File::open(path)?;
    let mut chunk = [0u8; 1024];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    std::str::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The number after `key` in fdinfo text (`"memlock:\t4096"`).
pub fn fdinfo_value(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fdinfo() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nmap_type:\t2\n\
                    memlock:\t4096\nmap_id:\t17\n";
        assert_eq!(fdinfo_value(text, "memlock:"), Some(4096));
        assert_eq!(fdinfo_value(text, "map_id:"), Some(17));
        assert_eq!(fdinfo_value(text, "prog_id:"), None);
    }

    #[test]
    fn reads_proc_text_whole() {
        let mut buf = Vec::new();
        let text = read_proc_text(Path::new("/proc/self/status"), &mut buf).expect("status");
        assert!(
            text.starts_with("Name:") && text.contains("\nVmRSS:"),
            "{text}"
        );
    }
}
