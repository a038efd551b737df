//! The HTTP readiness probe: a plain HTTP/1.1 `GET` over TCP, repeated
//! until an answer's status is 2xx. No TLS and no HTTP library: the URL is
//! parsed here and only the status line is read.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::RunningProcess;
use crate::error::{Error, Operation, Result};

/// How long one attempt (connect, send, read the status line) may take
/// before it counts as failed and the next one starts.
const ATTEMPT: Duration = Duration::from_secs(2);
/// The most of an answer read while looking for its status line.
const MAX_STATUS_LINE: usize = 8 * 1024;

impl RunningProcess {
    /// Waits until an HTTP `GET` of `url` answers with a 2xx status, e.g. a
    /// health endpoint. `url` is `http://host[:port][/path][?query]` (port 80
    /// by default; a host name, an IPv4 address or a bracketed IPv6 one).
    /// Each attempt sends one HTTP/1.1 request with `Connection: close` and
    /// reads only the status line; a refused connection, another status or
    /// an attempt that takes longer than 2 s is retried, with the same
    /// pauses as [`wait_for`](RunningProcess::wait_for). Redirects are not
    /// followed. Does not read or write the child's pipes.
    ///
    /// `https://` is an [`Error::Unsupported`] (processkit carries no TLS:
    /// probe a plain-HTTP endpoint, or use `wait_for` with your own client);
    /// a URL it cannot parse is an [`Error::InvalidArgument`]. Both are
    /// returned at once, before any attempt.
    ///
    /// Fails with [`Error::NotReady`] when `deadline` passes
    /// ([`NotReadyReason::DeadlineExpired`](crate::NotReadyReason::DeadlineExpired))
    /// or the child exits first
    /// ([`NotReadyReason::Exited`](crate::NotReadyReason::Exited)). The
    /// child is never killed here.
    ///
    /// ```no_run
    /// # async fn demo() -> processkit::Result<()> {
    /// use processkit::Command;
    /// use std::time::Duration;
    /// let mut run = Command::new("my-server").arg("--port=8080").start().await?;
    /// run.wait_for_http("http://127.0.0.1:8080/healthz", Duration::from_secs(30))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_http(&mut self, url: &str, deadline: Duration) -> Result<()> {
        let target = Target::parse(url)?;
        let target = &target;
        self.wait_for(move || target.answers_2xx(), deadline).await
    }
}

/// Where an HTTP probe connects, and what it asks for.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// A name or an address (an IPv6 one without its brackets).
    host: String,
    port: u16,
    /// As the `Host` header writes it.
    authority: String,
    /// Path and query, starting with `/`.
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target> {
        let invalid = |why: &str| Error::InvalidArgument {
            operation: Operation::WaitForHttp,
            reason: format!("{why}: expected http://host[:port][/path], got {url:?}"),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
        if scheme.eq_ignore_ascii_case("https") {
            return Err(Error::Unsupported {
                operation: "wait_for_http",
                reason: "https:// needs TLS, which processkit does not carry: probe a \
                         plain-HTTP endpoint, or use wait_for with your own client"
                    .to_owned(),
            });
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(invalid("only http:// can be probed"));
        }
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        let unsafe_char = |c: char| c.is_whitespace() || c.is_control();
        if path.chars().any(unsafe_char) || authority.chars().any(unsafe_char) {
            return Err(invalid("whitespace or a control character"));
        }
        if authority.contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| invalid("an unclosed '['"))?;
                let port = match after {
                    "" => None,
                    p => Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| invalid("junk after ']'"))?,
                    ),
                };
                (host, port)
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() || (!authority.starts_with('[') && host.contains(':')) {
            return Err(invalid("no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| invalid("a bad port"))?,
        };
        Ok(Target {
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            path,
        })
    }

    /// One attempt: whether the answer's status is 2xx, within `ATTEMPT`.
    async fn answers_2xx(&self) -> bool {
        let attempt = async {
            let mut stream = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .ok()?;
            let request = format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: processkit\r\nAccept: */*\r\n\
                 Connection: close\r\n\r\n",
                self.path, self.authority
            );
            stream.write_all(request.as_bytes()).await.ok()?;
            let mut answer = Vec::new();
            let mut chunk = [0u8; 512];
            while !answer.contains(&b'\n') && answer.len() < MAX_STATUS_LINE {
                match stream.read(&mut chunk).await.ok()? {
                    0 => break,
                    n => answer.extend_from_slice(&chunk[..n]),
                }
            }
            status(&answer)
        };
        let found = tokio::time::timeout(ATTEMPT, attempt).await.ok().flatten();
        found.is_some_and(|code| (200..300).contains(&code))
    }
}

/// The status code of an answer's first line (`HTTP/1.1 200 OK`).
fn status(answer: &[u8]) -> Option<u16> {
    let end = answer.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&answer[..end]).ok()?;
    let mut words = line.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    let code = words.next().filter(|c| c.len() == 3)?;
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> (String, u16, String, String) {
        let t = Target::parse(url).unwrap();
        (t.host, t.port, t.authority, t.path)
    }

    #[test]
    fn urls_are_split_into_host_port_and_path() {
        assert_eq!(
            parsed("http://127.0.0.1:8080/healthz?full=1#x"),
            (
                "127.0.0.1".into(),
                8080,
                "127.0.0.1:8080".into(),
                "/healthz?full=1".into()
            )
        );
        assert_eq!(
            parsed("HTTP://localhost"),
            ("localhost".into(), 80, "localhost".into(), "/".into())
        );
        assert_eq!(
            parsed("http://[::1]:9000?q"),
            ("::1".into(), 9000, "[::1]:9000".into(), "/?q".into())
        );
        assert_eq!(parsed("http://[::1]/x").1, 80);
    }

    #[test]
    fn https_is_unsupported_and_junk_is_invalid() {
        assert!(matches!(
            Target::parse("https://example.com"),
            Err(Error::Unsupported { .. })
        ));
        for bad in [
            "example.com",
            "ftp://example.com",
            "http://",
            "http://:80/",
            "http://host:0/",
            "http://host:99999/",
            "http://host:x/",
            "http://user:pw@host/",
            "http://[::1/",
            "http://[::1]x/",
            "http://::1/",
            "http://host/a b",
            "http://host/a\r\nX: y",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(Error::InvalidArgument { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_status_comes_from_the_first_line() {
        assert_eq!(status(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status(b"HTTP/1.0 503\n"), Some(503));
        assert_eq!(status(b"HTTP/1.1 200 OK"), None);
        assert_eq!(status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status(b"HTTP/1.1 2000 Huh\r\n"), None);
    }
}
