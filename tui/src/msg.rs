//! The messages the model and the background worker exchange: [`Request`]s go out to the
//! daemon, [`Update`]s come back.
//!
//! They live apart from both sides so that [`crate::state`] (which queues requests and applies
//! updates) and [`crate::backend`] (which sends and receives them) each depend on this module
//! and never on each other. Requests and answers are the `agent-api` types; the only rows here
//! are those of [`crate::answer`].

use std::time::Duration;

use agent_api::{Answer, StreamItem};

use crate::answer::AlertRow;

/// What a request is for, so its answer lands in the right place of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Purpose {
    Status,
    Rules,
    Alerts,
    Sessions,
    /// Open a session; `focus` is an alert id to centre the timeline on.
    Session {
        focus: Option<String>,
    },
    Search,
    Triage,
    /// A response action on a session (`kill`, `freeze`, `thaw`).
    Respond {
        session: String,
        action: agent_api::SessionAction,
    },
}

/// A request from the UI.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub purpose: Purpose,
    pub body: agent_api::Request,
}

/// One line of the live stream: an item, or why the line is not one (counted and skipped).
pub type LiveLine = Result<StreamItem, String>;

/// Something that happened on the background threads.
#[derive(Debug)]
pub enum Update {
    /// An answer, or the error that prevented one (a refusal of the daemon included).
    Answer {
        purpose: Purpose,
        result: Result<Answer, String>,
    },
    /// One line of the live stream.
    Live(LiveLine),
    /// The live stream is (re)connected.
    Connected,
    /// The connection is down; retrying in `retry`.
    Disconnected { error: String, retry: Duration },
    /// The backend has no live stream (offline data dir).
    NoLiveStream,
    /// A successful `alerts` answer, already made into rows on the worker thread.
    AlertRows(Vec<Box<AlertRow>>),
}
