-- Each knowledge-base article's current version per language, for the search
-- index each replica builds in memory, and for reading an article.
CREATE TABLE support_articles (
    article_id    TEXT NOT NULL,
    language      TEXT NOT NULL,
    version       BIGINT NOT NULL,
    title         TEXT NOT NULL,
    body          TEXT NOT NULL,
    categories    TEXT NOT NULL,
    published_at  TEXT NOT NULL,
    PRIMARY KEY (article_id, language)
);
