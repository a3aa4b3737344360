//! One rule, from its definition to the compiled [`Rule`] and its [`RuleInfo`]: id, texts and
//! tags, exceptions, the output template checked against the rule's kinds, de-duplication, and
//! the fingerprint that decides whether windowed state survives a policy swap.
//!
//! The shape (condition, window or sequence) is compiled by the sibling `window` module; this
//! module completes it. A rule with any error yields nothing, so the engine only ever sees
//! rules that compiled whole.

use agent_model::{FIELDS, Field, Kind};
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::context::Compiler;
use super::window::Shape;
use crate::cond::Node;
use crate::error::did_you_mean;
use crate::policy::definitions::RuleDef;
use crate::policy::limits::DEFAULT_DEDUP_NS;
use crate::policy::response::{Action, DEFAULT_RATE_LIMIT, RuleResponse};
use crate::policy::rule::{Mode, Rule, RuleInfo, kind_bit};
use crate::policy::template::{Part, parse_template};
use crate::policy::validate::{check_text, parse_duration, valid_name};

impl Compiler<'_> {
    /// One rule: its names and texts, shape, exceptions, output template and de-duplication,
    /// with the fields it uses checked against its kinds. `None` after recording its errors.
    pub(super) fn compile_rule(&mut self, file: usize, def: RuleDef) -> Option<(Rule, RuleInfo)> {
        let n0 = self.errors.len();
        let id = def.id.get_ref().clone();
        let id_at = def.id.span().start;
        if !valid_name(&id) {
            self.err(
                file,
                id_at,
                format!(
                    "rule id `{}` must be 1 to 128 lowercase letters, digits, `_`, `.` or `-`",
                    id.escape_debug()
                ),
            );
        }
        for (s, at) in [
            (def.description.get_ref(), def.description.span().start),
            (def.output.get_ref(), def.output.span().start),
        ] {
            if let Err(e) = check_text(s) {
                self.err(file, at, e);
            }
        }
        if def.description.get_ref().trim().is_empty() {
            self.err(
                file,
                def.description.span().start,
                format!("rule `{id}` has an empty `description`"),
            );
        }
        let tags: Vec<String> = def
            .tags
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_default();
        let tags_at = def.tags.as_ref().map_or(id_at, |t| t.span().start);
        for t in &tags {
            if let Err(e) = check_text(t) {
                self.err(file, tags_at, e);
            }
        }
        let Shape {
            mode,
            per,
            within_ns,
            kinds,
            mut uses,
            cond,
        } = self.compile_shape(file, &def, &id, id_at);
        let mut exceptions = Vec::new();
        for e in &def.exceptions {
            if let Some(n) = self.compile_cond(file, e, 1, &mut uses) {
                exceptions.push(n);
            }
        }
        if kinds != 0 {
            self.check_uses(file, &uses, kinds);
        }
        // Output template.
        let output = match parse_template(def.output.get_ref()) {
            Ok(p) => {
                for part in &p {
                    if let Part::Field(f) = part
                        && kinds != 0
                        && !Kind::ALL
                            .iter()
                            .any(|&k| kinds & kind_bit(k) != 0 && f.applies_to(k))
                    {
                        self.err(
                            file,
                            def.output.span().start,
                            format!(
                                "output field `{}` does not exist for any of the rule's kinds",
                                f.name()
                            ),
                        );
                    }
                }
                p
            }
            Err(e) => {
                self.err(file, def.output.span().start, e);
                Vec::new()
            }
        };
        // De-duplication.
        let mut dedup_ns = DEFAULT_DEDUP_NS;
        let mut dedup_key = None;
        if let Some(d) = &def.dedup {
            let d = d.get_ref();
            match parse_duration(d.window.get_ref()) {
                Ok(ns) => dedup_ns = ns,
                Err(e) => self.err(file, d.window.span().start, e),
            }
            if !d.key.is_empty() {
                let mut keys = Vec::new();
                for k in &d.key {
                    match Field::from_name(k) {
                        Some(f) => keys.push(f),
                        None => {
                            let s = did_you_mean(k, FIELDS.iter().map(|f| f.name));
                            self.err(
                                file,
                                d.window.span().start,
                                format!("unknown dedup key field `{}`{s}", k.escape_debug()),
                            );
                        }
                    }
                }
                dedup_key = Some(keys);
            }
        }
        let keys = ResponseKeys {
            action: def.action.as_ref(),
            mode: def.mode.as_ref(),
            rate_limit: def.rate_limit.as_ref(),
            inline: def.inline.as_ref(),
        };
        let response =
            self.compile_response(file, &keys, &id, (kinds, &mode, &cond, exceptions.len()));
        if self.errors.len() != n0 {
            return None;
        }
        let fingerprint = {
            let text = format!(
                "{:?}|{:?}|{kinds}|{:?}|{:?}|{:?}|{:?}|{within_ns}|{dedup_ns}|{:?}|{}",
                def.severity, mode, cond, exceptions, output, per, dedup_key, def.enabled
            );
            let h = Sha256::digest(text.as_bytes());
            h.iter().take(8).map(|b| format!("{b:02x}")).collect()
        };
        let kind_list: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|&k| kinds & kind_bit(k) != 0)
            .collect();
        let info = RuleInfo {
            id: id.clone(),
            severity: def.severity,
            enabled: def.enabled,
            description: def.description.get_ref().clone(),
            kinds: kind_list,
            tags: tags.clone(),
            mode: match mode {
                Mode::Event => "event",
                Mode::Count { .. } => "count",
                Mode::Distinct { .. } => "distinct",
                Mode::Sum { .. } => "sum",
                Mode::Sequence { .. } => "sequence",
            },
            defined_at: String::new(),
            response,
            overrides: Vec::new(),
        };
        let rule = Rule {
            id,
            severity: def.severity,
            tags,
            enabled: def.enabled,
            kinds,
            cond,
            exceptions,
            output,
            mode,
            per,
            within_ns,
            dedup_ns,
            dedup_key,
            fingerprint,
        };
        Some((rule, info))
    }
}

impl Compiler<'_> {
    /// The rule's `action`, `mode` and `rate_limit`; `None` for `alert`. The
    /// response keys without an action are an error: a `mode` that does nothing must not pass
    /// for protection.
    pub(super) fn compile_response(
        &mut self,
        file: usize,
        def: &ResponseKeys<'_>,
        id: &str,
        shape: (u64, &Mode, &Node, usize),
    ) -> Option<RuleResponse> {
        let action = match def.action {
            None => None,
            Some(a) => match Action::parse(a.get_ref()) {
                Ok(x) => x,
                Err(()) => {
                    self.err(
                        file,
                        a.span().start,
                        format!(
                            "unknown action `{}`; expected one of `{}`",
                            a.get_ref().escape_debug(),
                            Action::NAMES.join("`, `")
                        ),
                    );
                    return None;
                }
            },
        };
        let Some(action) = action else {
            for (key, at) in [
                ("mode", def.mode.as_ref().map(|m| m.span().start)),
                ("inline", def.inline.as_ref().map(|m| m.span().start)),
                (
                    "rate_limit",
                    def.rate_limit.as_ref().map(|m| m.span().start),
                ),
            ] {
                if let Some(at) = at {
                    self.err(
                        file,
                        at,
                        format!("rule `{id}` sets `{key}` but its `action` is `alert`"),
                    );
                }
            }
            return None;
        };
        let dry_run = def.mode.and_then(|m| self.parse_mode(file, m));
        let (limit, per_ns) = match def.rate_limit {
            Some(r) => self.parse_rate_limit(file, r),
            None => DEFAULT_RATE_LIMIT,
        };
        let inline = match def.inline {
            Some(i) if *i.get_ref() => {
                let at = i.span().start;
                if action != Action::Kill {
                    self.err(
                        file,
                        at,
                        format!(
                            "rule `{id}` sets `inline = true` but its `action` is `{}`; only `kill` is done in the kernel",
                            action.name()
                        ),
                    );
                    None
                } else {
                    let (kinds, mode, cond, exceptions) = shape;
                    match super::inline::inline_targets(kinds, mode, cond, exceptions) {
                        Ok(t) => Some(t),
                        Err(e) => {
                            self.err(file, at, format!("rule `{id}`: {e}"));
                            None
                        }
                    }
                }
            }
            _ => None,
        };
        Some(RuleResponse {
            action,
            dry_run,
            limit,
            per_ns,
            inline,
        })
    }
}

/// The response keys of a rule (or of an `[[override]]`), all from one file.
pub(super) struct ResponseKeys<'d> {
    pub(super) action: Option<&'d Spanned<String>>,
    pub(super) mode: Option<&'d Spanned<String>>,
    pub(super) rate_limit: Option<&'d Spanned<String>>,
    pub(super) inline: Option<&'d Spanned<bool>>,
}

impl Compiler<'_> {
    /// `mode`: `Some(true)` for `dry_run`, `Some(false)` for `enforce`; `None` after an error.
    pub(super) fn parse_mode(&mut self, file: usize, m: &Spanned<String>) -> Option<bool> {
        match m.get_ref().as_str() {
            "enforce" => Some(false),
            "dry_run" => Some(true),
            other => {
                self.err(
                    file,
                    m.span().start,
                    format!(
                        "unknown mode `{}`; expected `enforce` or `dry_run`",
                        other.escape_debug()
                    ),
                );
                None
            }
        }
    }

    /// `rate_limit = "N/DURATION"`: the count and the period in ns (the default after an error).
    pub(super) fn parse_rate_limit(&mut self, file: usize, r: &Spanned<String>) -> (u32, i64) {
        let (mut limit, mut per_ns) = DEFAULT_RATE_LIMIT;
        let at = r.span().start;
        let bad = |s: &str| {
            format!(
                "rate limit `{}` is not `COUNT/DURATION` like `5/1m` (COUNT 1 to 1000)",
                s.escape_debug()
            )
        };
        match r.get_ref().split_once('/') {
            Some((n, d)) => {
                match n.trim().parse::<u32>() {
                    Ok(n) if (1..=1000).contains(&n) => limit = n,
                    _ => self.err(file, at, bad(r.get_ref())),
                }
                match parse_duration(d) {
                    Ok(ns) if ns > 0 => per_ns = ns,
                    Ok(_) => self.err(file, at, bad(r.get_ref())),
                    Err(e) => self.err(file, at, e),
                }
            }
            None => self.err(file, at, bad(r.get_ref())),
        }
        (limit, per_ns)
    }
}
