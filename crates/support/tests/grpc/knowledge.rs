//! The knowledge base over gRPC: built-in articles searchable in four
//! languages, new versions indexed while the old ones stay readable, articles
//! suggested from what a customer wrote, and bad input refused.

use aftersales_proto::support as pb;
use aftersales_runtime::errors::field_violations;
use aftersales_testkit::eventually;
use tonic::Code;

use crate::{Server, case_ref, clock_at, not_charging};

fn search(language: &str, query: &str) -> pb::SearchArticlesRequest {
    pb::SearchArticlesRequest {
        language: language.into(),
        query: query.into(),
        limit: 0,
    }
}

async fn first(server: &Server, language: &str, query: &str) -> String {
    server
        .client
        .clone()
        .search_articles(search(language, query))
        .await
        .unwrap()
        .into_inner()
        .hits
        .first()
        .map(|h| h.article_id.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn articles_are_found_in_four_languages_and_every_version_is_kept() {
    let clock = clock_at("2026-12-01T09:00:00Z");
    let mut server = Server::start(&clock).await;
    // The built-in articles, once indexed.
    eventually(
        || first(&server, "en", "my phone won't charge"),
        |id| id == "not-charging",
    )
    .await;
    assert_eq!(
        first(&server, "de", "Akku schnell leer").await,
        "battery-drain"
    );
    assert_eq!(first(&server, "zh-CN", "屏幕碎了").await, "cracked-screen");
    assert_eq!(
        first(&server, "hi", "वारंटी में क्या शामिल").await,
        "warranty-coverage"
    );

    // An agent publishes a new version; the first stays readable.
    let c = &mut server.client;
    let v1 = c
        .get_article(pb::GetArticleRequest {
            article_id: "not-charging".into(),
            language: "en".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v1.version, 1);
    let v2 = c
        .publish_article(pb::PublishArticleRequest {
            article_id: "not-charging".into(),
            language: "en".into(),
            title: v1.title.clone(),
            body: format!(
                "{}\n5. Wireless chargers need the phone centred on the pad.",
                v1.body
            ),
            categories: vec![pb::Category::Hardware.into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v2.version, 2);
    let old = c
        .get_article(pb::GetArticleRequest {
            article_id: "not-charging".into(),
            language: "en".into(),
            version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.body, v1.body);
    eventually(
        || first(&server, "en", "wireless pad"),
        |id| id == "not-charging",
    )
    .await;

    // Suggestions come from what the customer wrote, in their language.
    let opened = server
        .client
        .open_case(not_charging("cust-kb"))
        .await
        .unwrap()
        .into_inner();
    let suggested = server
        .client
        .suggest_articles(case_ref(&opened.case_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(suggested.hits[0].article_id, "not-charging");
    assert_eq!(suggested.hits[0].language, "de");
    server.stop().await;
}

#[tokio::test]
async fn bad_searches_and_articles_name_the_field_and_write_nothing() {
    let clock = clock_at("2026-12-01T09:00:00Z");
    let mut server = Server::start(&clock).await;
    let before = server.events("").await;
    let c = &mut server.client;
    let field = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        field_violations(&status)
            .first()
            .map(|(f, _)| f.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        field(c.search_articles(search("en", " ")).await.unwrap_err()),
        "query"
    );
    assert_eq!(
        field(
            c.search_articles(search("en", &"x".repeat(501)))
                .await
                .unwrap_err()
        ),
        "query"
    );
    assert_eq!(
        field(
            c.search_articles(search("fr", "batterie"))
                .await
                .unwrap_err()
        ),
        "language"
    );
    let mut many = search("en", "battery");
    many.limit = 51;
    assert_eq!(field(c.search_articles(many).await.unwrap_err()), "limit");
    let publish = |id: &str, title: &str, categories: Vec<i32>| pb::PublishArticleRequest {
        article_id: id.into(),
        language: "en".into(),
        title: title.into(),
        body: "Some text.".into(),
        categories,
    };
    let hardware = vec![i32::from(pb::Category::Hardware)];
    assert_eq!(
        field(
            c.publish_article(publish("Bad Id", "T", hardware.clone()))
                .await
                .unwrap_err()
        ),
        "article_id"
    );
    assert_eq!(
        field(
            c.publish_article(publish("ok-id", "", hardware.clone()))
                .await
                .unwrap_err()
        ),
        "title"
    );
    assert_eq!(
        field(
            c.publish_article(publish("ok-id", "T", vec![]))
                .await
                .unwrap_err()
        ),
        "categories"
    );
    assert_eq!(
        field(
            c.publish_article(publish("ok-id", "T", vec![99]))
                .await
                .unwrap_err()
        ),
        "category"
    );
    let missing = c
        .get_article(pb::GetArticleRequest {
            article_id: "no-such-article".into(),
            language: "en".into(),
            version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(server.events("").await, before);
    server.stop().await;
}
