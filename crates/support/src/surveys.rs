//! Satisfaction surveys: sent once per resolved case and once per repair back
//! with its customer, answered once through a link signed with the service's
//! link key (HMAC-SHA256 of the survey id), no sign-in needed.
//!
//! The key lives in the service's database (`support_link_keys`), made on first
//! start, so every replica and every restart signs and checks alike. Whoever
//! reads that table could answer surveys; whoever can write the database could
//! append events anyway, so the key adds no new trust.

use std::sync::Arc;

use aftersales_core::Error;
use aftersales_eventstore::{
    AnyEventStore, CommandContext, CommandHandler, EventStore as _, StoreError, StoreTransaction,
    StreamId, on_connection,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

use crate::app::AppResult;
use crate::domain::survey::{About, Command, Event, Survey, SurveyState};
use crate::domain::{DomainError, text};
use crate::projections::{self, QualityGroup};

/// The link key's name in `support_link_keys`.
const SURVEY_KEY: &str = "survey-links";

/// Answers one listing returns at most, and by default.
pub const MAX_ANSWERS: u32 = 200;
pub const DEFAULT_ANSWERS: u32 = 50;

/// The stream of survey `id`.
pub fn survey_stream(id: &str) -> AppResult<StreamId> {
    let id = id.trim();
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(DomainError::invalid("survey_id", "must be a survey id (a UUID)").into());
    }
    StreamId::parse(format!("survey-{id}"))
        .map_err(|e| DomainError::invalid("survey_id", e.to_string()).into())
}

/// One answer as staff read it, the comment opened (or erased).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AnswerView {
    pub survey: SurveyState,
    pub comment: String,
}

#[derive(Clone)]
pub struct Surveys {
    store: AnyEventStore,
    handler: CommandHandler<Survey, AnyEventStore>,
    key: Arc<hmac::Key>,
    /// Where the gateway serves `/survey/<id>`, without a trailing slash.
    site: Arc<str>,
}

impl std::fmt::Debug for Surveys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Surveys")
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

/// The link key, made once: the first replica to start stores one, the others
/// read it.
async fn link_key(store: &AnyEventStore) -> Result<hmac::Key, StoreError> {
    let mut fresh = [0_u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut fresh)
        .map_err(|_| StoreError::CorruptRow("no randomness for the survey link key".into()))?;
    let mut tx = store.begin().await?;
    let kept: String = on_connection!(tx.connection(), c => {
        sqlx::query(
            "INSERT INTO support_link_keys (purpose, secret) VALUES ($1, $2) \
             ON CONFLICT (purpose) DO NOTHING",
        )
        .bind(SURVEY_KEY)
        .bind(URL_SAFE_NO_PAD.encode(fresh))
        .execute(&mut *c)
        .await?;
        sqlx::query_scalar("SELECT secret FROM support_link_keys WHERE purpose = $1")
            .bind(SURVEY_KEY)
            .fetch_one(c)
            .await?
    });
    tx.commit().await?;
    let secret = URL_SAFE_NO_PAD
        .decode(kept.trim())
        .map_err(|e| StoreError::CorruptRow(format!("support_link_keys: {e}")))?;
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &secret))
}

impl Surveys {
    /// Surveys whose links point at `site` (the gateway's public address).
    pub async fn open(store: AnyEventStore, site: &str) -> Result<Self, StoreError> {
        let key = link_key(&store).await?;
        Ok(Self {
            handler: CommandHandler::new(store.clone()),
            store,
            key: Arc::new(key),
            site: site.trim_end_matches('/').into(),
        })
    }

    fn token(&self, survey_id: &str) -> String {
        let tag = hmac::sign(&self.key, format!("survey:{survey_id}").as_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// The link that answers survey `survey_id` with `token`.
    fn link(&self, survey_id: &str, token: &str) -> String {
        format!("{}/survey/{survey_id}?t={token}", self.site)
    }

    /// NOT_FOUND unless `token` is the survey's: a guessed link learns nothing.
    fn check(&self, survey_id: &str, token: &str) -> AppResult<StreamId> {
        let stream = survey_stream(survey_id)?;
        let not_found = || Error::not_found("survey (or the link is not valid)");
        let tag = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| not_found())?;
        hmac::verify(
            &self.key,
            format!("survey:{}", survey_id.trim()).as_bytes(),
            &tag,
        )
        .map_err(|_| not_found())?;
        Ok(stream)
    }

    /// Owes the customer a survey about `about`, inside `tx` (with what ended
    /// the case or the repair): once, however often asked.
    pub async fn send_in(
        &self,
        tx: &mut StoreTransaction,
        customer_id: &str,
        language: &str,
        about: About,
        ctx: &CommandContext,
    ) -> AppResult<()> {
        let survey_id = about.survey_id();
        let stream = survey_stream(&survey_id)?;
        let command = Command::Send {
            customer_id: customer_id.to_owned(),
            language: language.to_owned(),
            link: self.link(&survey_id, &self.token(&survey_id)),
            about,
            at: ctx.now,
        };
        self.handler.handle_in(tx, &stream, &command, ctx).await?;
        Ok(())
    }

    /// The survey its link shows.
    pub async fn get(&self, survey_id: &str, token: &str) -> AppResult<SurveyState> {
        let stream = self.check(survey_id, token)?;
        self.handler
            .load(&stream)
            .await?
            .state
            .ok_or_else(|| Error::not_found("survey (or the link is not valid)"))
    }

    pub async fn answer(
        &self,
        survey_id: &str,
        token: &str,
        score: u32,
        comment: String,
        ctx: &CommandContext,
    ) -> AppResult<SurveyState> {
        let stream = self.check(survey_id, token)?;
        let command = Command::Answer {
            score,
            comment,
            at: ctx.now,
        };
        self.handler
            .handle(&stream, &command, ctx)
            .await?
            .state
            .ok_or_else(|| Error::not_found("survey (or the link is not valid)"))
    }

    /// The newest answers about one agent, team, center or technician, each
    /// comment read from the survey's log (so an erased one reads as erased).
    pub async fn answers(
        &self,
        group: QualityGroup,
        group_id: &str,
        limit: u32,
    ) -> AppResult<Vec<AnswerView>> {
        text("group_id", group_id, 100, true)?;
        let limit = match limit {
            0 => DEFAULT_ANSWERS,
            n => n.min(MAX_ANSWERS),
        };
        let ids = projections::answered_surveys(&self.store, group, group_id.trim(), limit).await?;
        self.read_all(ids).await
    }

    /// Every survey sent to `customer`, with any answer: for their export.
    pub async fn of_customer(&self, customer: &str) -> AppResult<Vec<AnswerView>> {
        let ids = projections::surveys_of(&self.store, customer).await?;
        self.read_all(ids).await
    }

    /// Surveys `ids` as their logs leave them, each comment opened (or erased).
    async fn read_all(&self, ids: Vec<String>) -> AppResult<Vec<AnswerView>> {
        let mut views = Vec::with_capacity(ids.len());
        for id in ids {
            let stream = survey_stream(&id)?;
            let mut survey = None;
            let mut comment = String::new();
            for recorded in self.store.read_stream(&stream, 1, 10).await? {
                let event: Event = recorded.decode().map_err(StoreError::from)?;
                if let Event::SurveyAnswered { comment: c, .. } = &event {
                    comment.clone_from(c);
                }
                survey = <Survey as aftersales_eventstore::Decider>::evolve(survey, &event);
            }
            if let Some(survey) = survey {
                views.push(AnswerView { survey, comment });
            }
        }
        Ok(views)
    }
}
