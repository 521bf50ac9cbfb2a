//! The customer's inbox (with its unread count live in every page's header)
//! and their message preferences.

use std::convert::Infallible;

use aftersales_proto::notification as npb;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::{App, LangQuery, Visit, authorized, form_field};
use crate::i18n::LANGUAGES;

/// Messages the inbox page shows (the newest).
const PAGE: u32 = 50;
/// Topics a customer may turn off; account messages and sign-in codes always go.
const TOPICS: &[&str] = &[
    "repair_updates",
    "shipping",
    "warranty",
    "reminders",
    "offers",
    "support",
];
/// Channels besides the inbox, which always receives.
const CHANNELS: &[(npb::ChannelKind, &str)] = &[
    (npb::ChannelKind::Email, "email"),
    (npb::ChannelKind::Sms, "sms"),
    (npb::ChannelKind::Push, "push"),
];

#[derive(Debug, Serialize)]
struct MessageView {
    id: String,
    subject: String,
    body: String,
    at: String,
    read: bool,
    urgent: bool,
}

pub async fn inbox(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((session, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/sign-in").into_response();
    };
    let listed = app
        .inner
        .notification
        .clone()
        .list_notifications(authorized(
            npb::ListNotificationsRequest {
                customer_id: session.person.subject.clone(),
                page_size: PAGE,
                page_token: String::new(),
            },
            &token,
        ))
        .await;
    let listed = match listed {
        Ok(listed) => listed.into_inner(),
        Err(status) => return app.refused(&visit, &status),
    };
    let messages: Vec<_> = listed
        .notifications
        .into_iter()
        .map(|n| MessageView {
            at: app.moment(visit.language, n.created_at.as_ref()),
            id: n.notification_id,
            subject: n.subject,
            body: n.body,
            read: n.read,
            urgent: n.urgent,
        })
        .collect();
    let title = app.t(visit.language, "inbox-title", &[]);
    let unread = app.t(
        visit.language,
        "inbox-unread",
        &[("count", &listed.unread.to_string())],
    );
    app.page(
        &visit,
        StatusCode::OK,
        &title,
        "inbox.html",
        minijinja::context! { messages => messages, unread => unread, unread_count => listed.unread },
    )
}

/// Marks the messages the page listed as read.
pub async fn mark_read(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (visit, session, token) = match app.acting(&headers, form_field(&form, "csrf")).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let ids: Vec<String> = form
        .iter()
        .filter(|(k, v)| k == "id" && !v.is_empty() && v.len() <= 64)
        .map(|(_, v)| v.clone())
        .take(PAGE as usize)
        .collect();
    if !ids.is_empty()
        && let Err(status) = app
            .inner
            .notification
            .clone()
            .mark_read(authorized(
                npb::MarkReadRequest {
                    customer_id: session.person.subject.clone(),
                    notification_ids: ids,
                },
                &token,
            ))
            .await
    {
        return app.refused(&visit, &status);
    }
    Redirect::to("/inbox").into_response()
}

/// The unread count now, then again whenever a message arrives.
pub async fn unread_events(State(app): State<App>, headers: HeaderMap) -> Response {
    let visit = app.visit(&headers, None);
    let Some((session, token)) = app.signed_in(&visit).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let customer = session.person.subject.clone();
    let arrivals = app
        .inner
        .notification
        .clone()
        .watch_notifications(authorized(
            npb::CustomerRef {
                customer_id: customer.clone(),
            },
            &token,
        ))
        .await;
    let Ok(arrivals) = arrivals else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    // One tick now, one per arrival; each tick reads the count afresh.
    let ticks = futures::stream::once(std::future::ready(())).chain(
        arrivals
            .into_inner()
            .take_while(|m| std::future::ready(m.is_ok()))
            .map(|_| ()),
    );
    let events = ticks.then(move |()| {
        let (mut notification, customer, token) = (
            app.inner.notification.clone(),
            customer.clone(),
            token.clone(),
        );
        async move {
            let unread = notification
                .list_notifications(authorized(
                    npb::ListNotificationsRequest {
                        customer_id: customer,
                        page_size: 1,
                        page_token: String::new(),
                    },
                    &token,
                ))
                .await
                .map_or(0, |r| r.into_inner().unread);
            Ok::<_, Infallible>(Event::default().event("unread").data(unread.to_string()))
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct PreferencesQuery {
    lang: Option<String>,
    saved: Option<String>,
}

async fn load_preferences(
    app: &App,
    customer: &str,
    token: &str,
) -> Result<npb::Preferences, tonic::Status> {
    app.inner
        .notification
        .clone()
        .get_preferences(authorized(
            npb::CustomerRef {
                customer_id: customer.to_owned(),
            },
            token,
        ))
        .await
        .map(tonic::Response::into_inner)
}

fn preferences_page(
    app: &App,
    visit: &Visit,
    status: StatusCode,
    p: &npb::Preferences,
    notice: Option<String>,
    saved: bool,
) -> Response {
    let language = visit.language;
    let chosen: Vec<i32> = p.channels.clone();
    let channels: Vec<_> = CHANNELS
        .iter()
        .map(|(kind, name)| {
            let reachable = match kind {
                npb::ChannelKind::Email => !p.email.is_empty(),
                npb::ChannelKind::Sms => !p.phone.is_empty(),
                npb::ChannelKind::Push
                | npb::ChannelKind::InApp
                | npb::ChannelKind::Unspecified => !p.push_token.is_empty(),
            };
            minijinja::context! {
                name => name,
                label => app.t(language, &format!("channel-{name}"), &[]),
                on => chosen.contains(&i32::from(*kind)),
                reachable => reachable,
            }
        })
        .collect();
    let topics: Vec<_> = TOPICS
        .iter()
        .map(|topic| {
            minijinja::context! {
                name => topic,
                label => app.t(language, &format!("topic-{}", topic.replace('_', "-")), &[]),
                on => !p.opted_out_topics.iter().any(|t| t == topic),
            }
        })
        .collect();
    let languages: Vec<_> = LANGUAGES
        .iter()
        .map(|(tag, name)| minijinja::context! { tag => tag, name => name })
        .collect();
    let quiet = p.quiet_hours.clone().unwrap_or_default();
    let title = app.t(language, "preferences-title", &[]);
    app.page(
        visit,
        status,
        &title,
        "preferences.html",
        minijinja::context! {
            channels => channels,
            topics => topics,
            languages => languages,
            message_language => &p.language,
            quiet_start => quiet.start,
            quiet_end => quiet.end,
            time_zone => quiet.time_zone,
            version => p.version,
            notice => notice,
            saved => saved,
        },
    )
}

pub async fn preferences(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<PreferencesQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((session, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/sign-in").into_response();
    };
    match load_preferences(&app, &session.person.subject, &token).await {
        Ok(p) => preferences_page(
            &app,
            &visit,
            StatusCode::OK,
            &p,
            None,
            query.saved.is_some(),
        ),
        Err(status) => app.refused(&visit, &status),
    }
}

/// The preferences as the form sets them, over `current` (addresses are kept).
fn from_form(current: &npb::Preferences, form: &[(String, String)]) -> npb::Preferences {
    let has = |name: &str| form.iter().any(|(k, _)| k == name);
    let value = |name: &str| form_field(form, name);
    let (start, end, zone) = (value("quiet_start"), value("quiet_end"), value("time_zone"));
    npb::Preferences {
        channels: CHANNELS
            .iter()
            .filter(|(_, name)| has(&format!("channel-{name}")))
            .map(|(kind, _)| i32::from(*kind))
            .collect(),
        language: LANGUAGES
            .iter()
            .map(|(tag, _)| *tag)
            .find(|tag| *tag == value("language"))
            .unwrap_or("en")
            .to_owned(),
        quiet_hours: (!start.is_empty() || !end.is_empty()).then(|| npb::QuietHours {
            start: start.to_owned(),
            end: end.to_owned(),
            time_zone: zone.chars().take(64).collect(),
        }),
        opted_out_topics: TOPICS
            .iter()
            .filter(|topic| !has(&format!("topic-{topic}")))
            .map(|topic| (*topic).to_owned())
            .collect(),
        ..current.clone()
    }
}

pub async fn save_preferences(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (visit, session, token) = match app.acting(&headers, form_field(&form, "csrf")).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let current = match load_preferences(&app, &session.person.subject, &token).await {
        Ok(p) => p,
        Err(status) => return app.refused(&visit, &status),
    };
    // Changed elsewhere since this form was shown: show the new ones instead
    // of overwriting them.
    if form_field(&form, "version") != current.version.to_string() {
        let notice = app.t(visit.language, "preferences-changed", &[]);
        return preferences_page(
            &app,
            &visit,
            StatusCode::CONFLICT,
            &current,
            Some(notice),
            false,
        );
    }
    let wanted = from_form(&current, &form);
    let saved = app
        .inner
        .notification
        .clone()
        .set_preferences(authorized(wanted.clone(), &token))
        .await;
    match saved {
        Ok(_) => {
            Redirect::to(&format!("/preferences?saved=1&lang={}", wanted.language)).into_response()
        }
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            let notice = app.not_done(visit.language, &status);
            preferences_page(
                &app,
                &visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                &wanted,
                Some(notice),
                false,
            )
        }
        Err(status) => app.refused(&visit, &status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_sets_channels_topics_language_and_quiet_hours_and_keeps_addresses() {
        let current = npb::Preferences {
            customer_id: "c-1".into(),
            email: "lena@example.com".into(),
            phone: "+4915112345678".into(),
            channels: vec![npb::ChannelKind::Email.into()],
            language: "en".into(),
            version: 3,
            ..Default::default()
        };
        let form: Vec<(String, String)> = [
            ("channel-sms", "on"),
            ("language", "de"),
            ("quiet_start", "22:00"),
            ("quiet_end", "07:00"),
            ("time_zone", "Europe/Berlin"),
            ("topic-repair_updates", "on"),
            ("topic-shipping", "on"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let p = from_form(&current, &form);
        assert_eq!(p.email, "lena@example.com");
        assert_eq!(p.phone, "+4915112345678");
        assert_eq!(p.channels, vec![i32::from(npb::ChannelKind::Sms)]);
        assert_eq!(p.language, "de");
        assert_eq!(
            p.quiet_hours.map(|q| (q.start, q.end, q.time_zone)),
            Some(("22:00".into(), "07:00".into(), "Europe/Berlin".into()))
        );
        assert_eq!(
            p.opted_out_topics,
            vec!["warranty", "reminders", "offers", "support"]
        );
        let unknown_language = vec![("language".to_owned(), "xx".to_owned())];
        assert_eq!(from_form(&current, &unknown_language).language, "en");
        assert!(from_form(&current, &unknown_language).quiet_hours.is_none());
    }
}
