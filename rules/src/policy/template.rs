//! Output templates: `"{process.exe} read {file.path}"` parsed once, at load time, into
//! [`Part`]s that the engine renders per alert without parsing.
//!
//! Field names are resolved here, so a typo in a template is a load error with a suggestion,
//! never an empty placeholder in an alert. Which fields exist for the rule's kinds is checked by
//! the rule compiler, which knows the kinds.

use agent_model::{FIELDS, Field};

use crate::error::did_you_mean;

/// A piece of an output template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Lit(String),
    Field(Field),
}

/// Parse `"{process.exe} read {file.path}"`; `{{` and `}}` are literal braces.
pub(super) fn parse_template(s: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(format!("unclosed `{{` in output template at `{{{name}`"));
                        }
                    }
                }
                let Some(f) = Field::from_name(name.trim()) else {
                    let s = did_you_mean(name.trim(), FIELDS.iter().map(|f| f.name));
                    return Err(format!("unknown field `{{{name}}}` in output template{s}"));
                };
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Field(f));
            }
            '}' => {
                return Err("stray `}` in output template: write `}}` for a literal brace".into());
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    if parts.is_empty() {
        return Err("`output` is empty".into());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_fields_and_braces() {
        let p = parse_template("{process.exe} read {{x}} {file.path}").unwrap();
        assert_eq!(
            p,
            vec![
                Part::Field(Field::ProcessExe),
                Part::Lit(" read {x} ".into()),
                Part::Field(Field::FilePath)
            ]
        );
        assert!(
            parse_template("{process.ex}")
                .unwrap_err()
                .contains("did you mean `process.exe`")
        );
        assert!(
            parse_template("{file.path")
                .unwrap_err()
                .contains("unclosed")
        );
    }
}
