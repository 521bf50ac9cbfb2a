//! What support holds about a customer: their cases, whose words (what they and
//! the agents wrote, attachments' names) are sealed under the customer's key,
//! their self-help walks, and their satisfaction surveys (links and comments
//! sealed likewise). Erasure needs no wait: a case can be answered
//! without the customer's words. It destroys that key; the cases' steps and
//! clocks stay under the customer's pseudonymous id.

use aftersales_core::Error;
use aftersales_runtime::privacy::{Answer, CustomerRecords, Erased, Kept, Obligation, Record};
use serde_json::json;

use crate::app::Support;
use crate::projections::CaseFilter;

/// Support's part in a customer's rights.
#[derive(Debug, Clone)]
pub struct SupportRecords {
    app: Support,
}

impl SupportRecords {
    pub fn new(app: Support) -> Self {
        Self { app }
    }

    async fn case_ids(&self, customer: &str) -> Result<Vec<String>, Error> {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .app
                .list(&CaseFilter {
                    customer_id: Some(customer.to_owned()),
                    after: after.clone(),
                    limit: 500,
                    ..CaseFilter::default()
                })
                .await?;
            let full = page.len() == 500;
            after = page.last().map(|c| {
                (
                    crate::projections::timestamp(c.state.opened_at),
                    c.state.case_id.clone(),
                )
            });
            ids.extend(page.into_iter().map(|c| c.state.case_id));
            if !full {
                return Ok(ids);
            }
        }
    }
}

impl CustomerRecords for SupportRecords {
    fn export<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Record>> {
        Box::pin(async move {
            let mut records = Vec::new();
            for id in self.case_ids(customer).await? {
                let case = self.app.get(&id).await?;
                let history: Vec<_> = self
                    .app
                    .history(&id)
                    .await?
                    .into_iter()
                    .map(|h| json!({"at": h.at, "step": h.event}))
                    .collect();
                records.push(Record {
                    kind: "support_case",
                    id,
                    data: json!({"case": case.state, "history": history}),
                });
            }
            for survey in self.app.surveys().of_customer(customer).await? {
                records.push(Record {
                    kind: "support_survey",
                    id: survey.survey.survey_id.clone(),
                    data: json!(survey),
                });
            }
            Ok(records)
        })
    }

    fn obligations<'a>(&'a self, _customer: &'a str) -> Answer<'a, Vec<Obligation>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Everything is sealed under the customer's own key.
    fn subjects<'a>(&'a self, _customer: &'a str) -> Answer<'a, Vec<String>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// No read model copies their words; the count says what the key held.
    fn scrub<'a>(&'a self, customer: &'a str) -> Answer<'a, Vec<Erased>> {
        Box::pin(async move {
            let cases = self.case_ids(customer).await?;
            let surveys = crate::projections::surveys_of(self.app.store(), customer).await?;
            Ok(vec![
                Erased {
                    what: "support cases: what the customer and the agents wrote, attachments' \
                           names"
                        .into(),
                    count: u64::try_from(cases.len()).unwrap_or(u64::MAX),
                },
                Erased {
                    what: "satisfaction surveys: their links and the customer's comments".into(),
                    count: u64::try_from(surveys.len()).unwrap_or(u64::MAX),
                },
            ])
        })
    }

    fn kept(&self) -> Vec<Kept> {
        vec![
            Kept {
                what:
                    "support cases: category, priority, team and agent, each step's time and the \
                   service-level clocks"
                        .into(),
                why: "the desk's quality figures and the evidence of how each promise was kept; \
                  under the customer's pseudonymous id, without anything they wrote"
                    .into(),
            },
            Kept {
                what: "satisfaction surveys: what each asked about and the score given".into(),
                why: "the quality figures of agents, teams, centers and technicians; under the \
                  customer's pseudonymous id, without their comment"
                    .into(),
            },
        ]
    }
}
