//! A `[[remote_write]]` table: where to push, how often, at what step, as which device, with
//! which credentials. Checked as it is read; the secret files are checked where they are read
//! ([`Target::check_files`]).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use super::{Size, Span};
use crate::shown::Shown;

/// Most targets: each is a thread and a connection.
pub const MAX_TARGETS: usize = 8;
/// Most device labels, and the longest value.
pub const MAX_LABELS: usize = 16;
pub const MAX_LABEL_VALUE: usize = 256;
/// Label names the families use: a device label may not shadow them.
pub const FAMILY_LABELS: [&str; 7] = ["id", "name", "type", "tag", "owner", "unit", "state"];

/// Where requests go: `http` or `https`, a host, a port and a path (with any query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
    /// As written: the target's name in logs, status and the store.
    pub text: String,
}

impl FromStr for Url {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("url {:?}: {why}", Shown(s));
        let (tls, rest) = if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(bad("it must start with http:// or https://"));
        };
        if s.len() > 2048 || s.chars().any(|c| c.is_control() || c == ' ' || c == '#') {
            return Err(bad(
                "at most 2048 bytes, without spaces, control characters or #",
            ));
        }
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        if authority.contains('@') {
            return Err(bad("credentials go in basic_auth, not in the url"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
                (h, port)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(bad("it names no host, or port 0"));
        }
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
            text: s.to_owned(),
        })
    }
}

/// The user and the file holding the password of HTTP basic authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password_file: PathBuf,
}

/// The CA that signs the receiver's certificate (else the system's roots), and the device's
/// own certificate and key when the receiver asks for one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// One target, checked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawTarget")]
pub struct Target {
    pub url: Url,
    /// How often a batch is sent.
    pub interval: Duration,
    /// The time between samples of a series.
    pub step: Duration,
    /// Labels every series carries, sorted by name (`instance` is the host name unless set).
    pub labels: Vec<(String, String)>,
    pub bearer_token_file: Option<PathBuf>,
    pub basic_auth: Option<BasicAuth>,
    pub tls: Option<Tls>,
    /// How far back an outage is made up (`None`: as far as the history goes).
    pub max_backlog: Option<Duration>,
    pub timeout: Duration,
    /// Most bytes a second on the wire (`None`: no cap).
    pub max_bytes_per_second: Option<u64>,
}

/// The table as written. Durations, sizes and paths are read as text and the inline tables as
/// maps of text, then checked: fewer kinds of value for the parser to know (each costs the
/// daemon's binary its own deserializer).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    url: String,
    interval: Option<String>,
    step: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    bearer_token_file: Option<String>,
    basic_auth: Option<BTreeMap<String, String>>,
    tls: Option<BTreeMap<String, String>>,
    max_backlog: Option<String>,
    timeout: Option<String>,
    max_bytes_per_second: Option<String>,
}

/// An inline table's keys, each at most once and every one known; `need`: those it must have.
fn inline(
    key: &str,
    mut map: BTreeMap<String, String>,
    known: &[&str],
    need: &[&str],
) -> Result<Vec<Option<String>>, String> {
    if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!(
            "{key}: unknown key {:?}; it takes {}",
            Shown(k),
            known.join(", ")
        ));
    }
    if let Some(k) = need.iter().find(|k| !map.contains_key(**k)) {
        return Err(format!("{key}: {k} is missing"));
    }
    Ok(known.iter().map(|k| map.remove(*k)).collect())
}

fn basic_auth(map: BTreeMap<String, String>) -> Result<BasicAuth, String> {
    const KEYS: [&str; 2] = ["username", "password_file"];
    let mut v = inline("basic_auth", map, &KEYS, &KEYS)?
        .into_iter()
        .flatten();
    let (Some(username), Some(file)) = (v.next(), v.next()) else {
        return Err("basic_auth: username and password_file".to_owned());
    };
    Ok(BasicAuth {
        username,
        password_file: PathBuf::from(file),
    })
}

fn tls(map: BTreeMap<String, String>) -> Result<Tls, String> {
    let v = inline("tls", map, &["ca_file", "cert_file", "key_file"], &[])?;
    let mut v = v.into_iter().map(|p| p.map(PathBuf::from));
    let (ca_file, cert_file, key_file) =
        (v.next().flatten(), v.next().flatten(), v.next().flatten());
    if cert_file.is_some() != key_file.is_some() {
        return Err("tls: cert_file and key_file go together".to_owned());
    }
    Ok(Tls {
        ca_file,
        cert_file,
        key_file,
    })
}

/// A text setting read as its kind (a duration, a size), the key named in the error.
fn parsed<T: FromStr<Err = String>>(key: &str, v: Option<String>) -> Result<Option<T>, String> {
    v.map(|v| v.parse::<T>().map_err(|e| format!("{key}: {e}")))
        .transpose()
}

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_STEP: Duration = Duration::from_secs(60);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A duration between two bounds, or the default.
fn span(
    key: &str,
    v: Option<Span>,
    default: Duration,
    (lo, hi): (u64, u64),
) -> Result<Duration, String> {
    let d = v.map_or(default, |s| s.0);
    if d < Duration::from_secs(lo) || d > Duration::from_secs(hi) {
        return Err(format!(
            "{key} = {:?} is out of range: between {} and {}",
            super::span_text(d),
            super::span_text(Duration::from_secs(lo)),
            super::span_text(Duration::from_secs(hi))
        ));
    }
    Ok(d)
}

impl TryFrom<RawTarget> for Target {
    type Error = String;

    fn try_from(r: RawTarget) -> Result<Self, String> {
        let url: Url = r.url.parse()?;
        let labels = device_labels(r.labels.unwrap_or_default())?;
        if r.bearer_token_file.is_some() && r.basic_auth.is_some() {
            return Err("bearer_token_file and basic_auth: one or the other".to_owned());
        }
        if r.tls.is_some() && !url.tls {
            return Err(format!(
                "tls is set but the url {:?} is http://",
                Shown(&url.text)
            ));
        }
        let rate = parsed::<Size>("max_bytes_per_second", r.max_bytes_per_second)?.map(|s| s.0);
        if rate.is_some_and(|b| b < 1024) {
            return Err("max_bytes_per_second: at least 1KiB".to_owned());
        }
        let span =
            |key: &str, v, default, range| span(key, parsed::<Span>(key, v)?, default, range);
        Ok(Self {
            url,
            interval: span("interval", r.interval, DEFAULT_INTERVAL, (1, 3600))?,
            step: span("step", r.step, DEFAULT_STEP, (1, 3600))?,
            labels,
            bearer_token_file: r.bearer_token_file.map(PathBuf::from),
            basic_auth: r.basic_auth.map(basic_auth).transpose()?,
            tls: r.tls.map(tls).transpose()?,
            max_backlog: parsed::<Span>("max_backlog", r.max_backlog)?.map(|s| s.0),
            timeout: span("timeout", r.timeout, DEFAULT_TIMEOUT, (1, 600))?,
            max_bytes_per_second: rate,
        })
    }
}

/// The device's labels, checked, with `instance` (the host name) unless given, sorted.
fn device_labels(mut given: BTreeMap<String, String>) -> Result<Vec<(String, String)>, String> {
    if !given.contains_key("instance") {
        given.insert("instance".to_owned(), host_name()?);
    }
    if given.len() > MAX_LABELS {
        return Err(format!("labels: at most {MAX_LABELS}"));
    }
    for (k, v) in &given {
        let mut chars = k.chars();
        let good = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !k.starts_with("__");
        if !good {
            return Err(format!(
                "label {:?}: a name of letters, digits and _, not starting with a digit or __",
                Shown(k)
            ));
        }
        if FAMILY_LABELS.contains(&k.as_str()) {
            return Err(format!("label {k:?} is one the series carry already"));
        }
        if v.is_empty() || v.len() > MAX_LABEL_VALUE {
            return Err(format!(
                "label {k:?}: a value of 1 to {MAX_LABEL_VALUE} bytes"
            ));
        }
    }
    Ok(given.into_iter().collect())
}

/// This machine's name (`/proc/sys/kernel/hostname`), or `localhost` where it cannot be read.
fn host_name() -> Result<String, String> {
    const FILE: &str = "/proc/sys/kernel/hostname";
    let name = std::fs::read_to_string(FILE).map_err(|e| {
        format!("labels: no instance, and the host name cannot be read ({FILE}: {e}); set one")
    })?;
    match name.trim() {
        "" => Err("labels: no instance, and the host has no name; set one".to_owned()),
        name => Ok(name.to_owned()),
    }
}

impl std::fmt::Display for Target {
    /// The table in the configuration file's syntax (secrets are files; none is shown).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use super::{size_text, span_text};
        writeln!(f, "[[remote_write]]\nurl = {:?}", self.url.text)?;
        write!(
            f,
            "interval = {:?}\nstep = {:?}\nlabels = {{ ",
            span_text(self.interval),
            span_text(self.step)
        )?;
        for (i, (k, v)) in self.labels.iter().enumerate() {
            write!(f, "{}{k} = {v:?}", if i > 0 { ", " } else { "" })?;
        }
        write!(f, " }}\ntimeout = {:?}", span_text(self.timeout))?;
        if let Some(b) = self.max_backlog {
            write!(f, "\nmax_backlog = {:?}", span_text(b))?;
        }
        if let Some(r) = self.max_bytes_per_second {
            write!(f, "\nmax_bytes_per_second = {:?}", size_text(r))?;
        }
        if let Some(p) = &self.bearer_token_file {
            write!(f, "\nbearer_token_file = {:?}", p.display().to_string())?;
        }
        if let Some(b) = &self.basic_auth {
            let file = b.password_file.display().to_string();
            write!(
                f,
                "\nbasic_auth = {{ username = {:?}, password_file = {file:?} }}",
                b.username
            )?;
        }
        if let Some(t) = &self.tls {
            let files = [
                ("ca_file", &t.ca_file),
                ("cert_file", &t.cert_file),
                ("key_file", &t.key_file),
            ];
            let set: Vec<String> = files
                .iter()
                .filter_map(|(k, p)| {
                    p.as_ref()
                        .map(|p| format!("{k} = {:?}", p.display().to_string()))
                })
                .collect();
            write!(f, "\ntls = {{ {} }}", set.join(", "))?;
        }
        Ok(())
    }
}

impl Target {
    /// The files the target reads, each checked: a secret (token, password, key) must be a
    /// regular file only its owner, root or the daemon's user, can read or write.
    pub fn check_files(&self) -> Result<(), String> {
        let secrets = [
            self.bearer_token_file.as_deref(),
            self.basic_auth.as_ref().map(|b| b.password_file.as_path()),
            self.tls.as_ref().and_then(|t| t.key_file.as_deref()),
        ];
        for path in secrets.into_iter().flatten() {
            secret_file(path)?;
        }
        let public = self
            .tls
            .iter()
            .flat_map(|t| [t.ca_file.as_deref(), t.cert_file.as_deref()]);
        for path in public.flatten() {
            std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// A file holding a secret: owned by root or by this process's user, not readable by others.
pub fn secret_file(path: &Path) -> Result<(), String> {
    let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !m.is_file() || (m.uid() != 0 && m.uid() != me) || m.mode() & 0o077 != 0 {
        return Err(format!(
            "{}: a secret must be a file owned by root (or the daemon's user) that no one else \
             may read or write (chmod 600; it is {:o}, owner {})",
            path.display(),
            m.mode() & 0o7777,
            m.uid()
        ));
    }
    Ok(())
}

/// Reads a secret file (checked first), without its trailing newline.
pub fn read_secret(path: &Path) -> Result<String, String> {
    secret_file(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(toml_text: &str) -> Result<Target, String> {
        #[derive(Deserialize)]
        struct One {
            remote_write: Target,
        }
        toml::from_str::<One>(toml_text)
            .map(|o| o.remote_write)
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn urls_are_read_whole_or_refused() {
        let u: Url = "https://vm.example:8428/api/v1/write?x=1"
            .parse()
            .expect("url");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "vm.example", 8428, "/api/v1/write?x=1")
        );
        let u: Url = "http://[::1]/w".parse().expect("v6");
        assert_eq!((u.host.as_str(), u.port), ("::1", 80));
        for bad in [
            "ftp://x/",
            "http://",
            "http://u:p@h/",
            "http://h:99999/",
            "http://h/a b",
            "http://h:0/",
        ] {
            assert!(bad.parse::<Url>().is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_the_device_labels() {
        let t = target("[remote_write]\nurl = \"http://127.0.0.1:9090/api/v1/write\"\nlabels = { device = \"edge-17\" }").expect("target");
        assert_eq!(t.interval, DEFAULT_INTERVAL);
        assert_eq!(t.step, DEFAULT_STEP);
        assert_eq!(t.labels[0], ("device".to_owned(), "edge-17".to_owned()));
        assert_eq!(t.labels[1].0, "instance");
        let t = target("[remote_write]\nurl = \"http://h/\"\nlabels = { instance = \"me\" }")
            .expect("target");
        assert_eq!(t.labels, vec![("instance".to_owned(), "me".to_owned())]);
    }

    #[test]
    fn bad_tables_say_what_is_wrong() {
        for (text, says) in [
            (
                "url = \"http://h/\"\nlabels = { id = \"x\" }",
                "one the series carry",
            ),
            (
                "url = \"http://h/\"\nlabels = { __x = \"x\" }",
                "not starting with",
            ),
            ("url = \"http://h/\"\ntls = {}", "is http://"),
            (
                "url = \"https://h/\"\ntls = { cert_file = \"/c\" }",
                "go together",
            ),
            (
                "url = \"http://h/\"\nstep = \"2h\"",
                "step = \"2h\" is out of range",
            ),
            (
                "url = \"http://h/\"\nmax_bytes_per_second = \"10B\"",
                "at least 1KiB",
            ),
            (
                "url = \"http://h/\"\nbearer_token_file = \"/t\"\nbasic_auth = { username = \"u\", password_file = \"/p\" }",
                "one or the other",
            ),
            ("url = \"http://h/\"\nurls = 1", "unknown field"),
        ] {
            let e = target(&format!("[remote_write]\n{text}")).expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn a_secret_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = read_secret(&path).expect_err("world-readable");
        assert!(e.contains("no one else may read"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_secret(&path).expect("600"), "s3cret");
    }
}
