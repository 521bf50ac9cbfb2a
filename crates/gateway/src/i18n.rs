//! The pages' words in four languages (Fluent), chosen by the person's choice
//! (a cookie) or their browser's `Accept-Language`.

use std::collections::HashMap;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};
use unic_langid::LanguageIdentifier;

/// The languages served, with their names in themselves; the first is the fallback.
pub const LANGUAGES: &[(&str, &str)] = &[
    ("en", "English"),
    ("de", "Deutsch"),
    ("zh-CN", "简体中文"),
    ("hi", "हिन्दी"),
];

const SOURCES: &[(&str, &str)] = &[
    ("en", include_str!("../locales/en.ftl")),
    ("de", include_str!("../locales/de.ftl")),
    ("zh-CN", include_str!("../locales/zh-CN.ftl")),
    ("hi", include_str!("../locales/hi.ftl")),
];

#[derive(Debug, thiserror::Error)]
pub enum I18nError {
    #[error("{language}: {reason}")]
    Bundle { language: String, reason: String },
}

pub struct Translations {
    bundles: HashMap<&'static str, FluentBundle<FluentResource>>,
    /// Every message of each language, formatted without arguments: what a
    /// page's template reads, made once rather than per page.
    tables: HashMap<&'static str, HashMap<String, String>>,
}

impl std::fmt::Debug for Translations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translations")
            .field("languages", &self.bundles.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Translations {
    /// Every language, each checked to have every message English has.
    pub fn builtin() -> Result<Self, I18nError> {
        let mut bundles = HashMap::new();
        for (tag, source) in SOURCES {
            let error = |reason: String| I18nError::Bundle {
                language: (*tag).to_owned(),
                reason,
            };
            let resource = FluentResource::try_new((*source).to_owned())
                .map_err(|(_, errors)| error(format!("{errors:?}")))?;
            let id: LanguageIdentifier = tag.parse().map_err(|e| error(format!("{e}")))?;
            let mut bundle = FluentBundle::new_concurrent(vec![id]);
            // No Unicode isolation marks around arguments: they would show in
            // plain-text contexts such as the page title.
            bundle.set_use_isolating(false);
            bundle
                .add_resource(resource)
                .map_err(|errors| error(format!("{errors:?}")))?;
            bundles.insert(*tag, bundle);
        }
        let english =
            FluentResource::try_new(SOURCES[0].1.to_owned()).map_err(|_| I18nError::Bundle {
                language: "en".into(),
                reason: "unparsable".into(),
            })?;
        let ids: Vec<String> = english
            .entries()
            .filter_map(|entry| match entry {
                fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_owned()),
                fluent_syntax::ast::Entry::Term(_)
                | fluent_syntax::ast::Entry::Comment(_)
                | fluent_syntax::ast::Entry::GroupComment(_)
                | fluent_syntax::ast::Entry::ResourceComment(_)
                | fluent_syntax::ast::Entry::Junk { .. } => None,
            })
            .collect();
        for (tag, bundle) in &bundles {
            if let Some(missing) = ids.iter().find(|id| !bundle.has_message(id)) {
                return Err(I18nError::Bundle {
                    language: (*tag).to_owned(),
                    reason: format!("{missing} is missing"),
                });
            }
        }
        let mut translations = Self {
            bundles,
            tables: HashMap::new(),
        };
        for (tag, _) in LANGUAGES {
            let table = ids
                .iter()
                .map(|id| (id.clone(), translations.text(tag, id, &[])))
                .collect();
            translations.tables.insert(tag, table);
        }
        Ok(translations)
    }

    /// Message `id` in `language`, with `args`; the id itself if it is unknown.
    pub fn text(&self, language: &str, id: &str, args: &[(&str, &str)]) -> String {
        let Some(bundle) = self
            .bundles
            .get(language)
            .or_else(|| self.bundles.get("en"))
        else {
            return id.to_owned();
        };
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            return id.to_owned();
        };
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            fluent_args.set(*name, *value);
        }
        let mut errors = Vec::new();
        bundle
            .format_pattern(pattern, Some(&fluent_args), &mut errors)
            .into_owned()
    }

    /// Every message without arguments in `language`, for templates.
    pub fn all(&self, language: &str) -> &HashMap<String, String> {
        static NONE: std::sync::OnceLock<HashMap<String, String>> = std::sync::OnceLock::new();
        self.tables
            .get(language)
            .or_else(|| self.tables.get("en"))
            .unwrap_or_else(|| NONE.get_or_init(HashMap::new))
    }
}

impl Translations {
    /// `date` as people of `language` write it: "1 March 2025", "1. März 2025",
    /// "2025年3月1日" (the pattern and month names are the language's messages).
    pub fn date(&self, language: &str, date: chrono::NaiveDate) -> String {
        use chrono::Datelike as _;
        let month = self.text(language, &format!("month-{}", date.month()), &[]);
        self.text(
            language,
            "date-long",
            &[
                ("day", &date.day().to_string()),
                ("month", &month),
                ("monthnumber", &date.month().to_string()),
                ("year", &date.year().to_string()),
            ],
        )
    }

    /// An ISO date (`2025-03-01`) as [`Translations::date`]; anything else as it is.
    pub fn iso_date(&self, language: &str, iso: &str) -> String {
        chrono::NaiveDate::parse_from_str(iso, "%Y-%m-%d")
            .map_or_else(|_| iso.to_owned(), |d| self.date(language, d))
    }

    /// A moment, in UTC, as the language writes a date and a time.
    pub fn moment(&self, language: &str, at: chrono::DateTime<chrono::Utc>) -> String {
        format!(
            "{} {} UTC",
            self.date(language, at.date_naive()),
            at.format("%H:%M")
        )
    }

    /// An amount in minor units (two decimals) of `currency`, as the language
    /// writes money: "€1,234.50", "1.234,50 €", "₹1,23,456.00".
    pub fn money(&self, language: &str, minor_units: i64, currency: &str) -> String {
        let units = minor_units.unsigned_abs();
        let whole = self.grouped(language, units / 100);
        let decimal = self.text(language, "number-decimal", &[]);
        let amount = format!(
            "{}{whole}{decimal}{:02}",
            if minor_units < 0 { "-" } else { "" },
            units % 100
        );
        let symbol_id = format!("currency-{currency}");
        let symbol = self.text(language, &symbol_id, &[]);
        let symbol = if symbol == symbol_id {
            currency.to_owned()
        } else {
            symbol
        };
        self.text(
            language,
            "money",
            &[("amount", &amount), ("symbol", &symbol)],
        )
    }

    /// `value` with the language's group separator: groups of three, or the
    /// Indian lakh and crore grouping (3, then 2) where the language uses it.
    fn grouped(&self, language: &str, value: u64) -> String {
        let separator = self.text(language, "number-group", &[]);
        let later: usize = self
            .text(language, "number-group-later", &[])
            .parse()
            .unwrap_or(3)
            .max(1);
        let digits = value.to_string();
        let (mut head, last) = digits.split_at(digits.len().saturating_sub(3));
        let mut groups = vec![last];
        while !head.is_empty() {
            let (rest, group) = head.split_at(head.len().saturating_sub(later));
            groups.push(group);
            head = rest;
        }
        groups.reverse();
        groups.join(&separator)
    }
}

/// The language to serve: `chosen` if it is one of ours, else the first of the
/// browser's `Accept-Language` we have (by primary language: de-AT is de,
/// zh-Hans and zh are zh-CN), else English.
pub fn negotiate(chosen: Option<&str>, accept_language: Option<&str>) -> &'static str {
    let ours = |tag: &str| -> Option<&'static str> {
        let tag = tag.trim();
        LANGUAGES
            .iter()
            .map(|(ours, _)| *ours)
            .find(|ours| ours.eq_ignore_ascii_case(tag))
            .or_else(|| {
                let primary = tag.split(['-', '_']).next().unwrap_or_default();
                LANGUAGES.iter().map(|(ours, _)| *ours).find(|ours| {
                    ours.split('-')
                        .next()
                        .is_some_and(|p| p.eq_ignore_ascii_case(primary))
                })
            })
    };
    if let Some(tag) = chosen.and_then(ours) {
        return tag;
    }
    let mut wanted: Vec<(f32, &str)> = accept_language
        .unwrap_or_default()
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (!tag.is_empty()).then_some((q, tag))
        })
        .collect();
    wanted.sort_by(|a, b| b.0.total_cmp(&a.0));
    wanted
        .into_iter()
        .find_map(|(_, tag)| ours(tag))
        .unwrap_or("en")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A repair's status reads the same on its page and in the messages the
    /// customer is sent about it, in every language.
    #[test]
    fn status_words_are_the_notification_templates_words() {
        let templates = [
            ("en", include_str!("../../notification/templates/en.toml")),
            ("de", include_str!("../../notification/templates/de.toml")),
            (
                "zh-CN",
                include_str!("../../notification/templates/zh-CN.toml"),
            ),
            ("hi", include_str!("../../notification/templates/hi.toml")),
        ];
        assert_eq!(templates.len(), LANGUAGES.len());
        let t = Translations::builtin().unwrap();
        for (tag, template) in templates {
            for stage in [
                "stage-opened",
                "stage-awaiting-device",
                "stage-received",
                "stage-diagnosed",
                "stage-quoted",
                "stage-in-repair",
                "stage-qc-passed",
                "stage-ready-for-return",
                "stage-cancelled",
            ] {
                let word = t.text(tag, stage, &[]);
                assert!(
                    template.contains(&word),
                    "{tag}: the messages do not say {word:?} ({stage})"
                );
            }
        }
    }

    #[test]
    fn every_language_has_every_message_and_arguments_are_filled_in() {
        let t = Translations::builtin().unwrap();
        for (tag, _) in LANGUAGES {
            let text = t.text(
                tag,
                "coverage-plan",
                &[("plan", "care-12"), ("until", "2027-03-01")],
            );
            assert!(text.contains("2027-03-01"), "{tag}: {text}");
            assert_eq!(t.all(tag).len(), t.all("en").len());
        }
        assert_eq!(t.text("de", "stage-in-repair", &[]), "In Reparatur");
    }

    #[test]
    fn dates_and_money_are_written_as_each_language_writes_them() {
        let t = Translations::builtin().unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2025, 3, 1).unwrap();
        assert_eq!(t.date("en", day), "1 March 2025");
        assert_eq!(t.date("de", day), "1. März 2025");
        assert_eq!(t.date("zh-CN", day), "2025年3月1日");
        assert_eq!(t.date("hi", day), "1 मार्च 2025");
        assert_eq!(t.iso_date("en", "2027-03-01"), "1 March 2027");
        assert_eq!(t.iso_date("en", "soon"), "soon");
        assert_eq!(t.money("en", 123_450, "EUR"), "€1,234.50");
        assert_eq!(t.money("de", 123_450, "EUR"), "1.234,50\u{a0}€");
        assert_eq!(t.money("zh-CN", 6_900, "CNY"), "¥69.00");
        assert_eq!(t.money("en", 6_900, "CNY"), "CN¥69.00");
        assert_eq!(t.money("hi", 12_345_600, "INR"), "₹1,23,456.00");
        assert_eq!(t.money("en", -500, "XYZ"), "XYZ-5.00");
        assert_eq!(t.money("en", 0, "USD"), "$0.00");
        assert_eq!(t.money("en", 100_000_000, "GBP"), "£1,000,000.00");
    }

    #[test]
    fn the_choice_wins_then_the_browser_then_english() {
        assert_eq!(negotiate(Some("de"), Some("hi")), "de");
        assert_eq!(negotiate(None, Some("fr-FR, de-AT;q=0.8, en;q=0.5")), "de");
        assert_eq!(negotiate(None, Some("zh-Hans-CN,zh;q=0.9")), "zh-CN");
        assert_eq!(negotiate(Some("xx"), None), "en");
        assert_eq!(negotiate(None, Some("hi-IN")), "hi");
    }
}
