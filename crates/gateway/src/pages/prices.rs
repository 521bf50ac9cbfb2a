//! The published repair price list: what repairing each fault of a model costs
//! in a country, with its tax shown as that country requires, for anyone,
//! signed in or not.

use aftersales_proto::common::CountryCode;
use aftersales_proto::parts as ppb;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::App;

#[derive(Debug, Deserialize)]
pub(super) struct PriceQuery {
    model: Option<String>,
    country: Option<String>,
    lang: Option<String>,
}

/// The country a language's reader most likely buys in, until they choose.
fn country_of(language: &str) -> &'static str {
    match language {
        "de" => "DE",
        "zh-CN" => "CN",
        "hi" => "IN",
        _ => "GB",
    }
}

/// A rate in basis points as a percentage: `1900` as `19`, `825` as `8.25`.
fn percent(basis_points: u32) -> String {
    let (whole, rest) = (basis_points / 100, basis_points % 100);
    if rest == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{rest:02}")
            .trim_end_matches('0')
            .to_owned()
    }
}

/// `/prices?model=…&country=…`: the chosen list, or the first model's in the
/// reader's likely country. Only listed models and countries are asked for.
pub(super) async fn page(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<PriceQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let language = visit.language;
    let title = app.t(language, "prices-title", &[]);
    let parts = app.inner.parts.clone();
    let index = match parts
        .clone()
        .list_price_lists(ppb::ListPriceListsRequest {})
        .await
    {
        Ok(index) => index.into_inner(),
        Err(status) => return app.refused(&visit, &status),
    };
    let model = query
        .model
        .filter(|m| index.models.contains(m))
        .or_else(|| index.models.first().cloned())
        .unwrap_or_default();
    let country = query
        .country
        .filter(|c| index.countries.contains(c))
        .or_else(|| {
            let likely = country_of(language);
            index.countries.iter().find(|c| *c == likely).cloned()
        })
        .or_else(|| index.countries.first().cloned())
        .unwrap_or_default();
    let list = match parts
        .clone()
        .get_repair_price_list(ppb::GetRepairPriceListRequest {
            model: model.clone(),
            country: Some(CountryCode {
                value: country.clone(),
            }),
            as_of: None,
        })
        .await
    {
        Ok(list) => list.into_inner(),
        Err(status) => return app.refused(&visit, &status),
    };
    let shown =
        |price: Option<&ppb::Price>| app.money(language, price.and_then(|p| p.shown.as_ref()));
    let lines: Vec<_> = list
        .lines
        .iter()
        .map(|line| {
            minijinja::context! {
                fault => app.t(language, &format!("fault-{}", line.fault.replace('_', "-")), &[]),
                operation => line.operation,
                parts => shown(line.parts.as_ref()),
                labour => shown(line.labour.as_ref()),
                total => shown(line.total.as_ref()),
            }
        })
        .collect();
    let tax = list.tax.unwrap_or_default();
    let included = tax.display() == ppb::TaxDisplay::Included;
    let tax_note = app.t(
        language,
        if included {
            "prices-tax-included"
        } else {
            "prices-tax-excluded"
        },
        &[
            ("tax", &tax.name),
            ("rate", &percent(tax.rate_basis_points)),
        ],
    );
    let valid_from = app.date(language, &list.valid_from);
    app.page(
        &visit,
        StatusCode::OK,
        &title,
        "prices.html",
        minijinja::context! {
            models => index.models,
            countries => index.countries,
            model => model,
            country => country,
            lines => lines,
            tax_note => tax_note,
            valid_from => app.t(language, "prices-valid-from", &[("date", &valid_from)]),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_percentages() {
        assert_eq!(percent(1900), "19");
        assert_eq!(percent(825), "8.25");
        assert_eq!(percent(750), "7.5");
        assert_eq!(percent(0), "0");
    }
}
