//! A blocking client: connect to the socket, send typed requests, read typed answers and streams.
//! Blocking on purpose: the CLI and the TUI's worker threads have no async runtime.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::{ApiError, Reply, Request, StreamItem};

/// One connection to the daemon.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ApiError> {
        let s = UnixStream::connect(path).map_err(|source| ApiError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Client {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// A client on a connection already made (e.g. after checking who listens on it).
    pub fn from_stream(s: UnixStream) -> Result<Client, ApiError> {
        Ok(Client {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// Send one request line.
    pub fn send(&mut self, req: &Request) -> Result<(), ApiError> {
        let mut s = serde_json::to_string(req)?;
        s.push('\n');
        self.writer.write_all(s.as_bytes())?;
        Ok(())
    }

    /// Send a request and read its answer, `ok` or not.
    pub fn reply<T: DeserializeOwned>(&mut self, req: &Request) -> Result<Reply<T>, ApiError> {
        self.send(req)?;
        let line = self.next_line()?.ok_or(ApiError::Closed)?;
        Ok(serde_json::from_str(&line)?)
    }

    /// Send a request and read its answer; a failed answer is [`ApiError::Refused`].
    pub fn call<T: DeserializeOwned>(&mut self, req: &Request) -> Result<T, ApiError> {
        self.reply(req)?.into_result()
    }

    /// The next non-blank line as sent (a stream item, for printing without re-encoding), or
    /// `None` at the end of the stream.
    pub fn next_line(&mut self) -> Result<Option<String>, ApiError> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            if !line.trim().is_empty() {
                return Ok(Some(line));
            }
        }
    }

    /// The next stream item, or `None` at the end of the stream.
    pub fn next_item(&mut self) -> Result<Option<StreamItem>, ApiError> {
        match self.next_line()? {
            Some(l) => Ok(Some(serde_json::from_str(&l)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Done, Status};

    /// A one-connection server that answers each line with the next canned line.
    fn serve(path: &Path, answers: Vec<&'static str>) -> std::thread::JoinHandle<Vec<String>> {
        let l = std::os::unix::net::UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut got = Vec::new();
            let mut lines = BufReader::new(s).lines();
            for a in answers {
                got.push(lines.next().unwrap().unwrap());
                w.write_all(a.as_bytes()).unwrap();
            }
            got
        })
    }

    #[test]
    fn typed_calls_send_one_line_and_read_one_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let h = serve(
            &path,
            vec![
                "{\"ok\":true,\"pid\":42,\"events\":{\"file.open\":3}}\n",
                "{\"ok\":false,\"error\":\"no\"}\n",
                "{\"ok\":true}\n\n{\"lagged\":2}\n",
            ],
        );
        let mut c = Client::connect(&path).unwrap();
        let st: Status = c.call(&Request::Status).unwrap();
        assert_eq!((st.pid, st.events["file.open"]), (42, 3));
        let e = c.call::<Done>(&Request::Rules).unwrap_err();
        assert!(matches!(&e, ApiError::Refused(m) if m == "no"), "{e}");
        c.call::<Done>(&Request::subscribe(None, true, false))
            .unwrap();
        assert_eq!(
            c.next_item().unwrap(),
            Some(StreamItem::Lagged(2)),
            "blank lines skipped"
        );
        let sent = h.join().unwrap();
        assert_eq!(sent[0], r#"{"op":"status"}"#);
        assert_eq!(
            sent[2],
            r#"{"op":"subscribe","session":null,"events":true,"alerts":false}"#
        );
        assert_eq!(c.next_item().unwrap(), None, "end of stream");
    }

    #[test]
    fn connecting_to_a_missing_socket_names_it() {
        let e = Client::connect(Path::new("/nonexistent/agentwatch.sock"))
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("`/nonexistent/agentwatch.sock`"),
            "{e}"
        );
    }
}
