//! `aftersales support`: the desk's cases from open to resolved, the knowledge
//! base, and the quality figures (as a table or as CSV).

use aftersales_proto::common::CountryCode;
use aftersales_proto::support as spb;
use aftersales_proto::support::support_service_client::SupportServiceClient;
use serde_json::json;

use crate::client::{Endpoints, failed};

#[derive(Debug, clap::Subcommand)]
pub enum Support {
    /// Open a case for a customer (from the hotline, by default).
    Open {
        #[arg(long)]
        customer: String,
        /// ISO country code of the customer, e.g. DE.
        #[arg(long)]
        country: String,
        /// en, de, zh-CN or hi.
        #[arg(long)]
        language: String,
        /// hardware, software_and_updates, warranty_question, accessory,
        /// shipping or complaint.
        #[arg(long)]
        category: String,
        /// low, normal, high or urgent.
        #[arg(long, default_value = "normal")]
        priority: String,
        /// phone, chat, email, web or agent.
        #[arg(long, default_value = "phone")]
        channel: String,
        #[arg(long)]
        subject: String,
        #[arg(long)]
        text: String,
        /// The phone it is about.
        #[arg(long, default_value = "")]
        imei: String,
        /// The repair order it is about.
        #[arg(long, default_value = "")]
        order: String,
    },
    /// A case and its whole history.
    Show {
        #[arg(long)]
        case: String,
    },
    /// Cases, newest first: a team's, an agent's or a customer's.
    List {
        #[arg(long, default_value = "")]
        team: String,
        #[arg(long, default_value = "")]
        agent: String,
        #[arg(long, default_value = "")]
        customer: String,
        /// Open cases only.
        #[arg(long)]
        open: bool,
    },
    /// Answer the customer (or, with --internal, note for staff only).
    Reply {
        #[arg(long)]
        case: String,
        #[arg(long)]
        text: String,
        #[arg(long)]
        internal: bool,
    },
    /// Wait on the customer: the clocks pause until they answer.
    Wait {
        #[arg(long)]
        case: String,
    },
    /// Resolve a case; the customer is asked how it went.
    Resolve {
        #[arg(long)]
        case: String,
        #[arg(long)]
        summary: String,
    },
    /// Move a case one tier up, with its history.
    Escalate {
        #[arg(long)]
        case: String,
        #[arg(long)]
        note: String,
    },
    /// Each agent's open cases and each team's queue.
    Workload,
    /// Search the knowledge base.
    Search {
        /// en, de, zh-CN or hi.
        #[arg(long)]
        language: String,
        #[arg(long)]
        query: String,
    },
    /// Quality per team, agent, center or technician by ISO week.
    Quality {
        /// team, agent, center or technician.
        #[arg(long, default_value = "team")]
        group: String,
        /// The first ISO week, e.g. 2026-W49; unset: the last --weeks weeks.
        #[arg(long, default_value = "")]
        from: String,
        #[arg(long, default_value_t = 4)]
        weeks: u32,
        /// Print the service's CSV file instead of a table.
        #[arg(long)]
        csv: bool,
    },
}

fn pick<T: Copy>(flag: &str, value: &str, choices: &[(&str, T)]) -> Result<T, String> {
    choices
        .iter()
        .find(|(name, _)| *name == value.trim())
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            format!("--{flag}: {value:?} is not one of {}", names.join(", "))
        })
}

const CATEGORIES: [(&str, spb::Category); 6] = [
    ("hardware", spb::Category::Hardware),
    ("software_and_updates", spb::Category::SoftwareAndUpdates),
    ("warranty_question", spb::Category::WarrantyQuestion),
    ("accessory", spb::Category::Accessory),
    ("shipping", spb::Category::Shipping),
    ("complaint", spb::Category::Complaint),
];
const PRIORITIES: [(&str, spb::Priority); 4] = [
    ("low", spb::Priority::Low),
    ("normal", spb::Priority::Normal),
    ("high", spb::Priority::High),
    ("urgent", spb::Priority::Urgent),
];
const CHANNELS: [(&str, spb::Channel); 5] = [
    ("phone", spb::Channel::Phone),
    ("chat", spb::Channel::Chat),
    ("email", spb::Channel::Email),
    ("web", spb::Channel::Web),
    ("agent", spb::Channel::Agent),
];
const GROUPS: [(&str, spb::QualityGroup); 4] = [
    ("team", spb::QualityGroup::Team),
    ("agent", spb::QualityGroup::Agent),
    ("center", spb::QualityGroup::Center),
    ("technician", spb::QualityGroup::Technician),
];

fn status_name(status: i32) -> &'static str {
    match spb::Status::try_from(status) {
        Ok(spb::Status::New) => "new",
        Ok(spb::Status::Assigned) => "assigned",
        Ok(spb::Status::WaitingOnCustomer) => "waiting on customer",
        Ok(spb::Status::Resolved) => "resolved",
        Ok(spb::Status::Closed) => "closed",
        Ok(spb::Status::Unspecified) | Err(_) => "unknown",
    }
}

fn print_case(case: &spb::Case, json: bool) {
    if json {
        println!(
            "{}",
            json!({"case_id": case.case_id, "customer_id": case.customer_id,
                "status": status_name(case.status), "team_id": case.team_id,
                "agent_id": case.agent_id, "language": case.language,
                "repair_order_id": case.repair_order_id})
        );
    } else {
        println!(
            "case {}: {} · team {} · agent {}",
            case.case_id,
            status_name(case.status),
            case.team_id,
            if case.agent_id.is_empty() {
                "none yet"
            } else {
                &case.agent_id
            }
        );
    }
}

pub async fn support(command: Support, endpoints: &Endpoints) -> Result<(), String> {
    let mut desk =
        SupportServiceClient::new(endpoints.channel("support", &endpoints.support_url).await?);
    let json = endpoints.json;
    match command {
        Support::Open {
            customer,
            country,
            language,
            category,
            priority,
            channel,
            subject,
            text,
            imei,
            order,
        } => {
            let request = spb::OpenCaseRequest {
                customer_id: customer,
                country: Some(CountryCode { value: country }),
                language,
                channel: pick("channel", &channel, &CHANNELS)?.into(),
                category: pick("category", &category, &CATEGORIES)?.into(),
                priority: pick("priority", &priority, &PRIORITIES)?.into(),
                subject,
                text,
                device_imei: imei,
                repair_order_id: order,
                ..Default::default()
            };
            let case = desk.open_case(request).await.map_err(failed)?.into_inner();
            print_case(&case, json);
        }
        Support::Show { case } => {
            let detail = desk
                .get_case(spb::CaseRef { case_id: case })
                .await
                .map_err(failed)?
                .into_inner();
            let case = detail.case.unwrap_or_default();
            if json {
                let history: Vec<_> = detail
                    .history
                    .iter()
                    .map(|e| json!({"event": e.event_type, "author": e.author, "text": e.text}))
                    .collect();
                println!(
                    "{}",
                    json!({"case_id": case.case_id, "status": status_name(case.status),
                        "subject": detail.subject, "history": history})
                );
                return Ok(());
            }
            print_case(&case, false);
            println!("  {}", detail.subject);
            for entry in detail.history {
                let author = if entry.author.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", entry.author)
                };
                println!("  {}{author}: {}", entry.event_type, entry.text);
            }
        }
        Support::List {
            team,
            agent,
            customer,
            open,
        } => {
            let cases = desk
                .list_cases(spb::ListCasesRequest {
                    team_id: team,
                    agent_id: agent,
                    customer_id: customer,
                    open_only: open,
                    ..Default::default()
                })
                .await
                .map_err(failed)?
                .into_inner()
                .cases;
            for case in &cases {
                print_case(case, json);
            }
        }
        Support::Reply {
            case,
            text,
            internal,
        } => {
            let kind = if internal {
                spb::EntryKind::InternalNote
            } else {
                spb::EntryKind::AgentReply
            };
            let case = desk
                .add_entry(spb::AddEntryRequest {
                    case_id: case,
                    kind: kind.into(),
                    text,
                    attachments: Vec::new(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            print_case(&case, json);
        }
        Support::Wait { case } => {
            let case = desk
                .wait_on_customer(spb::CaseRef { case_id: case })
                .await
                .map_err(failed)?
                .into_inner();
            print_case(&case, json);
        }
        Support::Resolve { case, summary } => {
            let case = desk
                .resolve_case(spb::ResolveCaseRequest {
                    case_id: case,
                    summary,
                })
                .await
                .map_err(failed)?
                .into_inner();
            print_case(&case, json);
        }
        Support::Escalate { case, note } => {
            let case = desk
                .escalate_case(spb::EscalateCaseRequest {
                    case_id: case,
                    reason: spb::EscalationReason::Agent.into(),
                    note,
                })
                .await
                .map_err(failed)?
                .into_inner();
            print_case(&case, json);
        }
        Support::Workload => {
            let load = desk
                .get_workload(spb::GetWorkloadRequest::default())
                .await
                .map_err(failed)?
                .into_inner();
            for team in &load.teams {
                println!(
                    "team {}: {} open, {} unassigned, {} breached",
                    team.team_id, team.open_cases, team.unassigned, team.breached
                );
            }
            for agent in &load.agents {
                println!(
                    "  {} ({}): {} open{}",
                    agent.agent_id,
                    agent.team_id,
                    agent.open_cases,
                    if agent.on_shift { ", on shift" } else { "" }
                );
            }
        }
        Support::Search { language, query } => {
            let hits = desk
                .search_articles(spb::SearchArticlesRequest {
                    language,
                    query,
                    limit: 5,
                })
                .await
                .map_err(failed)?
                .into_inner()
                .hits;
            for hit in hits {
                if json {
                    println!(
                        "{}",
                        json!({"article_id": hit.article_id, "title": hit.title, "score": hit.score})
                    );
                } else {
                    println!("{}  {} ({:.2})", hit.article_id, hit.title, hit.score);
                }
            }
        }
        Support::Quality {
            group,
            from,
            weeks,
            csv,
        } => {
            let request = spb::GetQualityFiguresRequest {
                group_by: pick("group", &group, &GROUPS)?.into(),
                from_week: from,
                weeks,
            };
            if csv {
                let file = desk
                    .export_quality_figures(request)
                    .await
                    .map_err(failed)?
                    .into_inner();
                print!("{}", file.content);
                return Ok(());
            }
            let rows = desk
                .get_quality_figures(request)
                .await
                .map_err(failed)?
                .into_inner()
                .rows;
            for r in rows {
                if json {
                    println!(
                        "{}",
                        json!({"week": r.week, "group": r.group_id, "cases_resolved": r.cases_resolved,
                            "sla_attainment": r.sla_attainment,
                            "first_contact_resolution": r.first_contact_resolution,
                            "reopen_rate": r.reopen_rate, "escalation_rate": r.escalation_rate,
                            "survey_answers": r.survey_answers, "mean_satisfaction": r.mean_satisfaction})
                    );
                } else {
                    println!(
                        "{} {}: {} resolved, {:.0}% in SLA, {:.0}% first contact, {} answers, satisfaction {:.1}",
                        r.week,
                        r.group_id,
                        r.cases_resolved,
                        r.sla_attainment * 100.0,
                        r.first_contact_resolution * 100.0,
                        r.survey_answers,
                        r.mean_satisfaction
                    );
                }
            }
        }
    }
    Ok(())
}
