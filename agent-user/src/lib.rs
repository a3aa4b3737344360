//! The agentwatch daemon and CLI as a library: the sensor thread, enrichment, policy, outputs,
//! the local API and the client commands.
//!
//! The `agentwatch` binary (`main.rs`) only parses arguments, dispatches and maps errors to exit
//! codes; everything else lives here so that it can be unit-tested without root (captured record
//! bytes in, events out).

pub mod agentids;
pub mod api;
pub mod btf;
pub mod capture;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod diskfull;
pub mod dnsanswer;
pub mod egress;
pub mod evidence;
pub mod fleetsearch;
pub mod fleettui;
pub mod hookcmd;
pub mod hooks;
pub mod install;
pub mod integrity;
pub mod iopair;
pub mod loader;
pub mod lowspace;
pub mod metrics;
pub mod outfile;
pub mod pipeline;
pub mod protect;
pub mod query;
pub mod redact;
pub mod reload;
pub mod response;
pub mod rulesshow;
pub mod sdnotify;
pub mod sockaddr;
pub mod source;
pub mod spoolout;
pub mod syslog;
pub mod tls_probes;
pub mod tracker;
pub mod webhook;

/// An error caused by bad usage or bad input: exit status 2.
#[derive(Debug)]
pub struct BadInput(pub anyhow::Error);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for BadInput {}
