//! An app's control socket: a Unix stream socket taking one command per line, for scripts,
//! `socat` or `nc -U`, the same commands an app usually registers with telemetry too. Each
//! reply is whatever the app's handler returns, newline-terminated. Each connection is served
//! on a thread of its own, never on an lcore; a handler reaches the workers through the
//! pipeline's messenger or shared tables, as a telemetry command would.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A listening control socket; the socket file is removed when it is dropped (a clean exit
/// leaves nothing behind).
pub struct ControlSocket {
    path: PathBuf,
}

impl ControlSocket {
    /// Listens on `path` (replacing a stale socket file) and answers each line of each
    /// connection with `reply(line)`; blank lines get no answer.
    pub fn serve(
        path: &Path,
        reply: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> std::io::Result<ControlSocket> {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        let reply = Arc::new(reply);
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let reply = Arc::clone(&reply);
                    std::thread::spawn(move || {
                        let Ok(mut writer) = stream.try_clone() else {
                            return;
                        };
                        for line in BufReader::new(stream).lines() {
                            let Ok(line) = line else { return };
                            if line.trim().is_empty() {
                                continue;
                            }
                            let mut answer = reply(line.trim());
                            if !answer.ends_with('\n') {
                                answer.push('\n');
                            }
                            if writer.write_all(answer.as_bytes()).is_err() {
                                return;
                            }
                        }
                    });
                }
            })?;
        Ok(ControlSocket {
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`ControlSocket::serve`] for an app's `--control PATH`: says where it listens, and
    /// fails with one line naming the path.
    pub fn listen(
        path: &Path,
        reply: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Result<ControlSocket, String> {
        let socket = ControlSocket::serve(path, reply)
            .map_err(|e| format!("cannot listen on control socket {}: {e}", path.display()))?;
        println!("control socket: {}", path.display());
        Ok(socket)
    }
}

/// Offers an app's control commands through DPDK's telemetry socket as well: each
/// `(telemetry name, help, command)` answers `reply("command params")` (an empty command
/// passes the parameters alone, as the whole line). A command that cannot be registered is a
/// warning of `app`'s, not a failure: the socket still serves it.
pub fn register_telemetry(
    app: &str,
    commands: &[(&str, &str, &'static str)],
    reply: impl Fn(&str) -> String + Clone + Send + Sync + 'static,
) {
    for &(name, help, command) in commands {
        let reply = reply.clone();
        let registered = crate::stats::telemetry::register_command(name, help, move |params| {
            if command.is_empty() {
                reply(params.trim())
            } else {
                reply(format!("{command} {params}").trim())
            }
        });
        if let Err(e) = registered {
            eprintln!("{app}: warning: no telemetry command {name}: {e}");
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn each_line_gets_its_reply_and_the_socket_file_goes_with_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        std::fs::write(&path, b"stale").unwrap();
        let socket = ControlSocket::serve(&path, |line| format!("got {line}")).unwrap();
        let stream = UnixStream::connect(&path).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        (&stream).write_all(b"  stats \n\nshow\n").unwrap();
        let mut lines = Vec::new();
        for _ in 0..2 {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            lines.push(line);
        }
        assert_eq!(lines, ["got stats\n", "got show\n"]);
        drop(socket);
        assert!(!path.exists());
    }
}
