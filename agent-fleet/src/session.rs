//! `agentwatch session --fleet ID`: a session's process tree and timeline from whichever host
//! recorded it, over NATS request/reply. Each daemon with a NATS output listens on
//! `<prefix>.session`; the request body is the session id; a daemon that has the session
//! answers with the API's `session` answer plus its host (`{"host": ..., "ok": true, ...}`),
//! every other daemon stays silent, so one request across hundreds of hosts brings back one
//! answer, not hundreds of refusals. The asker ([`fleet_session`]) takes the first answer, or
//! says that no host answered within its timeout.

use std::sync::Arc;
use std::time::Duration;

use agent_api::{Reply, SessionDetail};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::FleetError;
use crate::config::NatsConfig;

/// Looks up a session in the local store (blocking; called off the async threads). `None`
/// when this host has no such session.
pub type SessionFn = Arc<dyn Fn(&str) -> Option<Reply<SessionDetail>> + Send + Sync>;

/// One host's answer on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionAnswer {
    pub host: String,
    #[serde(flatten)]
    pub reply: Reply<SessionDetail>,
}

/// The subject every host answers session look-ups on.
pub fn session_subject(cfg: &NatsConfig) -> String {
    format!("{}.session", cfg.subject_prefix)
}

/// The encoded answer of `host` to one request body; `None`: stay silent.
pub fn session_answer_bytes(
    host: &str,
    body: &[u8],
    f: &SessionFn,
    max_payload: usize,
) -> Option<Vec<u8>> {
    let id = std::str::from_utf8(body).ok()?.trim();
    // Session ids are 16 hex digits; anything else is not looked up at all.
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let reply = f(id)?;
    let mut a = SessionAnswer {
        host: host.to_owned(),
        reply,
    };
    let bytes = serde_json::to_vec(&a).ok()?;
    if bytes.len() <= max_payload {
        return Some(bytes);
    }
    a.reply = Reply::err(format!(
        "session `{id}` is {} bytes, more than the NATS payload limit ({max_payload}); read it on `{host}`",
        bytes.len()
    ));
    serde_json::to_vec(&a).ok()
}

/// Answer session look-ups for `host` until the connection closes.
pub(crate) async fn serve(client: async_nats::Client, cfg: NatsConfig, host: String, f: SessionFn) {
    let mut sub = match client.subscribe(session_subject(&cfg)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "fleet session: cannot subscribe; this host will not answer");
            return;
        }
    };
    while let Some(msg) = sub.next().await {
        let Some(reply) = msg.reply else { continue };
        let max = client.server_info().max_payload.max(1024);
        let (h, f2, body) = (host.clone(), f.clone(), msg.payload);
        let Ok(Some(bytes)) =
            tokio::task::spawn_blocking(move || session_answer_bytes(&h, &body, &f2, max)).await
        else {
            continue;
        };
        if let Err(e) = client.publish(reply, bytes.into()).await {
            tracing::debug!(error = %e, "fleet session: cannot publish an answer");
        }
    }
}

/// Ask every host for session `id`; the first host that has it answers. `Ok(None)`: no host
/// answered within `timeout`.
pub async fn fleet_session(
    cfg: &NatsConfig,
    id: &str,
    timeout: Duration,
) -> Result<Option<SessionAnswer>, FleetError> {
    let net = FleetError::Net;
    let opts = cfg.connect_options().await.map_err(net)?;
    let client = opts
        .connection_timeout(Duration::from_secs(3))
        .connect(cfg.servers.as_slice())
        .await
        .map_err(|e| {
            net(format!(
                "cannot connect to `{}`: {e}",
                cfg.servers.join(",")
            ))
        })?;
    let inbox = client.new_inbox();
    let mut sub = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| net(format!("cannot subscribe to `{inbox}`: {e}")))?;
    let subject = session_subject(cfg);
    client
        .publish_with_reply(subject.clone(), inbox, id.to_owned().into())
        .await
        .map_err(|e| net(format!("cannot publish on `{subject}`: {e}")))?;
    client
        .flush()
        .await
        .map_err(|e| net(format!("cannot flush: {e}")))?;
    let deadline = tokio::time::Instant::now() + timeout;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, sub.next()).await {
        match serde_json::from_slice::<SessionAnswer>(&msg.payload) {
            Ok(a) => return Ok(Some(a)),
            Err(e) => tracing::warn!(error = %e, "fleet session: an answer is not a session"),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hex_ids_are_looked_up_and_absent_sessions_stay_silent() {
        let f: SessionFn = Arc::new(|id| (id == "00112233aabbccdd").then(|| Reply::err("x")));
        assert!(session_answer_bytes("h", b"../../etc", &f, 1 << 20).is_none());
        assert!(session_answer_bytes("h", b"ffffffffffffffff", &f, 1 << 20).is_none());
        let b = session_answer_bytes("h", b"00112233aabbccdd\n", &f, 1 << 20).unwrap();
        let a: SessionAnswer = serde_json::from_slice(&b).unwrap();
        assert_eq!(a.host, "h");
    }
}
