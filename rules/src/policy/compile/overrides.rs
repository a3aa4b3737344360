//! `[[override]]`: local changes to a rule by id, applied after every rule compiled, so a site
//! can disable a shipped rule, change its severity or response, or add exceptions and tags
//! without editing (or copying) the file that defines it.
//!
//! Falco's `enabled: false` and `override: { exceptions: append }` are the model: `enabled`,
//! `severity` replace; `exceptions` and `tags` append; `action` replaces the rule's response
//! whole (its `mode` and `rate_limit` then come from the override), while `mode` or `rate_limit`
//! alone adjust the response the rule already has. Overrides apply in file order, then in order
//! within a file. Every value is checked where the override wrote it, so errors name the
//! override's `file:line:col`; an override with any error changes nothing. An override of an
//! unknown rule is an error with the nearest rule id suggested: a typo must not leave a rule
//! silently enabled.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::context::Compiler;
use super::rule::ResponseKeys;
use crate::error::did_you_mean;
use crate::policy::definitions::OverrideDef;
use crate::policy::rule::{Rule, RuleInfo};
use crate::policy::validate::check_text;

impl Compiler<'_> {
    /// Apply `overrides` (each with its source index) to the compiled rules. `defined` holds
    /// every rule id the policy defines, compiled or not: an override of a rule that failed to
    /// compile is skipped (that rule's errors are already reported).
    pub(super) fn apply_overrides(
        &mut self,
        overrides: Vec<(usize, Spanned<OverrideDef>)>,
        defined: &HashMap<String, (usize, usize)>,
        rules: &mut [Rule],
        infos: &mut [RuleInfo],
    ) {
        for (file, o) in overrides {
            let at = self.at(file, o.span().start);
            let o = o.into_inner();
            let id = o.rule.get_ref().clone();
            let id_at = o.rule.span().start;
            let Some(i) = rules.iter().position(|r| r.id == id) else {
                if !defined.contains_key(&id) {
                    let hint = did_you_mean(&id, defined.keys().map(|k| k.as_str()));
                    self.err(
                        file,
                        id_at,
                        format!("override names unknown rule `{}`{hint}", id.escape_debug()),
                    );
                }
                continue;
            };
            if o.enabled.is_none()
                && o.severity.is_none()
                && o.action.is_none()
                && o.mode.is_none()
                && o.rate_limit.is_none()
                && o.exceptions.is_empty()
                && o.tags.is_none()
            {
                self.err(
                    file,
                    id_at,
                    format!(
                        "override of rule `{id}` changes nothing (set `enabled`, `severity`, `action`, `mode`, `rate_limit`, `exceptions` or `tags`)"
                    ),
                );
                continue;
            }
            let n0 = self.errors.len();
            let rule = &rules[i];
            let mut uses = Vec::new();
            let mut exceptions = Vec::new();
            for e in &o.exceptions {
                if let Some(n) = self.compile_cond(file, e, 1, &mut uses) {
                    exceptions.push(n);
                }
            }
            if rule.kinds != 0 {
                self.check_uses(file, &uses, rule.kinds);
            }
            let tags = o.tags.as_ref().map(|t| t.get_ref().clone());
            if let Some(t) = &o.tags {
                for s in t.get_ref() {
                    if let Err(e) = check_text(s) {
                        self.err(file, t.span().start, e);
                    }
                }
            }
            let mut response = infos[i].response.clone();
            if o.action.is_some() {
                let keys = ResponseKeys {
                    action: o.action.as_ref(),
                    mode: o.mode.as_ref(),
                    rate_limit: o.rate_limit.as_ref(),
                    inline: None,
                };
                let shape = (
                    rule.kinds,
                    &rule.mode,
                    &rule.cond,
                    rule.exceptions.len() + exceptions.len(),
                );
                response = self.compile_response(file, &keys, &id, shape);
            } else if o.mode.is_some() || o.rate_limit.is_some() {
                match &mut response {
                    None => {
                        for (key, v) in [("mode", &o.mode), ("rate_limit", &o.rate_limit)] {
                            if let Some(v) = v {
                                self.err(
                                    file,
                                    v.span().start,
                                    format!(
                                        "override sets `{key}` but rule `{id}`'s `action` is `alert`; set `action` too"
                                    ),
                                );
                            }
                        }
                    }
                    Some(r) => {
                        if let Some(m) = &o.mode {
                            r.dry_run = self.parse_mode(file, m);
                        }
                        if let Some(l) = &o.rate_limit {
                            (r.limit, r.per_ns) = self.parse_rate_limit(file, l);
                        }
                    }
                }
            }
            if !exceptions.is_empty() && response.as_ref().is_some_and(|r| r.inline.is_some()) {
                self.err(
                    file,
                    o.exceptions[0].span().start,
                    format!(
                        "rule `{id}` is an `inline` kill done in the kernel, which cannot check exceptions; override its `action` too"
                    ),
                );
            }
            if self.errors.len() != n0 {
                continue;
            }
            let rule = &mut rules[i];
            let info = &mut infos[i];
            if let Some(e) = &o.enabled {
                rule.enabled = *e.get_ref();
                info.enabled = *e.get_ref();
            }
            if let Some(s) = &o.severity {
                rule.severity = *s.get_ref();
                info.severity = *s.get_ref();
            }
            if let Some(t) = tags {
                for t in t {
                    if !rule.tags.contains(&t) {
                        rule.tags.push(t.clone());
                        info.tags.push(t);
                    }
                }
            }
            info.response = response;
            // State survives a policy swap only for an unchanged meaning (see `compile::rule`).
            let text = format!(
                "{}|{:?}|{}|{:?}",
                rule.fingerprint, rule.severity, rule.enabled, exceptions
            );
            rule.fingerprint = Sha256::digest(text.as_bytes())
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect();
            rule.exceptions.extend(exceptions);
            info.overrides.push(at);
        }
    }
}
