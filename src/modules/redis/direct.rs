//! A Redis connection the calling thread drives: a blocking socket, each
//! command written and its reply parsed on the thread that asked.
//! redis-rs's multiplexed connection runs a task on the runtime's threads,
//! so every command crossed threads twice (the `parallel` worker to the
//! runtime and back); over a 500-target fan-out those wake-ups were a
//! quarter of the run (docs/performance.md). Plain TCP targets speaking
//! RESP2 use this; TLS, unix sockets, RESP3, sentinel and cluster targets
//! keep redis-rs's connection.
//!
//! Nothing blocks past the run's cancellation: a read or a connect waits in
//! slices and looks at Ctrl-C, --timeout and the call's deadline between
//! them.

use crate::cancel::{Cancel, Reason};
use redis::{Cmd, FromRedisValue, Parser, RedisError, Value};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How long a blocked read or connect goes before looking at the run's
/// cancellation again.
const SLICE: Duration = Duration::from_millis(50);
/// A connect's own limit, as the multiplexed connection has.
pub(super) const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// A target this module can drive itself: where it is and the handshake.
pub(super) struct Plain {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
}

impl Plain {
    /// `url` when it is plain TCP speaking RESP2; None for anything else
    /// (and for a URL redis-rs cannot parse: its path reports that).
    pub(super) fn of(url: &str) -> Option<Plain> {
        use redis::IntoConnectionInfo;
        let info = url.into_connection_info().ok()?;
        let redis::ConnectionAddr::Tcp(host, port) = info.addr() else {
            return None;
        };
        let r = info.redis_settings();
        if r.protocol() != redis::ProtocolVersion::RESP2 {
            return None;
        }
        Some(Plain {
            host: host.clone(),
            port: *port,
            username: r.username().map(str::to_string),
            password: r.password().map(str::to_string),
            db: r.db(),
        })
    }
}

/// What stops a wait: the run's cancellation and the call's deadline.
#[derive(Clone)]
pub(super) struct Watch {
    pub cancel: Cancel,
    pub deadline: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Stop {
    Cancelled(Reason),
    Deadline,
}

impl Watch {
    fn check(&self) -> Result<(), Stop> {
        if let Some(r) = self.cancel.reason() {
            return Err(Stop::Cancelled(r));
        }
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(Stop::Deadline),
            _ => Ok(()),
        }
    }
}

/// Why a command or a connect did not answer.
#[derive(Debug)]
pub(super) enum Failure {
    /// The run's cancellation or the call's deadline.
    Stopped(Stop),
    /// No answer to the connect within CONNECT_LIMIT.
    ConnectTimeout,
    /// What the server, the network or the reply said.
    Redis(RedisError),
}

impl Failure {
    /// The connection broke (not the command): a read may try again on a
    /// new one.
    pub(super) fn broken(&self) -> bool {
        matches!(self, Failure::Redis(e) if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error())
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Redis(e.into())
    }
}

/// The socket under a watch: a read or a write that times out (one slice)
/// looks at the watch and goes on, so the parser never sees a timeout.
struct Wire {
    stream: TcpStream,
    watch: Option<Watch>,
    stopped: Option<Stop>,
}

impl Wire {
    fn wait(&mut self, e: io::Error) -> io::Result<()> {
        if !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
        ) {
            return Err(e);
        }
        if let Some(Err(stop)) = self.watch.as_ref().map(Watch::check) {
            self.stopped = Some(stop);
            return Err(io::Error::other("stopped"));
        }
        Ok(())
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Err(e) => self.wait(e)?,
                ok => return ok,
            }
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.stream.write(buf) {
                Err(e) => self.wait(e)?,
                ok => return ok,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

pub(super) struct Direct {
    wire: Wire,
    parser: Parser,
    /// Set when the stream may be mid-reply or gone: never reused.
    pub broken: bool,
}

impl Direct {
    /// Connects and authenticates, selects the URL's db, all under `watch`.
    pub(super) fn open(p: &Plain, watch: Watch) -> Result<Direct, Failure> {
        let stream = connect(p, &watch)?;
        stream.set_read_timeout(Some(SLICE))?;
        stream.set_write_timeout(Some(SLICE))?;
        let mut d = Direct {
            wire: Wire {
                stream,
                watch: None,
                stopped: None,
            },
            parser: Parser::new(),
            broken: false,
        };
        let mut hello = Vec::new();
        if let Some(pw) = &p.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(u) = &p.username {
                auth.arg(u);
            }
            hello.push(auth.arg(pw).clone());
        }
        if p.db != 0 {
            hello.push(redis::cmd("SELECT").arg(p.db).clone());
        }
        // One round trip for the whole handshake.
        if !hello.is_empty() {
            for v in d.exchange(&hello, watch)? {
                v.extract_error().map_err(Failure::Redis)?;
            }
        }
        Ok(d)
    }

    /// Runs one command and converts its reply.
    pub(super) fn query<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        watch: Watch,
    ) -> Result<T, Failure> {
        let mut replies = self.exchange(std::slice::from_ref(cmd), watch)?;
        let v = replies.pop().unwrap_or(Value::Nil);
        // The whole reply was read: a server error or a type mismatch
        // leaves the connection fit for the next command.
        let v = v.extract_error().map_err(Failure::Redis)?;
        T::from_redis_value(v).map_err(|e| Failure::Redis(e.into()))
    }

    /// Writes `cmds` at once and reads one reply each.
    fn exchange(&mut self, cmds: &[Cmd], watch: Watch) -> Result<Vec<Value>, Failure> {
        if self.broken {
            return Err(Failure::Redis(
                io::Error::new(io::ErrorKind::BrokenPipe, "connection closed").into(),
            ));
        }
        self.wire.watch = Some(watch);
        self.wire.stopped = None;
        let r = (|| {
            let mut packed = Vec::new();
            for c in cmds {
                c.write_packed_command(&mut packed);
            }
            self.wire.write_all(&packed)?;
            let mut out = Vec::with_capacity(cmds.len());
            for _ in cmds {
                out.push(self.parser.parse_value(&mut self.wire)?);
            }
            Ok::<_, RedisError>(out)
        })();
        self.wire.watch = None;
        r.map_err(|e| {
            self.broken = true;
            match self.wire.stopped.take() {
                Some(stop) => Failure::Stopped(stop),
                None => Failure::Redis(e),
            }
        })
    }
}

/// A TCP connection to the first address of `p` that answers.
fn connect(p: &Plain, watch: &Watch) -> Result<TcpStream, Failure> {
    let limit = Instant::now() + CONNECT_LIMIT;
    let mut last = None;
    for addr in (p.host.as_str(), p.port).to_socket_addrs()? {
        match connect_one(addr, limit, watch) {
            Ok(s) => return Ok(s),
            Err(f @ (Failure::Stopped(_) | Failure::ConnectTimeout)) => return Err(f),
            Err(f) => last = Some(f),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "failed to lookup address information: no address for {}",
                p.host
            ),
        )
        .into()
    }))
}

/// A non-blocking connect, waited for in slices: a host that drops the
/// packets must not hold Ctrl-C for the connect's whole limit.
fn connect_one(addr: SocketAddr, limit: Instant, watch: &Watch) -> Result<TcpStream, Failure> {
    use socket2::{Domain, Socket, Type};
    use std::os::fd::AsRawFd;
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => loop {
            watch.check().map_err(Failure::Stopped)?;
            let left = limit.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failure::ConnectTimeout);
            }
            let mut fd = libc::pollfd {
                fd: sock.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            let ms = left.min(SLICE).as_millis().max(1) as libc::c_int;
            // SAFETY: one pollfd, valid for the call, for a descriptor
            // `sock` owns.
            let n = unsafe { libc::poll(&mut fd, 1, ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e.into());
                }
            } else if n > 0 {
                break;
            }
        },
        Err(e) => return Err(e.into()),
    }
    if let Some(e) = sock.take_error()? {
        return Err(e.into());
    }
    let stream: TcpStream = sock.into();
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn watch() -> Watch {
        Watch {
            cancel: Cancel::default(),
            deadline: None,
        }
    }

    fn plain(port: u16) -> Plain {
        Plain::of(&format!("redis://127.0.0.1:{port}")).expect("a plain URL")
    }

    #[test]
    fn only_plain_resp2_tcp_urls_are_driven_here() {
        assert!(Plain::of("redis://h:1/2").is_some_and(|p| p.db == 2));
        assert!(Plain::of("redis://u:pw@h:1").is_some_and(|p| p.password.as_deref() == Some("pw")));
        assert!(Plain::of("rediss://h:1").is_none());
        assert!(Plain::of("redis+unix:///tmp/r.sock").is_none());
        assert!(Plain::of("redis://h:1?protocol=resp3").is_none());
        assert!(Plain::of("not a url").is_none());
    }

    /// A server that accepts and never answers: the read must end at the
    /// deadline, and at Ctrl-C, within a slice.
    #[test]
    fn a_silent_server_holds_a_read_only_until_the_deadline_or_cancellation() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut d = Direct::open(&plain(port), watch()).expect("connect");
        let started = Instant::now();
        let w = Watch {
            deadline: Some(Instant::now() + Duration::from_millis(200)),
            ..watch()
        };
        let r = d.query::<String>(&redis::cmd("PING"), w);
        assert!(matches!(r, Err(Failure::Stopped(Stop::Deadline))), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(d.broken, "a connection stopped mid-reply is not reused");

        let mut d = Direct::open(&plain(port), watch()).expect("connect");
        let w = watch();
        let cancel = w.cancel.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            cancel.trigger(Reason::Interrupted);
        });
        let r = d.query::<String>(&redis::cmd("PING"), w);
        assert!(
            matches!(
                r,
                Err(Failure::Stopped(Stop::Cancelled(Reason::Interrupted)))
            ),
            "{r:?}"
        );
        let _ = t.join();
    }

    #[test]
    fn a_closed_port_is_refused_not_timed_out() {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        match Direct::open(&plain(port), watch()) {
            Err(Failure::Redis(e)) => assert!(e.is_connection_refusal(), "{e}"),
            Err(f) => panic!("{f:?}"),
            Ok(_) => panic!("connected to a closed port"),
        }
    }
}
