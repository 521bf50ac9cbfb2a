//! The catalog as data (`catalog.toml`): models, their spare parts, the original
//! accessories, and for each model the operation that repairs each fault.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: String,
    /// The prefix of the model's part numbers.
    pub code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub number: String,
    pub name: String,
    pub models: Vec<String>,
    /// Each unit carries a serial, recorded when it is fitted.
    pub serialized: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accessory {
    pub number: String,
    pub name: String,
    /// As warranty names accessory kinds: charger, cable, case, earbuds.
    pub kind: String,
    /// The models it fits; empty for every model.
    pub models: Vec<String>,
    /// A faulty unit replaced under warranty comes back to the depot (for
    /// analysis, or because it holds a battery), with a label sent along.
    #[serde(default)]
    pub return_faulty: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    pub model: String,
    pub fault: String,
    pub name: String,
    pub parts: Vec<String>,
    pub labour_minutes: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    published: chrono::NaiveDate,
    delivery_working_days: u32,
    faults: Vec<String>,
    model: Vec<Model>,
    part: Vec<Part>,
    accessory: Vec<Accessory>,
    operation: Vec<Operation>,
}

/// The whole catalog, checked: every number unique, every operation's parts
/// fit its model, every fault known.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub version: u32,
    pub published: chrono::NaiveDate,
    /// Working days within which a replenishment must arrive.
    pub delivery_working_days: u32,
    faults: BTreeSet<String>,
    models: BTreeMap<String, Model>,
    parts: BTreeMap<String, Part>,
    accessories: BTreeMap<String, Accessory>,
    /// By (model, fault).
    operations: BTreeMap<(String, String), Operation>,
}

/// A stockable item: a spare part or an accessory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    Part(&'a Part),
    Accessory(&'a Accessory),
}

impl Item<'_> {
    pub fn name(&self) -> &str {
        match self {
            Self::Part(p) => &p.name,
            Self::Accessory(a) => &a.name,
        }
    }
}

impl Catalog {
    pub fn builtin() -> Result<Self, String> {
        Self::parse(include_str!("../../catalog.toml"))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| format!("catalog: {e}"))?;
        if !(5..=10).contains(&file.delivery_working_days) {
            return Err("catalog: delivery_working_days must be 5 to 10".into());
        }
        let faults: BTreeSet<String> = file.faults.into_iter().collect();
        let mut models = BTreeMap::new();
        for model in file.model {
            if models.insert(model.name.clone(), model).is_some() {
                return Err("catalog: a model is listed twice".into());
            }
        }
        let mut numbers = BTreeSet::new();
        let mut parts = BTreeMap::new();
        for part in file.part {
            if let Some(model) = part.models.iter().find(|m| !models.contains_key(*m)) {
                return Err(format!(
                    "catalog: part {} names unknown model {model}",
                    part.number
                ));
            }
            if !numbers.insert(part.number.clone()) {
                return Err(format!("catalog: part number {} listed twice", part.number));
            }
            parts.insert(part.number.clone(), part);
        }
        let mut accessories = BTreeMap::new();
        for accessory in file.accessory {
            if !numbers.insert(accessory.number.clone()) {
                return Err(format!("catalog: number {} listed twice", accessory.number));
            }
            accessories.insert(accessory.number.clone(), accessory);
        }
        let mut operations = BTreeMap::new();
        for op in file.operation {
            if !faults.contains(&op.fault) {
                return Err(format!(
                    "catalog: operation names unknown fault {}",
                    op.fault
                ));
            }
            for number in &op.parts {
                let fits = parts
                    .get(number)
                    .is_some_and(|p: &Part| p.models.contains(&op.model));
                if !fits {
                    return Err(format!(
                        "catalog: {} for {} needs {number}, which does not fit it",
                        op.fault, op.model
                    ));
                }
            }
            let key = (op.model.clone(), op.fault.clone());
            if operations.insert(key, op).is_some() {
                return Err("catalog: an operation is listed twice".into());
            }
        }
        if let Some(bad) = numbers.iter().find(|n| !is_item_number(n)) {
            return Err(format!("catalog: {bad:?} is not a valid part number"));
        }
        Ok(Self {
            version: file.version,
            published: file.published,
            delivery_working_days: file.delivery_working_days,
            faults,
            models,
            parts,
            accessories,
            operations,
        })
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.get(name)
    }

    pub fn models(&self) -> impl Iterator<Item = &Model> {
        self.models.values()
    }

    pub fn is_fault(&self, fault: &str) -> bool {
        self.faults.contains(fault)
    }

    pub fn item(&self, number: &str) -> Option<Item<'_>> {
        self.parts
            .get(number)
            .map(Item::Part)
            .or_else(|| self.accessories.get(number).map(Item::Accessory))
    }

    pub fn part(&self, number: &str) -> Option<&Part> {
        self.parts.get(number)
    }

    pub fn parts(&self) -> impl Iterator<Item = &Part> {
        self.parts.values()
    }

    pub fn accessories(&self) -> impl Iterator<Item = &Accessory> {
        self.accessories.values()
    }

    pub fn operation(&self, model: &str, fault: &str) -> Option<&Operation> {
        self.operations.get(&(model.to_owned(), fault.to_owned()))
    }

    /// A model's operations, in the catalog's fault order.
    pub fn operations_for<'a>(&'a self, model: &'a str) -> impl Iterator<Item = &'a Operation> {
        self.operations
            .range((model.to_owned(), String::new())..)
            .take_while(move |((m, _), _)| m == model)
            .map(|(_, op)| op)
    }
}

/// Part and accessory numbers: 1 to 32 upper-case letters, digits and '-'.
pub fn is_item_number(value: &str) -> bool {
    (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalog_is_consistent() {
        let catalog = Catalog::builtin().unwrap();
        assert_eq!(catalog.models().count(), 4);
        let display = catalog.operation("Aurora 5", "display").unwrap();
        assert_eq!(display.parts, ["A5-DSP"]);
        assert!(matches!(
            catalog.item("ACC-CHG-30W"),
            Some(Item::Accessory(_))
        ));
        assert!(catalog.item("A5-NOPE").is_none());
        // Every model has an operation for every fault the catalog lists.
        for model in catalog.models() {
            let faults: Vec<_> = catalog
                .operations_for(&model.name)
                .map(|o| &o.fault)
                .collect();
            assert_eq!(faults.len(), catalog.faults.len(), "{}", model.name);
        }
    }

    #[test]
    fn an_operation_needing_a_part_of_another_model_is_refused() {
        let text = include_str!("../../catalog.toml").replacen(
            "parts = [\"A4-DSP\"]",
            "parts = [\"A5-DSP\"]",
            1,
        );
        let error = Catalog::parse(&text).unwrap_err();
        assert!(error.contains("A5-DSP, which does not fit it"), "{error}");
    }
}
