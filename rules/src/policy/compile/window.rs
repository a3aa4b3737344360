//! The shape of a rule: a stateless condition, a condition with a `window` (count or distinct
//! count), or a `sequence` of steps — what decides its [`Mode`], its kinds and its window.
//!
//! Apart from the rest of the rule compiler because the three shapes exclude each other and each
//! has its own checks (durations, thresholds, step counts, per-step kinds); the result is one
//! [`Shape`] that the rule compiler completes with exceptions, output and de-duplication.

use agent_model::{FIELDS, Field};
use toml::Spanned;

use super::context::{Compiler, Use};
use crate::cond::Node;
use crate::error::did_you_mean;
use crate::policy::definitions::Item;
use crate::policy::definitions::{RuleDef, SeqDef, WindowDef};
use crate::policy::limits::{MAX_STEPS, MAX_SUM_THRESHOLD, MAX_THRESHOLD};
use crate::policy::rule::{Mode, Per, Step};
use crate::policy::validate::parse_duration;

/// What the shape of a rule compiles to.
pub(super) struct Shape {
    pub(super) mode: Mode,
    pub(super) per: Per,
    pub(super) within_ns: i64,
    /// The kinds the rule applies to; 0 when they could not be read.
    pub(super) kinds: u64,
    /// Where the condition and the window use fields, to check against the kinds.
    pub(super) uses: Vec<Use>,
    /// The condition; `Node::True` for a sequence, whose conditions are in its steps.
    pub(super) cond: Node,
}

impl Compiler<'_> {
    /// The shape of rule `id` (defined at `id_at`): exactly one of `condition` and `sequence`.
    pub(super) fn compile_shape(
        &mut self,
        file: usize,
        def: &RuleDef,
        id: &str,
        id_at: usize,
    ) -> Shape {
        let mut shape = Shape {
            mode: Mode::Event,
            per: Per::Session,
            within_ns: 0,
            kinds: 0,
            uses: Vec::new(),
            cond: Node::True,
        };
        match (&def.condition, &def.sequence) {
            (Some(_), Some(s)) => {
                self.err(file, s.span().start, format!("rule `{id}` has both `condition` and `sequence`: a sequence takes its conditions in its steps"));
            }
            (None, None) => {
                self.err(
                    file,
                    id_at,
                    format!("rule `{id}` needs a `condition` or a `sequence`"),
                );
            }
            (Some(c), None) => {
                match &def.kinds {
                    Some(k) => shape.kinds = self.parse_kinds(file, k).unwrap_or(0),
                    None => self.err(
                        file,
                        id_at,
                        format!("rule `{id}` needs `kinds`, the event kinds it applies to"),
                    ),
                }
                if let Some(n) = self.compile_cond(file, c, 1, &mut shape.uses) {
                    shape.cond = n;
                }
                if let Some(w) = &def.window {
                    self.compile_window(file, w.get_ref(), &mut shape);
                }
            }
            (None, Some(s)) => {
                if let Some(k) = &def.kinds {
                    self.err(
                        file,
                        k.span().start,
                        "a `sequence` rule takes its `kinds` from its steps; remove `kinds`",
                    );
                }
                if let Some(w) = &def.window {
                    self.err(
                        file,
                        w.span().start,
                        "a rule takes `window` or `sequence`, not both",
                    );
                }
                self.compile_sequence(file, s, &mut shape);
            }
        }
        shape
    }

    /// A `window`: sets the shape's grouping, duration and count or distinct-count mode.
    fn compile_window(&mut self, file: usize, w: &WindowDef, shape: &mut Shape) {
        shape.per = w.per;
        match parse_duration(w.within.get_ref()) {
            Ok(0) => self.err(
                file,
                w.within.span().start,
                "`within` must be longer than `0s`",
            ),
            Ok(ns) => shape.within_ns = ns,
            Err(e) => self.err(file, w.within.span().start, e),
        }
        let t = *w.threshold.get_ref();
        if let Some(f) = &w.sum {
            if let Some(d) = &w.distinct {
                self.err(
                    file,
                    d.span().start,
                    "a window takes `distinct` or `sum`, not both",
                );
            }
            if !(1..=MAX_SUM_THRESHOLD).contains(&t) {
                self.err(
                    file,
                    w.threshold.span().start,
                    format!(
                        "`threshold` `{t}` of a `sum` is out of range `1..={MAX_SUM_THRESHOLD}`"
                    ),
                );
            }
            let Some(field) = self.window_field(file, f) else {
                return;
            };
            if field.def().ty != agent_model::FieldType::Int {
                self.err(
                    file,
                    f.span().start,
                    format!(
                        "`sum` needs an integer field; `{}` is not one",
                        field.name()
                    ),
                );
                return;
            }
            shape.uses.push(Use {
                field,
                at: f.span().start,
                via_macro: None,
                narrow: None,
            });
            shape.mode = Mode::Sum {
                field,
                threshold: t.clamp(1, MAX_SUM_THRESHOLD),
            };
            return;
        }
        if !(2..=MAX_THRESHOLD).contains(&t) {
            self.err(
                file,
                w.threshold.span().start,
                format!("`threshold` `{t}` is out of range `2..={MAX_THRESHOLD}`"),
            );
        }
        let threshold = t.clamp(2, MAX_THRESHOLD) as usize;
        shape.mode = match &w.distinct {
            None => Mode::Count { threshold },
            Some(f) => match self.window_field(file, f) {
                Some(field) => {
                    shape.uses.push(Use {
                        field,
                        at: f.span().start,
                        via_macro: None,
                        narrow: None,
                    });
                    Mode::Distinct { field, threshold }
                }
                None => Mode::Count { threshold },
            },
        };
    }

    /// The field a window names, or `None` after reporting an unknown one.
    fn window_field(&mut self, file: usize, f: &Spanned<String>) -> Option<Field> {
        let field = Field::from_name(f.get_ref());
        if field.is_none() {
            let s = did_you_mean(f.get_ref(), FIELDS.iter().map(|f| f.name));
            self.err(
                file,
                f.span().start,
                format!("unknown field `{}`{s}", f.get_ref().escape_debug()),
            );
        }
        field
    }

    /// The fields of a step's `join`, checked to exist for the step's kinds; `None` after
    /// reporting a problem.
    fn compile_join(
        &mut self,
        file: usize,
        join: &Spanned<crate::policy::definitions::Items>,
        kinds: u64,
    ) -> Option<Vec<Field>> {
        let at = join.span().start;
        let items = join.get_ref().clone().into_vec();
        if items.is_empty() {
            self.err(
                file,
                at,
                "`join` is empty: name the field whose value the steps share",
            );
            return None;
        }
        let mut out = Vec::new();
        for i in items {
            let Item::Str(name) = i else {
                self.err(
                    file,
                    at,
                    "`join` takes field names, e.g. `join = \"file.path\"`",
                );
                return None;
            };
            let f = self.window_field(file, &Spanned::new(at..at, name))?;
            if matches!(
                f.def().ty,
                agent_model::FieldType::StrList | agent_model::FieldType::Bool
            ) {
                self.err(
                    file,
                    at,
                    format!("`join` on `{}` is not supported: join on a single value (a path, a pid, an address)", f.name()),
                );
                return None;
            }
            out.push(f);
        }
        // Each kind of the step must carry one of the fields (the first it carries is used).
        for k in agent_model::Kind::ALL {
            if kinds & crate::policy::rule::kind_bit(k) != 0 && !out.iter().any(|f| f.applies_to(k))
            {
                let names: Vec<String> = out.iter().map(|f| format!("`{}`", f.name())).collect();
                self.err(
                    file,
                    at,
                    format!(
                        "`join` on {} joins nothing for `{}` events: none of the fields exists for them",
                        names.join(", "),
                        k.name()
                    ),
                );
                return None;
            }
        }
        Some(out)
    }

    /// A `sequence`: sets the shape's grouping, duration and steps, and its kinds from theirs.
    fn compile_sequence(&mut self, file: usize, s: &Spanned<SeqDef>, shape: &mut Shape) {
        let sd = s.get_ref();
        shape.per = sd.per;
        match parse_duration(sd.within.get_ref()) {
            Ok(0) => self.err(
                file,
                sd.within.span().start,
                "`within` must be longer than `0s`",
            ),
            Ok(ns) => shape.within_ns = ns,
            Err(e) => self.err(file, sd.within.span().start, e),
        }
        if sd.steps.len() < 2 || sd.steps.len() > MAX_STEPS {
            self.err(
                file,
                s.span().start,
                format!(
                    "a sequence needs `2..={MAX_STEPS}` steps, found `{}`",
                    sd.steps.len()
                ),
            );
        }
        let mut steps = Vec::new();
        let mut joined = false;
        for (i, st) in sd.steps.iter().enumerate() {
            let st_at = st.span().start;
            let st = st.get_ref();
            let Some(mask) = self.parse_kinds(file, &st.kinds) else {
                continue;
            };
            shape.kinds |= mask;
            let join = match &st.join {
                Some(j) => self.compile_join(file, j, mask),
                None => Some(Vec::new()),
            };
            let join = join.unwrap_or_default();
            if !join.is_empty() {
                joined = true;
            } else if joined && st.join.is_none() {
                self.err(
                    file,
                    st_at,
                    format!("step {} has no `join` but an earlier step has one: once a sequence joins, every later step must name the field it shares", i + 1),
                );
            }
            let mut su = Vec::new();
            let Some(n) = self.compile_cond(file, &st.condition, 1, &mut su) else {
                continue;
            };
            self.check_uses(file, &su, mask);
            steps.push(Step {
                kinds: mask,
                cond: n,
                join,
            });
        }
        if sd
            .steps
            .iter()
            .filter(|s| s.get_ref().join.is_some())
            .count()
            == 1
        {
            self.err(
                file,
                s.span().start,
                "only one step has a `join`: a join needs at least two steps that share a value",
            );
        }
        shape.mode = Mode::Sequence { steps };
    }
}
