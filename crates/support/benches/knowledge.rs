//! Knowledge-base search over 10,000 articles in four languages, next to a
//! plain `LIKE` query on the same articles in PostgreSQL, in the same run.
//!
//! `cargo bench -p aftersales-support --bench knowledge` (a release build). The
//! articles are the built-in ones (eight subjects, each in en, de, zh-CN and
//! hi) and 9,968 more made from them: each takes a subject's title and
//! sentences, in another order, and 50 words drawn from the whole corpus of
//! its language (Chinese in two-character pieces), so the index holds 2,500 articles a language with a realistic
//! vocabulary. The queries are sixteen a customer would type (four a
//! language). The index answers each query with BM25 in memory; the baseline
//! asks PostgreSQL (its own server, started here) for articles of that
//! language whose title or body contains the query's longest word, the best a
//! `LIKE` can do with a sentence. Both report p50 and p99 latency, and how
//! often their first answer is the article about the query's subject.
//! `BENCH_KNOWLEDGE_ROUNDS` (default 200) sets how often each query is asked.

// A benchmark aborts on any failure, and its counts are far below any cast limit.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::time::{Duration, Instant};

use aftersales_support::knowledge::{SAMPLE_QUERIES, builtin, index_of};
use aftersales_support::projections::{ArticleRow, articles_like};
use aftersales_testkit::{PostgresOptions, PostgresServer};
use rand::{RngExt as _, SeedableRng as _};

const PER_LANGUAGE: usize = 2_500;

/// The subject an article is about: a generated one carries its base's id.
fn subject(article_id: &str) -> &str {
    article_id
        .split_once("--")
        .map_or(article_id, |(base, _)| base)
}

/// The built-in articles and, from them, enough more for 2,500 a language.
fn corpus() -> Vec<ArticleRow> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let base: Vec<ArticleRow> = builtin()
        .unwrap()
        .into_iter()
        .map(|d| ArticleRow {
            article_id: d.article_id,
            language: d.language,
            version: 1,
            title: d.title,
            body: d.body,
        })
        .collect();
    let mut rows = base.clone();
    for language in ["en", "de", "zh-CN", "hi"] {
        let own: Vec<&ArticleRow> = base.iter().filter(|a| a.language == language).collect();
        // Filler words: split at spaces; Chinese, written without them, in
        // two-character pieces, so every language gets the same kind of noise.
        let words: Vec<String> = own
            .iter()
            .flat_map(|a| a.body.split_whitespace())
            .flat_map(|w| {
                if language == "zh-CN" {
                    let chars: Vec<char> = w.chars().collect();
                    chars
                        .chunks(2)
                        .map(|c| c.iter().collect())
                        .collect::<Vec<String>>()
                } else {
                    vec![w.to_owned()]
                }
            })
            .collect();
        for n in own.len()..PER_LANGUAGE {
            let from = own[n % own.len()];
            let mut sentences: Vec<&str> = from.body.lines().collect();
            let turn = rng.random_range(0..sentences.len());
            sentences.rotate_left(turn);
            let mut word = || words[rng.random_range(0..words.len())].clone();
            let extra: Vec<String> = (0..50).map(|_| word()).collect();
            rows.push(ArticleRow {
                article_id: format!("{}--{n}", from.article_id),
                language: language.to_owned(),
                version: 1,
                title: format!("{} {}", from.title, word()),
                body: format!("{}\n{}", sentences.join("\n"), extra.join(" ")),
            });
        }
    }
    rows
}

/// The word a `LIKE` looks for: the query's longest (for Chinese, which has
/// no spaces, its first two characters).
fn needle(language: &str, query: &str) -> String {
    if language == "zh-CN" {
        query.chars().take(2).collect()
    } else {
        query
            .split_whitespace()
            .max_by_key(|w| w.chars().count())
            .unwrap()
            .to_owned()
    }
}

/// The `per_mille`th of `sorted`, in microseconds.
fn percentile(sorted: &[Duration], per_mille: usize) -> f64 {
    let i = (sorted.len() - 1) * per_mille / 1000;
    sorted[i].as_secs_f64() * 1e6
}

fn report(what: &str, mut times: Vec<Duration>, right: usize, asked: usize) {
    times.sort();
    println!(
        "{what:<40} p50 {:>9.1} µs   p99 {:>9.1} µs   right first {right}/{asked}",
        percentile(&times, 500),
        percentile(&times, 990),
    );
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::var("BENCH_KNOWLEDGE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let rows = corpus();
    println!(
        "knowledge base: {} articles, {rounds} rounds of {} queries",
        rows.len(),
        SAMPLE_QUERIES.len()
    );

    let started = Instant::now();
    let search = index_of(rows.clone());
    println!(
        "index built in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    let server =
        tokio::task::spawn_blocking(|| PostgresServer::start(PostgresOptions::Durable).unwrap())
            .await
            .unwrap();
    let url = server.create_database().unwrap();
    let mut common = aftersales_runtime::config::Common::test(url);
    common.allow_unauthenticated = true;
    let store = aftersales_support::server::SERVICE
        .open(&common)
        .await
        .unwrap();
    let aftersales_eventstore::AnyEventStore::Postgres(pg) = &store else {
        panic!("PostgreSQL expected")
    };
    let pool = pg.pool();
    {
        for chunk in rows.chunks(500) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO support_articles (article_id, language, version, title, body, categories, published_at) ",
            );
            insert.push_values(chunk, |mut b, a| {
                b.push_bind(a.article_id.clone())
                    .push_bind(a.language.clone())
                    .push_bind(1_i64)
                    .push_bind(a.title.clone())
                    .push_bind(a.body.clone())
                    .push_bind("[]")
                    .push_bind("2026-12-01T00:00:00Z");
            });
            insert.build().execute(pool).await.unwrap();
        }
        sqlx::query("ANALYZE support_articles")
            .execute(pool)
            .await
            .unwrap();
    }

    // Warm both.
    for (language, query, _) in SAMPLE_QUERIES {
        search(language, query, 10);
        articles_like(&store, language, &needle(language, query), 10)
            .await
            .unwrap();
    }
    let (mut index_times, mut like_times) = (Vec::new(), Vec::new());
    let (mut index_right, mut like_right) = (0, 0);
    for round in 0..rounds {
        for (language, query, expected) in SAMPLE_QUERIES {
            let started = Instant::now();
            let hits = search(language, query, 10);
            index_times.push(started.elapsed());
            let started = Instant::now();
            let found = articles_like(&store, language, &needle(language, query), 10)
                .await
                .unwrap();
            like_times.push(started.elapsed());
            if round == 0 {
                let first = hits.first().map_or("", |h| subject(&h.article_id));
                if first == expected {
                    index_right += 1;
                } else {
                    println!("index: {language} {query:?} found {first:?} first, not {expected:?}");
                }
                like_right += usize::from(
                    found
                        .first()
                        .is_some_and(|a| subject(&a.article_id) == expected),
                );
            }
        }
    }
    report(
        "BM25 index, in memory",
        index_times,
        index_right,
        SAMPLE_QUERIES.len(),
    );
    report(
        "LIKE on PostgreSQL (longest word)",
        like_times,
        like_right,
        SAMPLE_QUERIES.len(),
    );
    let _ = &server;
}
