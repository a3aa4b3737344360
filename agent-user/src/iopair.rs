//! io_uring operations that arrive as two records: a submission that carries the paths (or the
//! payload of a send), then a completion that carries the result.
//!
//! The submission is held until its completion says the operation succeeded; failed ones are
//! dropped, as the syscall handlers do. Sends are reported when the completion says bytes went,
//! with that count. Kept apart from the sensor thread so that replayed records (tests) are
//! paired exactly as live ones.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agent_common::{IO_PENDING, IO_RESULT, RecordKind};
use agent_model::decode::Record;

/// Submitted io_uring operations waiting for their completion, by the request's cookie.
#[derive(Default)]
pub struct IoPairs {
    pending: HashMap<u64, (Record, Instant)>,
}

impl IoPairs {
    /// Pass a record through: `None` while a submission waits for its completion or when the
    /// operation failed; the submission (with the completion's byte count for a send) once it
    /// succeeded; any other record unchanged.
    pub fn pair(&mut self, rec: Record) -> Option<Record> {
        let (flags, cookie, res, send) = match &rec {
            Record::PathOp { body, .. } => (body.flags, body.cookie, body.arg0 as i64, false),
            Record::Sock { hdr, body, .. } if hdr.kind == RecordKind::Send => {
                (body.flags, body.cookie, body.bytes as i32 as i64, true)
            }
            _ => return Some(rec),
        };
        if flags & IO_PENDING != 0 {
            self.pending.insert(cookie, (rec, Instant::now()));
            return None;
        }
        if flags & IO_RESULT != 0 {
            let (mut held, _) = self.pending.remove(&cookie)?;
            if !send {
                return (res == 0).then_some(held);
            }
            if let Record::Sock { body, .. } = &mut held {
                body.bytes = res as u32;
            }
            return (res > 0).then_some(held);
        }
        Some(rec)
    }

    /// Forget submissions older than `ttl`; returns how many were dropped.
    pub fn expire(&mut self, ttl: Duration) -> usize {
        let n = self.pending.len();
        self.pending.retain(|_, (_, t)| t.elapsed() < ttl);
        n - self.pending.len()
    }
}
