//! The scenario file takes outside bytes (`billow preview FILE`, the API's validation of every
//! spec a request stores), so no input may make the core panic: property tests feed it arbitrary
//! text, and golden scenarios with one member replaced by a hostile value (U+0000 and other
//! control characters, huge and negative numbers, deep nesting, wrong types, instants at the ends
//! of the calendar). Each must be read or refused with an error naming a path; each world read
//! must be priced or refused, never panic.
//!
//! `PROPTEST_CASES` sets how many cases each property runs (256 by default); `FUZZ_LAST=FILE`
//! writes each mutated document to FILE before it is read, to find one that never finishes; a
//! case that takes over a second is printed.

mod support;

use support::golden_texts;

use billow_core::scenario::{preview, Scenario, ScenarioError};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Strings a hostile client sends.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\u{0}".to_owned()),
        Just("a\u{0}b".to_owned()),
        Just("\u{7f}\u{1b}[2J".to_owned()),
        Just("é".repeat(300)),
        Just("-0".to_owned()),
        Just("1e400".to_owned()),
        Just("NaN".to_owned()),
        Just("0000-01-01T00:00:00Z".to_owned()),
        Just("9999-12-31T23:59:59Z".to_owned()),
        Just("-009999-01-01T00:00:00Z".to_owned()),
        Just("2024-02-30T00:00:00Z".to_owned()),
        Just("Europe/Nowhere".to_owned()),
        Just("monthly".to_owned()),
        Just("annual".to_owned()),
        ".{0,12}",
    ]
}

/// Numbers at and beyond what the core's types hold.
fn hostile_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1)),
        Just(json!(31)),
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(serde_json::from_str::<Value>("1e308").unwrap()),
        Just(serde_json::from_str::<Value>("79228162514264337593543950336").unwrap()),
        Just(serde_json::from_str::<Value>("0.0000000000000000000000000001").unwrap()),
        Just(serde_json::from_str::<Value>("-0.5").unwrap()),
        (-1_000_000_i64..1_000_000).prop_map(|n| json!(n)),
    ]
}

fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        hostile_number(),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((hostile_string(), inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Every place in `value` a mutation may replace: the paths of its members and elements.
fn places(value: &Value, path: &mut Vec<Step>, all: &mut Vec<Vec<Step>>) {
    match value {
        Value::Object(members) => {
            for (key, member) in members {
                path.push(Step::Key(key.clone()));
                all.push(path.clone());
                places(member, path, all);
                path.pop();
            }
        }
        Value::Array(elements) => {
            for (index, element) in elements.iter().enumerate() {
                path.push(Step::Index(index));
                all.push(path.clone());
                places(element, path, all);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn at_mut<'a>(value: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut current = value;
    for step in path {
        current = match (step, current) {
            (Step::Key(key), Value::Object(members)) => members.get_mut(key)?,
            (Step::Index(index), Value::Array(elements)) => elements.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(current)
}

/// What the core answers for `text`: read or refused with a path, then priced or refused. A
/// panic anywhere fails the property.
fn read_and_price(text: &str) -> Result<(), String> {
    match Scenario::from_json(text) {
        Ok(scenario) => {
            // Refusing to price is allowed (an amount out of range, say); panicking is not.
            let _ = preview(&scenario.world);
            Ok(())
        }
        Err(ScenarioError::Malformed { path, .. } | ScenarioError::Invalid { path, .. }) => {
            if path.is_empty() {
                Err(format!("an error without a path for {text}"))
            } else {
                Ok(())
            }
        }
    }
}

proptest! {
    // A failing case is printed, shrunk, not written beside the sources (a test file has no
    // lib.rs for proptest to find).
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_text_is_refused_without_a_panic(text in ".{0,200}") {
        prop_assert!(read_and_price(&text).is_ok());
    }

    #[test]
    fn a_golden_scenario_with_one_hostile_member_is_read_or_refused_never_a_panic(
        choice in any::<prop::sample::Index>(),
        place in any::<prop::sample::Index>(),
        replacement in hostile_value(),
    ) {
        let goldens = golden_texts();
        let (name, text) = &goldens[choice.index(goldens.len())];
        let mut document: Value = serde_json::from_str(text).unwrap();
        let mut all = Vec::new();
        places(&document, &mut Vec::new(), &mut all);
        let path = &all[place.index(all.len())];
        if let Some(target) = at_mut(&mut document, path) {
            *target = replacement;
        }
        let mutated = document.to_string();
        if let Ok(file) = std::env::var("FUZZ_LAST") {
            std::fs::write(file, format!("{name} {path:?}\n{mutated}")).unwrap();
        }
        let started = std::time::Instant::now();
        let outcome = read_and_price(&mutated);
        if started.elapsed() > std::time::Duration::from_secs(1) {
            let replaced = at_mut(&mut document, path).map(|v| v.to_string());
            eprintln!("slow: {:?} {name} {path:?} {replaced:?}", started.elapsed());
        }
        prop_assert!(outcome.is_ok(), "{name}, {path:?}: {outcome:?}");
    }
}
