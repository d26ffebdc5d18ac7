//! TLS for `https://` targets, by the system's OpenSSL 3 (`libssl.so.3`), loaded when such a
//! target starts and not before: a daemon that pushes nothing over TLS never loads it.
//!
//! Why not a crate: rustls adds 0.86–1.6 MB to the stripped daemon (ring or aws-lc-rs, measured
//! on a program of the same profile), 20 to 35 times the room the daemon has under its cap; the
//! `openssl` crate adds 39 KB but links libssl at build time, which the ARM cross builds do not
//! have. Here: the twenty-odd calls a client makes, each with its reason to be sound. Every
//! Debian 12 system with systemd has libssl3 (systemd depends on it).
//!
//! What a connection checks: the receiver's chain against `ca_file`, or the system's roots
//! without it; its name (or IP address) against the url's host; TLS 1.2 at least. The device
//! shows its own certificate when `cert_file` and `key_file` are set.

use std::ffi::{CStr, CString, c_char, c_int, c_long, c_ulong, c_void};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::sync::OnceLock;

use crate::config::remote_write::Tls;

/// The library's file name (OpenSSL 3's ABI).
pub const LIBSSL: &str = "libssl.so.3";

const SSL_VERIFY_PEER: c_int = 1;
const SSL_FILETYPE_PEM: c_int = 1;
const SSL_CTRL_SET_TLSEXT_HOSTNAME: c_int = 55;
const TLSEXT_NAMETYPE_HOST_NAME: c_long = 0;
const SSL_CTRL_SET_MIN_PROTO_VERSION: c_int = 123;
const TLS1_2_VERSION: c_long = 0x0303;
const SSL_ERROR_ZERO_RETURN: c_int = 6;

type Ctx = c_void;
type Ssl = c_void;

/// The functions used, resolved once.
struct Lib {
    tls_client_method: unsafe extern "C" fn() -> *const c_void,
    ctx_new: unsafe extern "C" fn(*const c_void) -> *mut Ctx,
    ctx_free: unsafe extern "C" fn(*mut Ctx),
    ctx_ctrl: unsafe extern "C" fn(*mut Ctx, c_int, c_long, *mut c_void) -> c_long,
    ctx_set_verify: unsafe extern "C" fn(*mut Ctx, c_int, *const c_void),
    ctx_default_verify_paths: unsafe extern "C" fn(*mut Ctx) -> c_int,
    ctx_load_verify_locations:
        unsafe extern "C" fn(*mut Ctx, *const c_char, *const c_char) -> c_int,
    ctx_use_chain_file: unsafe extern "C" fn(*mut Ctx, *const c_char) -> c_int,
    ctx_use_key_file: unsafe extern "C" fn(*mut Ctx, *const c_char, c_int) -> c_int,
    ctx_check_key: unsafe extern "C" fn(*const Ctx) -> c_int,
    ssl_new: unsafe extern "C" fn(*mut Ctx) -> *mut Ssl,
    ssl_free: unsafe extern "C" fn(*mut Ssl),
    ssl_ctrl: unsafe extern "C" fn(*mut Ssl, c_int, c_long, *mut c_void) -> c_long,
    ssl_set_fd: unsafe extern "C" fn(*mut Ssl, c_int) -> c_int,
    ssl_set1_host: unsafe extern "C" fn(*mut Ssl, *const c_char) -> c_int,
    ssl_get0_param: unsafe extern "C" fn(*mut Ssl) -> *mut c_void,
    param_set1_ip_asc: unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int,
    ssl_connect: unsafe extern "C" fn(*mut Ssl) -> c_int,
    ssl_read: unsafe extern "C" fn(*mut Ssl, *mut c_void, c_int) -> c_int,
    ssl_write: unsafe extern "C" fn(*mut Ssl, *const c_void, c_int) -> c_int,
    ssl_get_error: unsafe extern "C" fn(*const Ssl, c_int) -> c_int,
    ssl_verify_result: unsafe extern "C" fn(*const Ssl) -> c_long,
    verify_error_string: unsafe extern "C" fn(c_long) -> *const c_char,
    err_get: unsafe extern "C" fn() -> c_ulong,
    err_string_n: unsafe extern "C" fn(c_ulong, *mut c_char, usize),
}

/// Resolves `name` in `handle` as a function of type `F`.
///
/// # Safety
/// `F` must be an `extern "C"` function pointer type matching the symbol's C declaration.
unsafe fn symbol<F: Copy>(handle: *mut c_void, name: &CStr) -> Result<F, String> {
    // SAFETY: `handle` came from a successful dlopen and stays open for the process's life;
    // `name` is NUL-terminated.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    if p.is_null() {
        return Err(format!("{LIBSSL} has no {}", name.to_string_lossy()));
    }
    debug_assert_eq!(size_of::<F>(), size_of::<*mut c_void>());
    // SAFETY: a function pointer and a data pointer have the same size and representation on
    // the platforms glibc's dlsym serves; the caller vouches for the type.
    Ok(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&p) })
}

impl Lib {
    fn load() -> Result<Self, String> {
        let file = CString::new(LIBSSL).map_err(|e| e.to_string())?;
        // SAFETY: dlopen with a NUL-terminated name; libssl's initialisers are safe to run.
        let h = unsafe { libc::dlopen(file.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if h.is_null() {
            return Err(format!(
                "https needs OpenSSL 3 ({LIBSSL}, Debian's libssl3), which cannot be loaded"
            ));
        }
        // SAFETY: each type below is that of OpenSSL 3's declaration of the same name (ssl.h,
        // x509_vfy.h, err.h), and `h` is the handle just opened.
        unsafe {
            Ok(Self {
                tls_client_method: symbol(h, c"TLS_client_method")?,
                ctx_new: symbol(h, c"SSL_CTX_new")?,
                ctx_free: symbol(h, c"SSL_CTX_free")?,
                ctx_ctrl: symbol(h, c"SSL_CTX_ctrl")?,
                ctx_set_verify: symbol(h, c"SSL_CTX_set_verify")?,
                ctx_default_verify_paths: symbol(h, c"SSL_CTX_set_default_verify_paths")?,
                ctx_load_verify_locations: symbol(h, c"SSL_CTX_load_verify_locations")?,
                ctx_use_chain_file: symbol(h, c"SSL_CTX_use_certificate_chain_file")?,
                ctx_use_key_file: symbol(h, c"SSL_CTX_use_PrivateKey_file")?,
                ctx_check_key: symbol(h, c"SSL_CTX_check_private_key")?,
                ssl_new: symbol(h, c"SSL_new")?,
                ssl_free: symbol(h, c"SSL_free")?,
                ssl_ctrl: symbol(h, c"SSL_ctrl")?,
                ssl_set_fd: symbol(h, c"SSL_set_fd")?,
                ssl_set1_host: symbol(h, c"SSL_set1_host")?,
                ssl_get0_param: symbol(h, c"SSL_get0_param")?,
                param_set1_ip_asc: symbol(h, c"X509_VERIFY_PARAM_set1_ip_asc")?,
                ssl_connect: symbol(h, c"SSL_connect")?,
                ssl_read: symbol(h, c"SSL_read")?,
                ssl_write: symbol(h, c"SSL_write")?,
                ssl_get_error: symbol(h, c"SSL_get_error")?,
                ssl_verify_result: symbol(h, c"SSL_get_verify_result")?,
                verify_error_string: symbol(h, c"X509_verify_cert_error_string")?,
                err_get: symbol(h, c"ERR_get_error")?,
                err_string_n: symbol(h, c"ERR_error_string_n")?,
            })
        }
    }

    /// The library, loaded on first use; the same error every time when it cannot be.
    fn get() -> Result<&'static Self, String> {
        static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
        LIB.get_or_init(Self::load).as_ref().map_err(Clone::clone)
    }

    /// OpenSSL's oldest queued error in words (and the queue emptied), after `what` failed.
    fn error(&self, what: &str) -> String {
        let mut first = None;
        loop {
            // SAFETY: ERR_get_error reads this thread's error queue; no arguments.
            let e = unsafe { (self.err_get)() };
            if e == 0 {
                break;
            }
            if first.is_none() {
                let mut buf = [0 as c_char; 256];
                // SAFETY: the buffer and its length match; OpenSSL NUL-terminates within it.
                unsafe { (self.err_string_n)(e, buf.as_mut_ptr(), buf.len()) };
                // SAFETY: NUL-terminated within the buffer, as above.
                first = Some(
                    unsafe { CStr::from_ptr(buf.as_ptr()) }
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
        match first {
            Some(e) => format!("{what}: {e}"),
            None => what.to_owned(),
        }
    }
}

/// A client context: what every connection of one target trusts and shows.
#[derive(Debug)]
pub struct Client {
    lib: &'static Lib,
    ctx: *mut Ctx,
}

impl std::fmt::Debug for Lib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(LIBSSL)
    }
}

// SAFETY: an SSL_CTX may be used from any thread once set up (OpenSSL 3 locks what it shares);
// a `Client` is set up before it moves to its target's thread and only read after.
unsafe impl Send for Client {}

impl Drop for Client {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from SSL_CTX_new and is freed once, here.
        unsafe { (self.lib.ctx_free)(self.ctx) };
    }
}

fn c_path(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: a path with a NUL byte", p.display()))
}

impl Client {
    /// A context trusting `tls.ca_file` (else the system's roots), showing the device's
    /// certificate when set; every file is read now, so a bad one is said at start.
    pub fn new(tls: &Tls) -> Result<Self, String> {
        let lib = Lib::get()?;
        let l = lib;
        // SAFETY: TLS_client_method returns a static method table; SSL_CTX_new copies it.
        let ctx = unsafe { (l.ctx_new)((l.tls_client_method)()) };
        if ctx.is_null() {
            return Err(l.error("SSL_CTX_new"));
        }
        let client = Self { lib, ctx };
        client.configure(tls)?;
        Ok(client)
    }

    fn configure(&self, tls: &Tls) -> Result<(), String> {
        let l = self.lib;
        let ok = |r: c_int, what: &str| if r == 1 { Ok(()) } else { Err(l.error(what)) };
        // SAFETY: `ctx` is a live context; the ctrl sets an integer (the minimum version).
        let set = unsafe {
            (l.ctx_ctrl)(
                self.ctx,
                SSL_CTRL_SET_MIN_PROTO_VERSION,
                TLS1_2_VERSION,
                std::ptr::null_mut(),
            )
        };
        ok(
            c_int::from(set == 1),
            "setting TLS 1.2 as the oldest version",
        )?;
        // SAFETY: a live context; no callback.
        unsafe { (l.ctx_set_verify)(self.ctx, SSL_VERIFY_PEER, std::ptr::null()) };
        match &tls.ca_file {
            Some(ca) => {
                let c = c_path(ca)?;
                // SAFETY: a live context and a NUL-terminated path; no directory.
                let r = unsafe {
                    (l.ctx_load_verify_locations)(self.ctx, c.as_ptr(), std::ptr::null())
                };
                ok(r, &format!("ca_file {}", ca.display()))?;
            }
            None => {
                // SAFETY: a live context.
                let r = unsafe { (l.ctx_default_verify_paths)(self.ctx) };
                ok(r, "the system's roots")?;
            }
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            let (c, k) = (c_path(cert)?, c_path(key)?);
            // SAFETY: a live context and NUL-terminated paths.
            let r = unsafe { (l.ctx_use_chain_file)(self.ctx, c.as_ptr()) };
            ok(r, &format!("cert_file {}", cert.display()))?;
            // SAFETY: as above.
            let r = unsafe { (l.ctx_use_key_file)(self.ctx, k.as_ptr(), SSL_FILETYPE_PEM) };
            ok(r, &format!("key_file {}", key.display()))?;
            // SAFETY: a live context.
            let r = unsafe { (l.ctx_check_key)(self.ctx) };
            ok(r, "key_file does not match cert_file")?;
        }
        Ok(())
    }

    /// TLS over `tcp` with `host`, its certificate checked for that name (or address).
    pub fn connect(&self, tcp: TcpStream, host: &str) -> Result<Stream, String> {
        let l = self.lib;
        // SAFETY: a live context.
        let ssl = unsafe { (l.ssl_new)(self.ctx) };
        if ssl.is_null() {
            return Err(l.error("SSL_new"));
        }
        let stream = Stream {
            lib: self.lib,
            ssl,
            tcp,
        };
        stream.expect_peer(host)?;
        // SAFETY: a live SSL and an open socket that `stream` keeps open as long as it.
        if unsafe { (l.ssl_set_fd)(ssl, stream.tcp.as_raw_fd()) } != 1 {
            return Err(l.error("SSL_set_fd"));
        }
        // SAFETY: a live SSL on a blocking socket (with the target's timeouts).
        let r = unsafe { (l.ssl_connect)(ssl) };
        if r != 1 {
            // SAFETY: a live SSL; the result is a code from the table.
            let verify = unsafe { (l.ssl_verify_result)(ssl) };
            if verify != 0 {
                // SAFETY: returns a static NUL-terminated string for any code.
                let why = unsafe { CStr::from_ptr((l.verify_error_string)(verify)) };
                return Err(format!(
                    "the receiver's certificate: {}",
                    why.to_string_lossy()
                ));
            }
            return Err(l.error("the TLS handshake failed"));
        }
        Ok(stream)
    }
}

/// A TLS connection; its socket closes with it.
#[derive(Debug)]
pub struct Stream {
    lib: &'static Lib,
    ssl: *mut Ssl,
    tcp: TcpStream,
}

// SAFETY: an SSL is used by one thread at a time; `Stream` is owned, never shared.
unsafe impl Send for Stream {}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: `ssl` came from SSL_new and is freed once, here (before the socket closes).
        unsafe { (self.lib.ssl_free)(self.ssl) };
    }
}

impl Stream {
    /// The name (SNI, and the certificate's name checked) or the address the certificate must
    /// be for.
    fn expect_peer(&self, host: &str) -> Result<(), String> {
        let l = self.lib;
        let c = CString::new(host).map_err(|_| "a host with a NUL byte".to_owned())?;
        if host.parse::<IpAddr>().is_ok() {
            // SAFETY: a live SSL; its parameters live as long as it; a NUL-terminated address.
            let r = unsafe { (l.param_set1_ip_asc)((l.ssl_get0_param)(self.ssl), c.as_ptr()) };
            return if r == 1 {
                Ok(())
            } else {
                Err(l.error("the url's address"))
            };
        }
        // SAFETY: a live SSL and a NUL-terminated name, copied by OpenSSL.
        let sni = unsafe {
            (l.ssl_ctrl)(
                self.ssl,
                SSL_CTRL_SET_TLSEXT_HOSTNAME,
                TLSEXT_NAMETYPE_HOST_NAME,
                c.as_ptr().cast_mut().cast(),
            )
        };
        // SAFETY: as above.
        let host_set = unsafe { (l.ssl_set1_host)(self.ssl, c.as_ptr()) };
        if sni != 1 || host_set != 1 {
            return Err(l.error("the url's host name"));
        }
        Ok(())
    }

    /// An I/O error for a failed read or write that returned `r`.
    fn io_error(&self, r: c_int) -> std::io::Error {
        let l = self.lib;
        // SAFETY: a live SSL and the value its last call returned.
        let code = unsafe { (l.ssl_get_error)(self.ssl, r) };
        let os = std::io::Error::last_os_error();
        if os.raw_os_error().is_some_and(|e| e != 0) {
            return os;
        }
        std::io::Error::other(l.error(&format!("TLS error {code}")))
    }
}

/// Most bytes one SSL call moves (its length is an `int`).
fn chunk(len: usize) -> c_int {
    c_int::try_from(len).unwrap_or(c_int::MAX)
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let l = self.lib;
        // SAFETY: a live SSL; the buffer is valid for `chunk(len)` bytes of writes.
        let r = unsafe { (l.ssl_read)(self.ssl, buf.as_mut_ptr().cast(), chunk(buf.len())) };
        if r > 0 {
            return Ok(usize::try_from(r).unwrap_or(0));
        }
        // SAFETY: a live SSL and the value SSL_read returned.
        if unsafe { (l.ssl_get_error)(self.ssl, r) } == SSL_ERROR_ZERO_RETURN {
            return Ok(0);
        }
        Err(self.io_error(r))
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let l = self.lib;
        // SAFETY: a live SSL; the buffer is valid for `chunk(len)` bytes of reads.
        let r = unsafe { (l.ssl_write)(self.ssl, buf.as_ptr().cast(), chunk(buf.len())) };
        if r > 0 {
            return Ok(usize::try_from(r).unwrap_or(0));
        }
        Err(self.io_error(r))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
