use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

fn calendar() -> Arc<BusinessCalendar> {
    let day = vec![super::super::calendar::Span::parse("09:00-17:00").unwrap()];
    let week = std::array::from_fn(|d| if d < 5 { day.clone() } else { vec![] });
    Arc::new(BusinessCalendar::new("Europe/Berlin", week, []).unwrap())
}

fn routing(team: &str, tier: Tier) -> Routing {
    Routing {
        team_id: team.into(),
        tier,
        calendar: calendar(),
    }
}

const TARGETS: Targets = Targets {
    first_response_minutes: 60,
    resolution_minutes: 480,
    warning_percent: 80,
};

/// Tuesday 1 December 2026, 10:00 in Berlin.
fn t0() -> DateTime<Utc> {
    utc("2026-12-01T09:00:00Z")
}

fn opening() -> Opening {
    Opening {
        case_id: "c1".into(),
        customer_id: "cust-1".into(),
        country: "DE".into(),
        language: "de".into(),
        channel: Channel::Phone,
        category: Category::Hardware,
        priority: Priority::Urgent,
        device_imei: None,
        repair_order_id: None,
        source: None,
        subject: "Akku".into(),
        text: "Das Telefon lädt nicht.\nSeit gestern.".into(),
        attachments: vec![],
        routing: routing("de-front", Tier::FrontLine),
        policy_version: 1,
        targets: TARGETS,
        at: t0(),
    }
}

/// Decides and folds, like the command handler does.
fn run(
    state: Option<CaseState>,
    command: &Command,
) -> Result<(Option<CaseState>, Vec<Event>), DomainError> {
    let events = Case::decide(&state, command)?;
    let state = events.iter().fold(state, Case::evolve);
    Ok((state, events))
}

fn opened() -> CaseState {
    run(None, &Command::Open(Box::new(opening())))
        .unwrap()
        .0
        .unwrap()
}

fn assigned() -> CaseState {
    let command = Command::Assign {
        agent_id: "agent-de-anna".into(),
        only_if_unassigned: true,
        at: t0(),
    };
    run(Some(opened()), &command).unwrap().0.unwrap()
}

fn entry(kind: EntryKind, at: DateTime<Utc>) -> Command {
    Command::AddEntry {
        kind,
        author: "agent-de-anna".into(),
        text: "Bitte ein anderes Kabel versuchen.".into(),
        attachments: vec![],
        calendar: calendar(),
        at,
    }
}

fn alarms(now: DateTime<Utc>, escalate_to: Option<Routing>) -> Command {
    Command::RecordAlarms { now, escalate_to }
}

#[test]
fn a_case_opens_new_with_both_clocks_running_in_working_time() {
    let case = opened();
    assert_eq!(case.status, Status::New);
    assert_eq!(
        case.clock(ClockKind::FirstResponse).unwrap().state,
        ClockState::Running {
            warn_at: t0() + Duration::minutes(48),
            due: t0() + Duration::minutes(60),
        }
    );
    // Eight working hours from Tuesday 10:00 are due Wednesday 10:00; the
    // warning, at 80%, Tuesday 16:24.
    let resolution = case.clock(ClockKind::Resolution).unwrap();
    assert_eq!(resolution.next_alarm(), Some(utc("2026-12-01T15:24:00Z")));
    assert_eq!(
        resolution.state,
        ClockState::Running {
            warn_at: utc("2026-12-01T15:24:00Z"),
            due: utc("2026-12-02T09:00:00Z"),
        }
    );
}

#[test]
fn the_first_reply_meets_the_first_response_promise_and_notes_do_not() {
    let case = assigned();
    let at = t0() + Duration::minutes(20);
    let (case, _) = run(Some(case), &entry(EntryKind::InternalNote, at)).unwrap();
    assert!(
        case.as_ref()
            .unwrap()
            .clock(ClockKind::FirstResponse)
            .unwrap()
            .is_running()
    );
    let (case, _) = run(case, &entry(EntryKind::AgentReply, at)).unwrap();
    let case = case.unwrap();
    assert_eq!(case.first_response_at, Some(at));
    assert_eq!(
        case.clock(ClockKind::FirstResponse).unwrap().state,
        ClockState::Stopped { at }
    );
    // An hour later nothing is due for the first response.
    let (_, events) = run(Some(case), &alarms(t0() + Duration::hours(2), None)).unwrap();
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn warnings_and_breaches_are_recorded_once_however_often_asked() {
    let case = opened();
    // 50 minutes in: the first response's warning (at 80% = 48 min) only.
    let (case, events) = run(Some(case), &alarms(t0() + Duration::minutes(50), None)).unwrap();
    assert!(matches!(
        events.as_slice(),
        [Event::SlaWarningReached {
            clock: ClockKind::FirstResponse,
            ..
        }]
    ));
    let (case, again) = run(case, &alarms(t0() + Duration::minutes(55), None)).unwrap();
    assert!(again.is_empty());
    // Past due: the breach, once.
    let (case, events) = run(case, &alarms(t0() + Duration::minutes(61), None)).unwrap();
    assert!(matches!(
        events.as_slice(),
        [Event::SlaBreached {
            clock: ClockKind::FirstResponse,
            ..
        }]
    ));
    let (case, again) = run(case, &alarms(t0() + Duration::minutes(90), None)).unwrap();
    assert!(again.is_empty());
    let case = case.unwrap();
    let first = case.clock(ClockKind::FirstResponse).unwrap();
    assert!(first.warned && first.breached);
    assert_eq!(
        case.next_alarm(),
        case.clock(ClockKind::Resolution).unwrap().next_alarm()
    );
}

#[test]
fn a_breach_found_late_records_the_warning_and_the_breach_together() {
    // Wednesday 06:00 in Berlin: the first response long overdue, the
    // resolution past its warning only.
    let (_, events) = run(Some(opened()), &alarms(t0() + Duration::hours(20), None)).unwrap();
    let kinds: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        kinds,
        ["SlaWarningReached", "SlaBreached", "SlaWarningReached"]
    );
}

#[test]
fn waiting_on_the_customer_pauses_the_clocks_and_their_answer_resumes_them() {
    let case = assigned();
    // 30 working minutes in, the agent asks the customer something.
    let asked = t0() + Duration::minutes(30);
    let wait = Command::WaitOnCustomer {
        calendar: calendar(),
        at: asked,
    };
    let (case, _) = run(Some(case), &wait).unwrap();
    assert_eq!(case.as_ref().unwrap().status, Status::WaitingOnCustomer);
    // Days pass: nothing falls due while paused.
    let (case, events) = run(case, &alarms(t0() + Duration::days(5), None)).unwrap();
    assert!(events.is_empty());
    // The customer answers on Monday 7 December at 09:00 Berlin.
    let answered = utc("2026-12-07T08:00:00Z");
    let mut answer = entry(EntryKind::CustomerMessage, answered);
    if let Command::AddEntry { author, .. } = &mut answer {
        *author = "cust-1".into();
    }
    let (case, _) = run(case, &answer).unwrap();
    let case = case.unwrap();
    assert_eq!(case.status, Status::Assigned);
    // The first response had 30 of its 60 minutes left.
    assert_eq!(
        case.clock(ClockKind::FirstResponse).unwrap().state,
        ClockState::Running {
            warn_at: answered + Duration::minutes(18),
            due: answered + Duration::minutes(30),
        }
    );
}

#[test]
fn illegal_transitions_name_the_state_and_write_nothing() {
    let new = opened();
    let precondition =
        |state: &CaseState, command: &Command| match Case::decide(&Some(state.clone()), command) {
            Err(DomainError::Precondition(why)) => why,
            other => panic!("expected a precondition, got {other:?}"),
        };
    assert!(precondition(&new, &entry(EntryKind::AgentReply, t0())).contains("new"));
    assert!(
        precondition(
            &new,
            &Command::Resolve {
                summary: "done".into(),
                at: t0()
            }
        )
        .contains("new")
    );
    assert!(precondition(&new, &Command::Close { at: t0() }).contains("new"));
    let resolved = run(
        Some(assigned()),
        &Command::Resolve {
            summary: "Kabel getauscht".into(),
            at: t0() + Duration::hours(1),
        },
    )
    .unwrap()
    .0
    .unwrap();
    assert!(
        precondition(
            &resolved,
            &Command::WaitOnCustomer {
                calendar: calendar(),
                at: t0()
            }
        )
        .contains("resolved")
    );
    assert!(
        precondition(
            &resolved,
            &entry(EntryKind::CustomerMessage, t0() + Duration::hours(2))
        )
        .contains("resolved")
    );
    assert!(matches!(
        Case::decide(&None, &Command::Close { at: t0() }),
        Err(DomainError::NotFound(_))
    ));
    assert!(matches!(
        Case::decide(&Some(new), &Command::Open(Box::new(opening()))),
        Err(DomainError::AlreadyExists(_))
    ));
}

#[test]
fn routing_never_takes_a_case_from_an_agent_but_a_person_may_reassign_it() {
    let case = assigned();
    let assign = |only_if_unassigned| Command::Assign {
        agent_id: "agent-de-jonas".into(),
        only_if_unassigned,
        at: t0(),
    };
    assert!(
        Case::decide(&Some(case.clone()), &assign(true))
            .unwrap()
            .is_empty()
    );
    let (case, _) = run(Some(case), &assign(false)).unwrap();
    assert_eq!(case.unwrap().agent_id.as_deref(), Some("agent-de-jonas"));
}

#[test]
fn a_case_reopens_within_the_window_only_with_a_fresh_resolution_clock() {
    let resolved_at = t0() + Duration::hours(1);
    let resolved = run(
        Some(assigned()),
        &Command::Resolve {
            summary: "Kabel getauscht".into(),
            at: resolved_at,
        },
    )
    .unwrap()
    .0;
    let closed = run(resolved, &Command::Close { at: resolved_at })
        .unwrap()
        .0;
    let reopen = |at| Command::Reopen {
        reason: "Lädt wieder nicht".into(),
        window: Duration::days(14),
        targets: TARGETS,
        calendar: calendar(),
        at,
    };
    let late = Case::decide(&closed, &reopen(resolved_at + Duration::days(15)));
    assert!(matches!(late, Err(DomainError::Precondition(why)) if why.contains("14 days")));
    let at = resolved_at + Duration::days(3);
    let case = run(closed, &reopen(at)).unwrap().0.unwrap();
    assert_eq!((case.status, case.reopened), (Status::Assigned, 1));
    assert!(case.clock(ClockKind::Resolution).unwrap().is_running());
    assert!(!case.clock(ClockKind::FirstResponse).unwrap().is_running());
}

#[test]
fn a_resolution_breach_escalates_one_tier_in_the_same_decision() {
    let case = assigned();
    let to = routing("hardware-experts", Tier::Expert);
    let (case, events) = run(Some(case), &alarms(t0() + Duration::days(2), Some(to))).unwrap();
    let kinds: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
    assert_eq!(
        kinds,
        [
            "SlaWarningReached",
            "SlaBreached",
            "SlaWarningReached",
            "SlaBreached",
            "CaseEscalated"
        ]
    );
    let case = case.unwrap();
    assert_eq!(
        (
            case.tier,
            case.team_id.as_str(),
            case.status,
            case.agent_id.as_deref()
        ),
        (Tier::Expert, "hardware-experts", Status::New, None)
    );
    // Asked again, nothing more: the breach and its escalation happened once.
    let (_, again) = run(
        Some(case),
        &alarms(
            t0() + Duration::days(3),
            Some(routing("engineering", Tier::Engineering)),
        ),
    )
    .unwrap();
    assert!(again.is_empty());
}

#[test]
fn an_escalation_while_waiting_runs_the_clocks_again() {
    let asked = t0() + Duration::minutes(30);
    let waiting = run(
        Some(assigned()),
        &Command::WaitOnCustomer {
            calendar: calendar(),
            at: asked,
        },
    )
    .unwrap()
    .0;
    let at = t0() + Duration::hours(2);
    let escalate = Command::Escalate {
        reason: EscalationReason::CustomerRequest,
        note: "Kunde möchte einen Experten".into(),
        to: routing("hardware-experts", Tier::Expert),
        at,
    };
    let case = run(waiting, &escalate).unwrap().0.unwrap();
    assert_eq!(case.status, Status::New);
    assert!(case.clocks.iter().all(Clock::is_running));
    let same_tier = Command::Escalate {
        reason: EscalationReason::Agent,
        note: String::new(),
        to: routing("hardware-experts", Tier::Expert),
        at,
    };
    assert!(matches!(
        Case::decide(&Some(case), &same_tier),
        Err(DomainError::Precondition(why)) if why.contains("expert")
    ));
}

#[test]
fn bad_input_names_the_field() {
    let invalid = |command: &Command, state: Option<CaseState>| match Case::decide(&state, command)
    {
        Err(DomainError::Invalid { field, .. }) => field,
        other => panic!("expected invalid input, got {other:?}"),
    };
    let mut empty = opening();
    empty.text = "  \n ".into();
    assert_eq!(invalid(&Command::Open(Box::new(empty)), None), "text");
    let mut long = opening();
    long.text = "x".repeat(MAX_MESSAGE_BYTES + 1);
    assert_eq!(invalid(&Command::Open(Box::new(long)), None), "text");
    let mut subject = opening();
    subject.subject = "a\u{7}b".into();
    assert_eq!(invalid(&Command::Open(Box::new(subject)), None), "subject");
    let attachment = Attachment {
        name: "photo.jpg".into(),
        content_type: "image/jpeg".into(),
        size_bytes: MAX_ATTACHMENT_BYTES + 1,
        sha256: "a".repeat(64),
    };
    let with = |attachments: Vec<Attachment>| Command::AddEntry {
        kind: EntryKind::CustomerMessage,
        author: "cust-1".into(),
        text: "Foto anbei".into(),
        attachments,
        calendar: calendar(),
        at: t0(),
    };
    assert_eq!(
        invalid(&with(vec![attachment.clone()]), Some(assigned())),
        "attachments.size_bytes"
    );
    let bad_type = Attachment {
        content_type: "jpeg".into(),
        size_bytes: 10,
        ..attachment.clone()
    };
    assert_eq!(
        invalid(&with(vec![bad_type]), Some(assigned())),
        "attachments.content_type"
    );
    let fine = Attachment {
        size_bytes: 10,
        ..attachment
    };
    assert_eq!(
        invalid(&with(vec![fine; MAX_ATTACHMENTS + 1]), Some(assigned())),
        "attachments"
    );
}
