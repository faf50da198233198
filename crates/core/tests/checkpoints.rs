//! An engine started at a checkpoint issues what the engine run over the whole history issues
//! after it: for every golden scenario, every checkpoint, the later invoices, the upcoming ones,
//! the next invoice instant and the later checkpoints are the same, given only the events from
//! the checkpoint's `usage_from` on and the gauge events it carries. The checkpoint goes through
//! JSON first, as a billing run stores it.

mod support;

use support::golden_worlds;

use billow_core::scenario::{preview, preview_from, Checkpoint, World};
use jiff::Timestamp;

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap()
}

/// The scenario an engine started at `checkpoint` is given: the events from `usage_from` on,
/// with those it carries.
fn from_checkpoint(scenario: &World, checkpoint: &Checkpoint) -> World {
    let read = scenario
        .events
        .iter()
        .filter(|event| event.time >= checkpoint.usage_from)
        .cloned()
        .collect();
    World {
        events: checkpoint.events_with(read),
        ..scenario.clone()
    }
}

#[test]
fn an_engine_started_at_any_checkpoint_issues_what_the_whole_history_issues_after_it() {
    let mut compared = 0;
    let mut with_history = 0;
    for (name, scenario) in golden_worlds() {
        let full = preview(&scenario).unwrap_or_else(|e| panic!("{name}: {e}"));
        for made in &full.checkpoints {
            let checkpoint = full
                .checkpoint_through(&scenario, made.through)
                .expect("a checkpoint at its own instant");
            let stored = serde_json::to_string(&checkpoint).unwrap();
            let checkpoint: Checkpoint = serde_json::from_str(&stored).unwrap();
            assert!(checkpoint.usage_from <= scenario.now, "{name}");
            let started = from_checkpoint(&scenario, &checkpoint);
            if started.events.len() < scenario.events.len() {
                with_history += 1;
            }
            let partial = preview_from(&started, Some(&checkpoint))
                .unwrap_or_else(|e| panic!("{name} from {}: {e}", checkpoint.through));
            let after = |at: Timestamp| at > checkpoint.through;
            let expected: Vec<_> = full
                .invoices
                .iter()
                .filter(|invoice| after(invoice.invoice.issued_at))
                .collect();
            assert_eq!(
                json(&partial.invoices),
                json(&expected),
                "{name}: invoices after {}",
                checkpoint.through
            );
            assert_eq!(
                json(&partial.upcoming),
                json(&full.upcoming),
                "{name}: upcoming invoices from {}",
                checkpoint.through
            );
            assert_eq!(partial.next_invoice_at, full.next_invoice_at, "{name}");
            let later: Vec<_> = full
                .checkpoints
                .iter()
                .filter(|later| after(later.through))
                .collect();
            assert_eq!(
                json(&partial.checkpoints),
                json(&later),
                "{name}: checkpoints after {}",
                checkpoint.through
            );
            compared += 1;
        }
    }
    assert!(compared >= 40, "compared {compared} checkpoints");
    assert!(
        with_history >= 10,
        "only {with_history} checkpoints left events out"
    );
}

#[test]
fn a_gauge_keeps_its_level_across_a_checkpoint_from_the_event_it_carries() {
    // dst-berlin.json's server-hours gauge, set to 2 servers on 10 March and never again: every
    // later month bills 2 × its hours, from a level set before any later checkpoint's
    // `usage_from`.
    let (_, mut scenario) = golden_worlds()
        .into_iter()
        .find(|(name, _)| name == "dst-berlin.json")
        .expect("dst-berlin.json");
    let mut event = scenario.events[0].clone();
    event.id = "set-2".into();
    event.time = "2024-03-10T00:00:00Z".parse().unwrap();
    event.data =
        billow_core::EventData::from_map(serde_json::json!({"servers": 2}).as_object().unwrap());
    scenario.events = vec![event];
    let full = preview(&scenario).unwrap();
    let carrying = full
        .checkpoints
        .iter()
        .filter_map(|made| full.checkpoint_through(&scenario, made.through))
        .find(|checkpoint| !checkpoint.carried.is_empty())
        .expect("a checkpoint that carries the gauge's level");
    assert_eq!(carrying.carried.len(), 1);
    assert_eq!(carrying.carried[0].id, "set-2");
    let started = from_checkpoint(&scenario, &carrying);
    assert_eq!(started.events.len(), 1, "only the carried event is read");
    let without = World {
        events: Vec::new(),
        ..scenario.clone()
    };
    let with = preview_from(&started, Some(&carrying)).unwrap();
    let without = preview_from(&without, Some(&carrying)).unwrap();
    let hours = |preview: &billow_core::scenario::Preview| -> Vec<String> {
        preview
            .invoices
            .iter()
            .flat_map(|invoice| &invoice.invoice.lines)
            .filter(|line| line.meter.as_deref() == Some("servers"))
            .map(|line| line.quantity.to_string())
            .collect()
    };
    let expected: Vec<_> = full
        .invoices
        .iter()
        .filter(|invoice| invoice.invoice.issued_at > carrying.through)
        .flat_map(|invoice| &invoice.invoice.lines)
        .filter(|line| line.meter.as_deref() == Some("servers"))
        .map(|line| line.quantity.to_string())
        .collect();
    assert!(!expected.is_empty() && expected.iter().all(|q| q != "0"));
    assert_eq!(hours(&with), expected);
    assert!(hours(&without).iter().all(|q| q == "0"));
}

/// A checkpoint made by a run at an earlier instant serves a run at the scenario's own `now`:
/// for every golden scenario, a run a day after each of its issue instants, that has seen only
/// the events before that instant (those of the new day arrive after it), makes the checkpoint,
/// and the engine started there at `now`, with the events from its `usage_from` on, issues what
/// the whole history issues after it. This is how a billing run uses the checkpoint of the run
/// before it, a month earlier, events arriving after a delay.
#[test]
fn a_checkpoint_made_at_an_earlier_now_serves_a_later_run() {
    let mut compared = 0;
    for (name, scenario) in golden_worlds() {
        let full = preview(&scenario).unwrap_or_else(|e| panic!("{name}: {e}"));
        let instants: Vec<Timestamp> = full
            .invoices
            .iter()
            .map(|invoice| invoice.invoice.issued_at)
            .collect();
        for earlier in instants {
            let then = earlier
                .checked_add(jiff::SignedDuration::from_hours(24))
                .unwrap();
            if then >= scenario.now {
                continue;
            }
            let past = World {
                now: then,
                events: scenario
                    .events
                    .iter()
                    .filter(|event| event.time < earlier)
                    .cloned()
                    .collect(),
                ..scenario.clone()
            };
            let Ok(made) = preview(&past) else {
                continue;
            };
            let Some(last) = made.checkpoints.last() else {
                continue;
            };
            let checkpoint = made.checkpoint_through(&past, last.through).unwrap();
            let started = from_checkpoint(&scenario, &checkpoint);
            let partial = preview_from(&started, Some(&checkpoint))
                .unwrap_or_else(|e| panic!("{name} from {}: {e}", checkpoint.through));
            let expected: Vec<_> = full
                .invoices
                .iter()
                .filter(|invoice| invoice.invoice.issued_at > checkpoint.through)
                .collect();
            assert_eq!(
                json(&partial.invoices),
                json(&expected),
                "{name}: invoices after {} (checkpoint made at {then})",
                checkpoint.through
            );
            assert_eq!(
                json(&partial.upcoming),
                json(&full.upcoming),
                "{name}: upcoming from {} (checkpoint made at {then})",
                checkpoint.through
            );
            compared += 1;
        }
    }
    assert!(compared >= 40, "compared {compared} checkpoints");
}
