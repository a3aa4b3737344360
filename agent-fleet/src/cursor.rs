//! The shipper's persisted cursor: the last spool seq JetStream acknowledged, one decimal number
//! in `<data-dir>/fleet/<output>.cursor`, replaced atomically (write, fsync, rename). It may lag
//! behind the acknowledgements (it is written at most a few times a second); a restart then
//! resends a little, which the streams' duplicate window absorbs.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::FleetError;

pub(crate) struct Cursor {
    path: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FleetError + '_ {
    move |source| FleetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Cursor {
    pub fn new(data_dir: &Path, name: &str) -> Cursor {
        Cursor {
            path: data_dir.join("fleet").join(format!("{name}.cursor")),
        }
    }

    /// The stored seq; 0 when there is none yet. A damaged file is an error, not a silent 0
    /// (which would resend the whole spool).
    pub fn load(&self) -> Result<u64, FleetError> {
        match std::fs::read_to_string(&self.path) {
            Ok(t) => t.trim().parse().map_err(|_| {
                FleetError::Config(format!(
                    "cursor file `{}` does not hold a sequence number",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(&self.path)(e)),
        }
    }

    pub fn store(&self, seq: u64) -> Result<(), FleetError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let tmp = self.path.with_extension("cursor.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(format!("{seq}\n").as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let d = tempfile::tempdir().unwrap();
        let c = Cursor::new(d.path(), "nats");
        assert_eq!(c.load().unwrap(), 0);
        c.store(42).unwrap();
        assert_eq!(c.load().unwrap(), 42);
        std::fs::write(d.path().join("fleet/nats.cursor"), "x").unwrap();
        assert!(c.load().unwrap_err().to_string().contains("nats.cursor"));
    }
}
