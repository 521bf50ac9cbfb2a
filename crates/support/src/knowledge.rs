//! The knowledge base: articles published through the decider (one stream per
//! article and language), the built-in ones seeded where none exists, and an
//! inverted index per language, scored by Okapi BM25, held in memory by each
//! replica and rebuilt from the read model whenever an article changes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aftersales_core::Error;
use aftersales_eventstore::{AnyEventStore, CommandContext, CommandHandler, StreamId};
use serde::Deserialize;

use crate::app::AppResult;
use crate::domain::DomainError;
use crate::domain::article::{self, Article, ArticleState, Command, Draft};
use crate::domain::case::Category;
use crate::domain::teams::LANGUAGES;
use crate::domain::words::{MAX_QUERY_BYTES, Words};
use crate::projections::{self, ArticleRow};

/// The most hits one search returns.
pub const MAX_HITS: usize = 50;

/// The stream of article `id` in `language`.
pub fn article_stream(id: &str, language: &str) -> AppResult<StreamId> {
    article::check_id(id)?;
    article::check_language(language)?;
    StreamId::parse(format!("article-{id}/{language}"))
        .map_err(|e| DomainError::invalid("article_id", e.to_string()).into())
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub article_id: String,
    pub language: String,
    pub version: u32,
    pub title: String,
    pub score: f32,
}

/// BM25's term-frequency saturation and length normalisation, at their usual values.
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// One language's inverted index: each term's postings (article, count).
struct Postings {
    words: Words,
    terms: HashMap<String, Vec<(u32, u32)>>,
    /// Per article of this language (by its place in `Index::articles`): its length in terms.
    lengths: HashMap<u32, u32>,
    average_length: f32,
}

impl Postings {
    fn build(language: &str, articles: &[(u32, &ArticleRow)]) -> Self {
        let words = Words::for_language(language);
        let mut terms: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut lengths = HashMap::with_capacity(articles.len());
        let mut total = 0_u64;
        for (id, article) in articles {
            // The title twice: a word in it weighs more.
            let text = format!("{0}\n{0}\n{1}", article.title, article.body);
            let mut counts: HashMap<String, u32> = HashMap::new();
            let mut length = 0_u32;
            for term in words.terms(&text) {
                *counts.entry(term).or_default() += 1;
                length += 1;
            }
            for (term, count) in counts {
                terms.entry(term).or_default().push((*id, count));
            }
            lengths.insert(*id, length);
            total += u64::from(length);
        }
        let average_length = if articles.is_empty() {
            1.0
        } else {
            (total as f32 / articles.len() as f32).max(1.0)
        };
        Self {
            words,
            terms,
            lengths,
            average_length,
        }
    }

    /// Articles scored by Okapi BM25 for `query`'s distinct terms, best first.
    fn search(&self, query: &str, limit: usize) -> Vec<(u32, f32)> {
        let mut query_terms = self.words.terms(query);
        query_terms.sort();
        query_terms.dedup();
        let n = self.lengths.len() as f32;
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for term in &query_terms {
            let Some(postings) = self.terms.get(term) else {
                continue;
            };
            let df = postings.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(id, count) in postings {
                let length = self.lengths.get(&id).copied().unwrap_or(1) as f32;
                let tf = count as f32;
                let norm = K1 * (1.0 - B + B * length / self.average_length);
                *scores.entry(id).or_default() += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        let mut ranked: Vec<(u32, f32)> = scores.into_iter().collect();
        let by_score = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if ranked.len() > limit {
            ranked.select_nth_unstable_by(limit, by_score);
            ranked.truncate(limit);
        }
        ranked.sort_by(by_score);
        ranked
    }
}

#[derive(Default)]
struct Index {
    by_language: HashMap<String, Postings>,
    articles: Vec<ArticleRow>,
    fingerprint: Option<(i64, i64)>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("articles", &self.articles.len())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl Index {
    fn build(articles: Vec<ArticleRow>, fingerprint: Option<(i64, i64)>) -> Self {
        let mut grouped: HashMap<&str, Vec<(u32, &ArticleRow)>> = HashMap::new();
        for (n, a) in articles.iter().enumerate() {
            grouped
                .entry(a.language.as_str())
                .or_default()
                .push((u32::try_from(n).unwrap_or(u32::MAX), a));
        }
        let by_language = grouped
            .into_iter()
            .map(|(language, of)| (language.to_owned(), Postings::build(language, &of)))
            .collect();
        Self {
            by_language,
            articles,
            fingerprint,
        }
    }

    fn search(&self, language: &str, query: &str, limit: usize) -> Vec<Hit> {
        let Some(postings) = self.by_language.get(language) else {
            return Vec::new();
        };
        postings
            .search(query, limit)
            .into_iter()
            .filter_map(|(id, score)| {
                let a = self.articles.get(id as usize)?;
                Some(Hit {
                    article_id: a.article_id.clone(),
                    language: a.language.clone(),
                    version: a.version,
                    title: a.title.clone(),
                    score,
                })
            })
            .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuiltinFile {
    article: Vec<BuiltinArticle>,
}

#[derive(Debug, Deserialize)]
struct BuiltinArticle {
    id: String,
    categories: Vec<Category>,
    #[serde(flatten)]
    texts: HashMap<String, BuiltinText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuiltinText {
    title: String,
    body: String,
}

const BUILTIN: &str = include_str!("../knowledge.toml");

/// The built-in articles, every one in every language.
pub fn builtin() -> Result<Vec<Draft>, String> {
    let file: BuiltinFile = toml::from_str(BUILTIN).map_err(|e| format!("knowledge: {e}"))?;
    let mut drafts = Vec::new();
    for a in file.article {
        for language in LANGUAGES {
            let text = a
                .texts
                .get(language)
                .ok_or_else(|| format!("knowledge: {} has no {language} text", a.id))?;
            drafts.push(Draft {
                article_id: a.id.clone(),
                language: language.to_owned(),
                title: text.title.clone(),
                body: text.body.clone(),
                categories: a.categories.clone(),
            });
        }
        if let Some(other) = a.texts.keys().find(|l| !LANGUAGES.contains(&l.as_str())) {
            return Err(format!("knowledge: {} has text in {other}", a.id));
        }
    }
    Ok(drafts)
}

/// The knowledge base's use cases.
#[derive(Debug, Clone)]
pub struct KnowledgeBase {
    store: AnyEventStore,
    articles: CommandHandler<Article, AnyEventStore>,
    index: Arc<RwLock<Index>>,
}

impl KnowledgeBase {
    pub fn new(store: AnyEventStore) -> Self {
        Self {
            articles: CommandHandler::new(store.clone()),
            store,
            index: Arc::default(),
        }
    }

    /// Publishes the built-in articles that have no text yet.
    pub async fn seed(&self, drafts: Vec<Draft>, ctx: &CommandContext) -> AppResult<usize> {
        let mut seeded = 0;
        for draft in drafts {
            let stream = article_stream(&draft.article_id, &draft.language)?;
            let command = Command::Seed { draft, at: ctx.now };
            if !self
                .articles
                .handle(&stream, &command, ctx)
                .await?
                .events
                .is_empty()
            {
                seeded += 1;
            }
        }
        Ok(seeded)
    }

    /// A new version of an article, unless it says what the current one does.
    pub async fn publish(
        &self,
        draft: Draft,
        author: &str,
        ctx: &CommandContext,
    ) -> AppResult<ArticleState> {
        let stream = article_stream(&draft.article_id, &draft.language)?;
        let command = Command::Publish {
            draft,
            author: author.to_owned(),
            at: ctx.now,
        };
        let handled = self.articles.handle(&stream, &command, ctx).await?;
        handled
            .state
            .ok_or_else(|| Error::internal("a published article without state"))
    }

    /// An article's current version, or `version` of it.
    pub async fn get(
        &self,
        id: &str,
        language: &str,
        version: Option<u32>,
    ) -> AppResult<ArticleState> {
        let stream = article_stream(id, language)?;
        let state = match version {
            None => self.articles.load(&stream).await?.state,
            Some(v) => {
                let events = aftersales_eventstore::EventStore::read_stream(
                    &self.store,
                    &stream,
                    u64::from(v),
                    1,
                )
                .await?;
                let mut state = None;
                for e in &events {
                    let event: article::Event = e
                        .decode()
                        .map_err(aftersales_eventstore::StoreError::from)?;
                    state = <Article as aftersales_eventstore::Decider>::evolve(state, &event);
                }
                state
            }
        };
        state.ok_or_else(|| Error::not_found(format!("article {id} in {language}")))
    }

    /// Rebuilds the index when an article changed since it was built; whether it did.
    pub async fn refresh(&self) -> AppResult<bool> {
        let fingerprint = projections::articles_fingerprint(&self.store).await?;
        if self.read().fingerprint == Some(fingerprint) {
            return Ok(false);
        }
        let articles = projections::articles(&self.store).await?;
        // Built outside the lock: searches go on against the old index meanwhile.
        let index = Index::build(articles, Some(fingerprint));
        *self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = index;
        Ok(true)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The articles in `language` that best answer `query`, best first.
    pub fn search(&self, language: &str, query: &str, limit: usize) -> AppResult<Vec<Hit>> {
        article::check_language(language)?;
        if query.trim().is_empty() || query.len() > MAX_QUERY_BYTES {
            return Err(DomainError::invalid(
                "query",
                format!("must be 1 to {MAX_QUERY_BYTES} bytes"),
            )
            .into());
        }
        if limit == 0 || limit > MAX_HITS {
            return Err(DomainError::invalid("limit", format!("must be 1 to {MAX_HITS}")).into());
        }
        Ok(self.read().search(language, query, limit))
    }

    /// How many articles the index holds.
    pub fn indexed(&self) -> usize {
        self.read().articles.len()
    }
}

/// Questions as customers ask them, four a language, with the built-in article
/// each is about: what the ranking is tested and measured with.
pub const SAMPLE_QUERIES: [(&str, &str, &str); 16] = [
    ("en", "my phone won't charge", "not-charging"),
    ("en", "battery dies fast", "battery-drain"),
    (
        "en",
        "keeps restarting after the update",
        "update-boot-loop",
    ),
    ("en", "water got in my phone", "liquid-damage"),
    ("de", "Handy lädt nicht mehr", "not-charging"),
    ("de", "Akku schnell leer", "battery-drain"),
    ("de", "Display gesprungen", "cracked-screen"),
    (
        "de",
        "Bluetooth Kopfhörer verbinden nicht",
        "wifi-bluetooth",
    ),
    ("zh-CN", "手机充不进电", "not-charging"),
    ("zh-CN", "屏幕碎了", "cracked-screen"),
    ("zh-CN", "更新以后一直重启", "update-boot-loop"),
    ("zh-CN", "怎么邮寄维修", "mail-in-repair"),
    ("hi", "फ़ोन चार्ज नहीं हो रहा", "not-charging"),
    ("hi", "बैटरी जल्दी खत्म", "battery-drain"),
    ("hi", "वाई-फ़ाई कनेक्ट नहीं", "wifi-bluetooth"),
    ("hi", "वारंटी में क्या शामिल", "warranty-coverage"),
];

/// An index over `articles` without a store: for the benchmark.
pub fn index_of(articles: Vec<ArticleRow>) -> impl Fn(&str, &str, usize) -> Vec<Hit> {
    let index = Index::build(articles, None);
    move |language, query, limit| index.search(language, query, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<ArticleRow> {
        builtin()
            .unwrap()
            .into_iter()
            .map(|d| ArticleRow {
                article_id: d.article_id,
                language: d.language,
                version: 1,
                title: d.title,
                body: d.body,
            })
            .collect()
    }

    /// The right article first, asked the way customers ask, in each language.
    #[test]
    fn the_right_article_comes_first_in_each_language() {
        let search = index_of(rows());
        let first = |language: &str, query: &str| {
            search(language, query, 3)
                .first()
                .map(|h| h.article_id.clone())
                .unwrap_or_default()
        };
        for (language, query, expected) in SAMPLE_QUERIES {
            assert_eq!(first(language, query), expected, "{language}: {query}");
        }
    }

    #[test]
    fn every_built_in_article_is_in_every_language() {
        let drafts = builtin().unwrap();
        assert_eq!(drafts.len() % LANGUAGES.len(), 0);
        assert!(drafts.len() >= 8 * LANGUAGES.len());
    }
}
