//! Who may open each page. Every route is declared with its audience (the
//! table in `pages::routes`), and this guard admits or turns a request away
//! before its handler runs, so a page cannot be served without a rule. The
//! services still decide what each person may see and do; this keeps people
//! out of pages that are not for them at all.

use aftersales_auth::Role;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::pages::App;
use crate::session::Person;

/// Everyone who works at a service center.
pub const WORKSHOP: &[Role] = &[Role::Technician, Role::CenterManager];
/// Everyone who signs in to the staff console.
pub const STAFF: &[Role] = &[
    Role::Technician,
    Role::CenterManager,
    Role::SupportAgent,
    Role::Operator,
    Role::Auditor,
];

/// Who a page is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Signed in or not: the sign-in pages, the assets, the "not found" page.
    Anyone,
    /// A signed-in customer.
    Customer,
    /// A signed-in staff member in one of these roles.
    Staff(&'static [Role]),
}

/// What the guard does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Not signed in: to this sign-in page.
    SignIn(&'static str),
    /// Signed in as someone the page is not for: answered as a missing page.
    Refused,
}

impl Audience {
    pub fn admits(self, person: Option<&Person>) -> Admission {
        let sign_in = match self {
            Self::Anyone => return Admission::Admitted,
            Self::Customer => "/sign-in",
            Self::Staff(_) => "/staff/sign-in",
        };
        let Some(person) = person else {
            return Admission::SignIn(sign_in);
        };
        let admitted = match self {
            Self::Anyone => true,
            Self::Customer => person.role == Role::Customer,
            Self::Staff(roles) => roles.contains(&person.role),
        };
        if admitted {
            Admission::Admitted
        } else {
            Admission::Refused
        }
    }
}

/// The route layer that applies `audience` to one route.
pub async fn guard(
    State((app, audience)): State<(App, Audience)>,
    request: Request,
    next: Next,
) -> Response {
    let visit = app.visit(request.headers(), None);
    match audience.admits(visit.session.as_ref().map(|(_, s)| &s.person)) {
        Admission::Admitted => next.run(request).await,
        Admission::SignIn(page) if request.method() == Method::GET => {
            // A live page's event stream is told plainly; a page goes to sign in.
            if request
                .headers()
                .get("accept")
                .and_then(|v| v.to_str().ok())
                == Some("text/event-stream")
            {
                StatusCode::UNAUTHORIZED.into_response()
            } else {
                Redirect::to(page).into_response()
            }
        }
        Admission::SignIn(page) => Redirect::to(page).into_response(),
        Admission::Refused => app.not_found(&visit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(role: Role) -> Person {
        Person {
            subject: "someone".into(),
            role,
            centers: Vec::new(),
        }
    }

    #[test]
    fn each_audience_admits_its_people_and_sends_others_to_sign_in_or_away() {
        let customer = person(Role::Customer);
        let technician = person(Role::Technician);
        let auditor = person(Role::Auditor);
        assert_eq!(Audience::Anyone.admits(None), Admission::Admitted);
        assert_eq!(
            Audience::Customer.admits(None),
            Admission::SignIn("/sign-in")
        );
        assert_eq!(
            Audience::Customer.admits(Some(&customer)),
            Admission::Admitted
        );
        assert_eq!(
            Audience::Customer.admits(Some(&technician)),
            Admission::Refused
        );
        let workshop = Audience::Staff(WORKSHOP);
        assert_eq!(workshop.admits(None), Admission::SignIn("/staff/sign-in"));
        assert_eq!(workshop.admits(Some(&technician)), Admission::Admitted);
        assert_eq!(workshop.admits(Some(&auditor)), Admission::Refused);
        assert_eq!(workshop.admits(Some(&customer)), Admission::Refused);
        for role in [Role::Carrier, Role::Service, Role::Customer] {
            assert!(!STAFF.contains(&role), "{role} is not staff");
        }
    }

    #[test]
    fn routes_are_only_added_through_the_table_of_audiences() {
        // A `.route(` anywhere else would serve a page without a rule.
        for (file, source) in [
            ("pages.rs", include_str!("pages.rs")),
            ("pages/staff.rs", include_str!("pages/staff.rs")),
            ("lib.rs", include_str!("lib.rs")),
        ] {
            let routes = source.matches(".route(").count();
            let expected = usize::from(file == "pages.rs");
            assert_eq!(routes, expected, "{file} adds routes outside the table");
        }
    }
}
