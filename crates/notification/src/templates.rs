//! Messages rendered from the template files in `templates/`: one TOML file per
//! language with a subject and a text body per kind, and `layout.html` around the
//! body for email. Rendering is strict: a variable that is not given is an error,
//! never a blank in a customer's message.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::{Environment, UndefinedBehavior};
use serde::Deserialize;

use crate::domain::Kind;

/// The built-in languages: file name and tag.
const BUILTIN: [(&str, &str); 4] = [
    ("en", include_str!("../templates/en.toml")),
    ("de", include_str!("../templates/de.toml")),
    ("zh-CN", include_str!("../templates/zh-CN.toml")),
    ("hi", include_str!("../templates/hi.toml")),
];
const LAYOUT: &str = include_str!("../templates/layout.html");
pub const FALLBACK: &str = "en";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("templates/{language}.toml: {reason}")]
    File { language: String, reason: String },
    #[error("rendering {kind} in {language}: {reason}")]
    Render {
        kind: Kind,
        language: String,
        reason: String,
    },
}

/// A template that does not render is a defect, never a blank message.
impl From<TemplateError> for aftersales_core::Error {
    fn from(error: TemplateError) -> Self {
        Self::internal("rendering a message").with_source(error)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The language used: the customer's, or the fallback.
    pub language: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    subject: String,
    text: String,
}

#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    languages: BTreeSet<String>,
}

impl Templates {
    /// The built-in templates, every language checked for every kind.
    pub fn builtin() -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template("layout.html", LAYOUT)
            .map_err(|e| TemplateError::File {
                language: "layout.html".into(),
                reason: e.to_string(),
            })?;
        let mut languages = BTreeSet::new();
        for (language, source) in BUILTIN {
            let file_error = |reason: String| TemplateError::File {
                language: language.into(),
                reason,
            };
            let entries: BTreeMap<String, Entry> =
                toml::from_str(source).map_err(|e| file_error(e.to_string()))?;
            for name in entries.keys() {
                if Kind::parse(name).is_none() {
                    return Err(file_error(format!("[{name}] is not a kind of message")));
                }
            }
            for kind in Kind::ALL {
                let entry = entries
                    .get(kind.as_str())
                    .ok_or_else(|| file_error(format!("[{kind}] is missing")))?;
                for (part, source) in [("subject", &entry.subject), ("text", &entry.text)] {
                    env.add_template_owned(format!("{language}/{kind}/{part}"), source.clone())
                        .map_err(|e| file_error(format!("[{kind}] {part}: {e}")))?;
                }
            }
            languages.insert(language.to_owned());
        }
        Ok(Self { env, languages })
    }

    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.languages.iter().map(String::as_str)
    }

    /// The language a customer's tag is served in: the tag itself, its primary
    /// language where that is what we have (de-AT is de), or the fallback.
    pub fn resolve(&self, requested: &str) -> &str {
        let exact = self
            .languages
            .iter()
            .find(|l| l.eq_ignore_ascii_case(requested));
        let primary = requested.split('-').next().unwrap_or_default();
        let by_primary = self
            .languages
            .iter()
            .find(|l| l.eq_ignore_ascii_case(primary));
        exact.or(by_primary).map_or(FALLBACK, String::as_str)
    }

    /// Renders `kind` in the customer's language, falling back (logged) to
    /// English. Every variable the kind names must be given.
    pub fn render(
        &self,
        kind: Kind,
        requested: &str,
        variables: &BTreeMap<String, String>,
    ) -> Result<Rendered, TemplateError> {
        let language = self.resolve(requested);
        if !language.eq_ignore_ascii_case(requested) {
            tracing::info!(requested, used = language, %kind, "no templates in the customer's language; falling back");
        }
        let error = |reason: String| TemplateError::Render {
            kind,
            language: language.to_owned(),
            reason,
        };
        for name in kind.spec().variables {
            if !variables.contains_key(*name) {
                return Err(error(format!("variable {name} is not given")));
            }
        }
        let variables: BTreeMap<String, String> = variables
            .iter()
            .map(|(name, value)| {
                let value = if UNTRUSTED.contains(&name.as_str()) {
                    quoted_untrusted(value)
                } else {
                    value.clone()
                };
                (name.clone(), value)
            })
            .collect();
        let variables = &variables;
        let part = |part: &str| -> Result<String, TemplateError> {
            self.env
                .get_template(&format!("{language}/{kind}/{part}"))
                .and_then(|t| t.render(variables))
                .map_err(|e| error(format!("{part}: {e}")))
        };
        let subject = part("subject")?.trim().to_owned();
        let text = part("text")?.trim().to_owned();
        let paragraphs: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let html = self
            .env
            .get_template("layout.html")
            .and_then(|t| {
                t.render(minijinja::context! {
                    language => language,
                    subject => &subject,
                    paragraphs => paragraphs,
                })
            })
            .map_err(|e| error(format!("html: {e}")))?;
        Ok(Rendered {
            language: language.to_owned(),
            subject,
            text,
            html,
        })
    }
}

/// Variables whose text someone outside the brand typed: a customer (a phone's
/// model, a reason), a carrier (an exception's description), staff quoting them.
pub const UNTRUSTED: &[&str] = &["reason", "description", "model"];
/// The longest quoted text a message carries.
const MAX_QUOTED_CHARS: usize = 120;

/// `text` as a message may quote it: one line, at most 120 characters, no
/// links, addresses or domains (a message from the brand never carries
/// someone else's link), and in quotation marks so it never reads as the
/// brand's own words.
pub fn quoted_untrusted(text: &str) -> String {
    let looks_like_link = |word: &str| {
        let word = word.trim_matches(|c: char| !c.is_alphanumeric());
        let lower = word.to_ascii_lowercase();
        lower.contains("://")
            || lower.starts_with("www.")
            || word.contains('@')
            || word.split('/').next().is_some_and(|host| {
                let labels: Vec<&str> = host.split('.').collect();
                labels.len() >= 2
                    && labels.iter().all(|l| !l.is_empty())
                    && labels.last().is_some_and(|tld| {
                        tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic())
                    })
            })
    };
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .map(|w| {
            if looks_like_link(w) {
                "[link removed]"
            } else {
                w
            }
        })
        .collect();
    let mut line = words.join(" ");
    if line.chars().count() > MAX_QUOTED_CHARS {
        line = line.chars().take(MAX_QUOTED_CHARS - 1).collect::<String>() + "…";
    }
    format!("“{line}”")
}

/// Sample values for every variable of a kind, for tests and previews.
pub fn sample(kind: Kind) -> BTreeMap<String, String> {
    kind.spec()
        .variables
        .iter()
        .map(|name| {
            let value = match *name {
                "order_id" => "0199a1b2-7c3d",
                "device" => "7518",
                "channel" => "mail_in",
                "fault" => "battery",
                "total" => "EUR 129.00",
                "valid_until" => "2026-12-09",
                "expected_on" => "2026-12-18",
                "carrier" => "sandbox",
                "tracking_number" => "SB012345678901",
                "reason" => "customer request",
                "description" => "address not found",
                "model" => "Aurora 5",
                "warranty_end" | "coverage_end" => "2027-11-25",
                "plan" => "Care+ 24 months",
                "code" => "042917",
                "minutes" => "10",
                "kind" => "recall",
                "programme" => "A4-BAT-2026",
                "faults" => "battery",
                "until" => "2028-02-29",
                "link" => "https://aftersales.example/survey/5f0c7e0a?t=Zm9v",
                other => other,
            };
            ((*name).to_owned(), value.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_renders_in_every_language_with_sample_data() {
        let templates = Templates::builtin().expect("valid templates");
        let languages: Vec<String> = templates.languages().map(str::to_owned).collect();
        assert_eq!(languages.len(), 4);
        for language in &languages {
            for kind in Kind::ALL {
                let vars = sample(kind);
                let r = templates.render(kind, language, &vars).expect("renders");
                assert_eq!(&r.language, language);
                assert!(
                    !r.subject.is_empty() && !r.text.is_empty(),
                    "{language} {kind}"
                );
                // The channel and a programme's kind choose words; they are not shown.
                for value in vars
                    .values()
                    .filter(|v| !["mail_in", "recall"].contains(&v.as_str()))
                {
                    assert!(
                        r.subject.contains(value.as_str()) || r.text.contains(value.as_str()),
                        "{language} {kind} does not use {value}"
                    );
                }
                assert!(
                    r.html.contains("<!DOCTYPE html>")
                        && r.html.contains(&format!("lang=\"{language}\""))
                );
            }
        }
    }

    #[test]
    fn a_missing_variable_is_an_error_not_a_blank() {
        let templates = Templates::builtin().expect("valid templates");
        let mut vars = sample(Kind::QuoteIssued);
        vars.remove("total");
        let error = templates
            .render(Kind::QuoteIssued, "en", &vars)
            .unwrap_err();
        assert!(error.to_string().contains("total"), "{error}");
    }

    #[test]
    fn unknown_languages_fall_back_and_regions_find_their_language() {
        let templates = Templates::builtin().expect("valid templates");
        assert_eq!(templates.resolve("de-AT"), "de");
        assert_eq!(templates.resolve("zh-cn"), "zh-CN");
        assert_eq!(
            templates.resolve("zh-TW"),
            "en",
            "traditional Chinese is not zh-CN"
        );
        assert_eq!(templates.resolve("fr"), "en");
        let r = templates
            .render(Kind::RepairStarted, "fr", &sample(Kind::RepairStarted))
            .expect("renders");
        assert_eq!(r.language, "en");
    }

    #[test]
    fn html_escapes_what_customers_and_carriers_wrote() {
        let templates = Templates::builtin().expect("valid templates");
        let mut vars = sample(Kind::ShipmentException);
        vars.insert("description".into(), "<script>alert(1)</script>".into());
        let r = templates
            .render(Kind::ShipmentException, "en", &vars)
            .expect("renders");
        assert!(!r.html.contains("<script>"));
        assert!(r.html.contains("&lt;script&gt;"));
    }

    #[test]
    fn what_outsiders_typed_is_quoted_without_its_links() {
        let templates = Templates::builtin().expect("valid templates");
        let mut vars = sample(Kind::ShipmentException);
        vars.insert(
            "description".into(),
            "URGENT customs fee, pay at https://evil.example/pay\nor evil.example/pay or \
             www.evil.example or pay@evil.example now"
                .into(),
        );
        let r = templates
            .render(Kind::ShipmentException, "en", &vars)
            .expect("renders");
        for part in [&r.text, &r.html] {
            assert!(!part.contains("evil"), "{part}");
            assert!(!part.contains("https"), "{part}");
        }
        assert!(
            r.text
                .contains("“URGENT customs fee, pay at [link removed] or [link removed]"),
            "{}",
            r.text
        );
        assert_eq!(quoted_untrusted(&"x".repeat(500)).chars().count(), 122);
        // Ordinary text is quoted, not mangled: versions, decimals, times.
        assert_eq!(
            quoted_untrusted("Aurora 5.1 dropped at 10.30, 2.5 m"),
            "“Aurora 5.1 dropped at 10.30, 2.5 m”"
        );
    }
}
