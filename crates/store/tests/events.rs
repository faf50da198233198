//! Usage events on both backends: exactly-once on (source, id), isolation between workspaces,
//! reads by subject and period, late events, and group commit.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use billow_store::{
    Database, EventWriter, InsertOutcome, NewEvent, PostgresUrl, Store, Workspace, WorkspaceId,
    WorkspaceName,
};
use jiff::Timestamp;
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

fn at(instant: &str) -> Timestamp {
    instant.parse().unwrap()
}

fn event(id: &str, subject: &str, time: &str) -> NewEvent {
    NewEvent {
        source: "cluster-7".into(),
        id: id.into(),
        event_type: "cpu".into(),
        subject: subject.into(),
        time: at(time),
        data: Some(format!(r#"{{"cores":2,"id":"{id}"}}"#)),
    }
}

async fn workspace(store: &Store, id: &str) -> WorkspaceId {
    let workspace = Workspace {
        id: WorkspaceId::parse(id).unwrap(),
        name: WorkspaceName::parse(id).unwrap(),
        created_at: at("2026-11-01T00:00:00Z"),
    };
    store.insert_workspace(&workspace).await.unwrap();
    workspace.id
}

fn ids(events: &[billow_core::UsageEvent]) -> Vec<&str> {
    events.iter().map(|event| event.id.as_str()).collect()
}

const NOVEMBER: (&str, &str) = ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");

async fn november(store: &Store, workspace_id: &WorkspaceId, subjects: &[&str]) -> Vec<String> {
    let subjects: Vec<String> = subjects.iter().map(|s| (*s).to_owned()).collect();
    let events = store
        .usage_events(workspace_id, &subjects, at(NOVEMBER.0), at(NOVEMBER.1))
        .await
        .unwrap();
    ids(&events).into_iter().map(str::to_owned).collect()
}

async fn a_duplicate_in_the_batch_or_stored_before_is_counted_once(store: Store) {
    let acme = workspace(&store, "ws_acme").await;
    let first = [
        event("a", "cus_1", "2026-11-02T00:00:00Z"),
        event("b", "cus_1", "2026-11-03T00:00:00Z"),
        event("a", "cus_1", "2026-11-02T00:00:00Z"),
    ];
    let second = [
        event("b", "cus_1", "2026-11-03T00:00:00Z"),
        event("c", "cus_1", "2026-11-01T00:00:00Z"),
    ];

    let outcome_first = store
        .insert_events(&acme, &first, at("2026-11-05T00:00:00Z"))
        .await
        .unwrap();
    let outcome_second = store
        .insert_events(&acme, &second, at("2026-11-05T00:00:01Z"))
        .await
        .unwrap();

    assert_eq!(
        outcome_first,
        InsertOutcome {
            inserted: 2,
            duplicates: 1
        }
    );
    assert_eq!(
        outcome_second,
        InsertOutcome {
            inserted: 1,
            duplicates: 1
        }
    );
    assert_eq!(november(&store, &acme, &["cus_1"]).await, ["c", "a", "b"]);
}

/// A write whose transaction fails stores nothing and claims no key: the same events sent again
/// once the cause is gone are stored, not counted as duplicates.
async fn a_failed_write_claims_no_key(store: Store) {
    let missing = WorkspaceId::parse("ws_notyet").unwrap();
    let batch = [
        event("a", "cus_1", "2026-11-02T00:00:00Z"),
        event("b", "cus_1", "2026-11-02T00:00:00Z"),
    ];
    let failed = store
        .insert_events(&missing, &batch, Timestamp::now())
        .await;
    assert!(failed.is_err(), "no such workspace: {failed:?}");

    let created = workspace(&store, "ws_notyet").await;
    let retried = store
        .insert_events(&created, &batch, Timestamp::now())
        .await
        .unwrap();

    assert_eq!((retried.inserted, retried.duplicates), (2, 0));
    assert_eq!(november(&store, &created, &["cus_1"]).await, ["a", "b"]);
}

/// A write given up on half-way (its future dropped, as a timeout around `insert_events` does)
/// leaves each of its events stored once or not at all: sent again, each is stored once in all.
/// The writes are dropped after 0 to 3 ms: some before they begin, some while their transaction
/// is in flight (SQLite's worker and PostgreSQL's server may still commit it), some after.
async fn a_write_given_up_on_half_way_stores_each_event_once_when_sent_again(store: Store) {
    let acme = workspace(&store, "ws_acme").await;
    let mut expected = Vec::new();
    for round in 0..60_u64 {
        let batch: Vec<NewEvent> = (0..200)
            .map(|index| event(&format!("{round}-{index}"), "cus_1", "2026-11-02T00:00:00Z"))
            .collect();
        expected.extend(batch.iter().map(|event| event.id.clone()));
        let given_up = tokio::time::timeout(
            std::time::Duration::from_micros(round * 50),
            store.insert_events(&acme, &batch, at("2026-11-05T00:00:00Z")),
        )
        .await;
        let again = store
            .insert_events(&acme, &batch, at("2026-11-05T00:00:01Z"))
            .await
            .unwrap();
        assert_eq!(again.inserted + again.duplicates, 200);
        if let Ok(first) = given_up {
            assert_eq!(first.unwrap().inserted, 200, "round {round}");
            assert_eq!(again.duplicates, 200, "round {round}");
        }
    }

    let mut stored = november(&store, &acme, &["cus_1"]).await;
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected);
}

async fn the_same_id_from_another_source_is_another_event(store: Store) {
    let acme = workspace(&store, "ws_acme").await;
    let mut other_source = event("a", "cus_1", "2026-11-02T00:00:00Z");
    other_source.source = "cluster-8".into();

    let outcome = store
        .insert_events(
            &acme,
            &[event("a", "cus_1", "2026-11-02T00:00:00Z"), other_source],
            at("2026-11-05T00:00:00Z"),
        )
        .await
        .unwrap();

    assert_eq!(outcome.inserted, 2);
}

async fn workspaces_never_see_each_others_events_or_keys(store: Store) {
    let acme = workspace(&store, "ws_acme").await;
    let globex = workspace(&store, "ws_globex").await;
    let same = [event("a", "cus_1", "2026-11-02T00:00:00Z")];

    let in_acme = store
        .insert_events(&acme, &same, at("2026-11-05T00:00:00Z"))
        .await
        .unwrap();
    let in_globex = store
        .insert_events(&globex, &same, at("2026-11-05T00:00:00Z"))
        .await
        .unwrap();
    store
        .insert_events(
            &acme,
            &[event("x", "cus_2", "2026-11-02T00:00:00Z")],
            at("2026-11-05T00:00:00Z"),
        )
        .await
        .unwrap();

    assert_eq!(in_acme.inserted, 1);
    assert_eq!(
        in_globex.inserted, 1,
        "a key of another workspace is no duplicate"
    );
    assert_eq!(november(&store, &globex, &["cus_1", "cus_2"]).await, ["a"]);
    assert_eq!(
        november(&store, &acme, &["cus_1", "cus_2"]).await,
        ["a", "x"]
    );
}

async fn usage_events_selects_subjects_and_a_half_open_period(store: Store) {
    let acme = workspace(&store, "ws_acme").await;
    let events = [
        event("oct", "cus_1", "2026-10-31T23:59:59.999999999Z"),
        event("start", "cus_1", "2026-11-01T00:00:00Z"),
        event("last", "cus_1", "2026-11-30T23:59:59.999999999Z"),
        event("dec", "cus_1", "2026-12-01T00:00:00Z"),
        event("other", "cus_2", "2026-11-10T00:00:00Z"),
        event("resource", "vm_9", "2026-11-11T00:00:00Z"),
    ];

    store
        .insert_events(&acme, &events, at("2026-12-01T00:00:00Z"))
        .await
        .unwrap();

    assert_eq!(november(&store, &acme, &["cus_1"]).await, ["start", "last"]);
    assert_eq!(
        november(&store, &acme, &["cus_1", "vm_9"]).await,
        ["start", "resource", "last"]
    );
    assert!(november(&store, &acme, &[]).await.is_empty());
    let loaded = store
        .usage_events(&acme, &["cus_2".into()], at(NOVEMBER.0), at(NOVEMBER.1))
        .await
        .unwrap();
    let expected = &events[4];
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].source, expected.source);
    assert_eq!(loaded[0].event_type, expected.event_type);
    assert_eq!(loaded[0].subject, "cus_2");
    assert_eq!(loaded[0].time, expected.time);
    assert_eq!(loaded[0].data.to_map()["cores"], serde_json::json!(2));
}

async fn late_events_are_found_by_when_they_were_ingested(store: Store) {
    let acme = workspace(&store, "ws_acme").await;
    store
        .insert_events(
            &acme,
            &[event("on-time", "cus_1", "2026-11-30T12:00:00Z")],
            at("2026-11-30T12:00:01Z"),
        )
        .await
        .unwrap();
    store
        .insert_events(
            &acme,
            &[event("late", "cus_1", "2026-11-30T13:00:00Z")],
            at("2026-12-02T09:00:00Z"),
        )
        .await
        .unwrap();

    let late = store
        .usage_events_ingested_after(&acme, &["cus_1".into()], at("2026-12-01T00:00:00Z"))
        .await
        .unwrap();

    assert_eq!(ids(&late), ["late"]);
    assert_eq!(
        november(&store, &acme, &["cus_1"]).await,
        ["on-time", "late"]
    );
}

async fn concurrent_writers_store_each_key_once(store: Store) {
    let acme = workspace(&store, "ws_acme").await;
    let writer = EventWriter::new(store.clone());
    // 8 callers send overlapping batches: ids 0..150, 100..250, ...
    let mut tasks = Vec::new();
    for caller in 0..8_u32 {
        let writer = writer.clone();
        let acme = acme.clone();
        tasks.push(tokio::spawn(async move {
            let events: Vec<NewEvent> = (caller * 100..caller * 100 + 150)
                .map(|n| {
                    event(
                        &n.to_string(),
                        &format!("cus_{}", n % 7),
                        "2026-11-02T00:00:00Z",
                    )
                })
                .collect();
            writer.write(acme, events, Timestamp::now()).await.unwrap()
        }));
    }
    let mut total = InsertOutcome::default();
    for task in tasks {
        let outcome = task.await.unwrap();
        total.inserted += outcome.inserted;
        total.duplicates += outcome.duplicates;
    }

    assert_eq!(total.inserted, 850, "ids 0..850, each once");
    assert_eq!(total.duplicates, 8 * 150 - 850);
    let subjects: Vec<String> = (0..7).map(|n| format!("cus_{n}")).collect();
    let stored = store
        .usage_events(&acme, &subjects, at(NOVEMBER.0), at(NOVEMBER.1))
        .await
        .unwrap();
    assert_eq!(stored.len(), 850);
}

async fn compaction_changes_nothing_that_is_read_and_keeps_exactly_once(store: Store) {
    let acme = workspace(&store, "ws_acme").await;
    let early = [
        event("a", "cus_1", "2026-11-02T00:00:00Z"),
        event("b", "cus_2", "2026-11-03T00:00:00Z"),
    ];
    store
        .insert_events(&acme, &early, at("2026-11-05T00:00:00Z"))
        .await
        .unwrap();
    store
        .insert_events(
            &acme,
            &[event("c", "cus_1", "2026-11-01T00:00:00Z")],
            at("2026-12-02T00:00:00Z"),
        )
        .await
        .unwrap();
    let before = november(&store, &acme, &["cus_1", "cus_2"]).await;

    let moved = store.compact_events(1_000).await.unwrap();
    let again = store.compact_events(1_000).await.unwrap();

    assert_eq!((moved, again), (3, 0));
    assert_eq!(november(&store, &acme, &["cus_1", "cus_2"]).await, before);
    assert_eq!(before, ["c", "a", "b"]);
    let late = store
        .usage_events_ingested_after(&acme, &["cus_1".into()], at("2026-12-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(ids(&late), ["c"]);
    let retried = store
        .insert_events(&acme, &early, at("2026-12-03T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(retried.duplicates, 2, "compacted keys still count");
}

/// What a billing run reads: every subject's chunks in one query, decoded per customer, the same
/// events in the same order as a read of that customer's subjects, with some events compacted into
/// subject chunks and some still in log chunks.
async fn usage_chunks_split_by_customer_read_as_usage_events(store: Store) {
    let acme = workspace(&store, "ws_acme").await;
    let other = workspace(&store, "ws_other").await;
    let compacted = [
        event("a", "cus_1", "2026-11-02T00:00:00Z"),
        event("b", "sub_1", "2026-11-02T00:00:00Z"),
        event("c", "cus_2", "2026-11-03T00:00:00Z"),
        event("october", "cus_1", "2026-10-31T23:59:59Z"),
    ];
    store
        .insert_events(&acme, &compacted, at("2026-11-05T00:00:00Z"))
        .await
        .unwrap();
    store.compact_events(1_000).await.unwrap();
    let logged = [
        event("d", "cus_1", "2026-11-01T00:00:00Z"),
        event("e", "cus_2", "2026-11-02T00:00:00Z"),
        event("f", "sub_1", "2026-11-02T00:00:00Z"),
        event("g", "cus_3", "2026-11-04T00:00:00Z"),
    ];
    store
        .insert_events(&acme, &logged, at("2026-11-06T00:00:00Z"))
        .await
        .unwrap();
    store
        .insert_events(
            &other,
            &[event("theirs", "cus_1", "2026-11-02T00:00:00Z")],
            at("2026-11-06T00:00:00Z"),
        )
        .await
        .unwrap();
    let first: Vec<String> = vec!["cus_1".into(), "sub_1".into()];
    let second: Vec<String> = vec!["cus_2".into()];
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();

    let mut usage = store
        .usage_chunks(&acme, &all, at(NOVEMBER.0), at(NOVEMBER.1))
        .await
        .unwrap();
    let first_events = usage.take(&first).into_events().unwrap();
    let second_events = usage.take(&second).into_events().unwrap();

    assert_eq!(ids(&first_events), ["d", "a", "b", "f"]);
    assert_eq!(ids(&second_events), ["e", "c"]);
    assert_eq!(
        ids(&first_events),
        november(&store, &acme, &["cus_1", "sub_1"]).await
    );
    assert_eq!(
        ids(&second_events),
        november(&store, &acme, &["cus_2"]).await
    );
    assert_eq!(first_events[0].data.to_map()["cores"], serde_json::json!(2));
    assert_eq!(first_events[0].subject, "cus_1");
}

async fn compaction_moves_at_least_one_log_chunk_and_about_as_many_events_as_asked(store: Store) {
    let acme = workspace(&store, "ws_acme").await;
    for id in ["a", "b", "c"] {
        store
            .insert_events(
                &acme,
                &[event(id, "cus_1", "2026-11-02T00:00:00Z")],
                at("2026-11-05T00:00:00Z"),
            )
            .await
            .unwrap();
    }

    let first = store.compact_events(1).await.unwrap();
    let rest = store.compact_events(1_000).await.unwrap();

    assert_eq!((first, rest), (1, 2));
    assert_eq!(november(&store, &acme, &["cus_1"]).await, ["a", "b", "c"]);
}

async fn the_writer_compacts_what_it_wrote_once_idle(store: Store) {
    let acme = workspace(&store, "ws_acme").await;
    let writer = EventWriter::new(store.clone());
    let events = vec![
        event("a", "cus_1", "2026-11-02T00:00:00Z"),
        event("b", "cus_2", "2026-11-02T00:00:00Z"),
    ];
    writer
        .write(acme.clone(), events, Timestamp::now())
        .await
        .unwrap();

    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;

    assert_eq!(
        store.compact_events(1_000).await.unwrap(),
        0,
        "nothing left"
    );
    assert_eq!(
        november(&store, &acme, &["cus_1", "cus_2"]).await,
        ["a", "b"]
    );
}

/// `rounds` rounds of events for every subject, interleaved as many customers' traffic arrives:
/// round r has r % 3 + 1 events per subject, two rounds share each instant (ties across chunks).
fn interleaved_round(round: u32, subjects: &[&str]) -> Vec<NewEvent> {
    let mut events = Vec::new();
    for index in 0..round % 3 + 1 {
        for subject in subjects {
            let minute = round / 2;
            let mut event = event(
                &format!("{subject}-{round}-{index}"),
                subject,
                &format!("2026-11-02T{:02}:{:02}:00Z", minute / 60, minute % 60),
            );
            event.data = Some(format!(r#"{{"round":{round}}}"#));
            events.push(event);
        }
    }
    events
}

async fn merge_all(store: &Store) -> billow_store::MergeOutcome {
    let mut total = billow_store::MergeOutcome::default();
    loop {
        let outcome = store.merge_event_chunks(1_000).await.unwrap();
        if outcome.subjects == 0 {
            return total;
        }
        total.subjects += outcome.subjects;
        total.chunks_replaced += outcome.chunks_replaced;
        total.chunks_written += outcome.chunks_written;
        total.events += outcome.events;
    }
}

async fn merging_keeps_every_event_once_in_order_and_few_chunks_per_subject(store: Store) {
    let acme = workspace(&store, "ws_acme").await;
    let subjects = ["cus_1", "cus_2", "cus_3"];
    const ROUNDS: u32 = 60;
    let mut stored: Vec<NewEvent> = Vec::new();
    let mut merged = billow_store::MergeOutcome::default();
    for round in 0..ROUNDS {
        let events = interleaved_round(round, &subjects);
        let outcome = store
            .insert_events(&acme, &events, Timestamp::now())
            .await
            .unwrap();
        assert_eq!(outcome.inserted, u64::try_from(events.len()).unwrap());
        stored.extend(events);
        assert!(store.compact_events(1_000).await.unwrap() > 0);
        // Readers during the merges see every event once.
        let (outcome, during) = tokio::join!(merge_all(&store), november(&store, &acme, &subjects));
        assert_eq!(during.len(), stored.len());
        merged.chunks_replaced += outcome.chunks_replaced;
        merged.chunks_written += outcome.chunks_written;
        merged.events += outcome.events;
    }

    for subject in subjects {
        // Time order, and events of one instant in the order they were stored.
        let mut expected: Vec<&NewEvent> = stored.iter().filter(|e| e.subject == subject).collect();
        expected.sort_by_key(|event| event.time);
        let expected: Vec<&str> = expected.iter().map(|event| event.id.as_str()).collect();
        assert_eq!(november(&store, &acme, &[subject]).await, expected);
    }
    let events_total = u64::try_from(stored.len()).unwrap();
    assert!(merged.chunks_replaced > 0, "{merged:?}");
    assert!(
        merged.events <= 4 * events_total,
        "{merged:?}: few rewrites per event"
    );
    // Compaction wrote one chunk per subject per round.
    let chunks = u64::from(ROUNDS) * 3 + merged.chunks_written - merged.chunks_replaced;
    assert!(
        chunks <= 3 * 8,
        "{chunks} chunks for 3 subjects of {ROUNDS} chunks each"
    );
    let retried = store
        .insert_events(&acme, &stored, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(retried.duplicates, events_total, "merged keys still count");
    let late = store
        .usage_events_ingested_after(&acme, &["cus_2".into()], Timestamp::UNIX_EPOCH)
        .await
        .unwrap();
    assert_eq!(late.len(), stored.len() / 3);
}

/// A name no other test run uses: test processes run in parallel against one server.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{nanos}_{count}", std::process::id())
}

async fn sqlite_store() -> (Store, TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let store = Store::open(&Database::sqlite(directory.path().join("billow.db")))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (store, directory)
}

/// Two stores on one database (two processes on one SQLite file, two nodes on one PostgreSQL):
/// each one's key cache learns the other's keys inside its own write transaction.
async fn two_stores_on_one_database_share_exactly_once(first: Store, second: Store) {
    let acme = workspace(&first, "ws_acme").await;
    let batch = [event("a", "cus_1", "2026-11-02T00:00:00Z")];

    let by_first = first
        .insert_events(&acme, &batch, Timestamp::now())
        .await
        .unwrap();
    let by_second = second
        .insert_events(&acme, &batch, Timestamp::now())
        .await
        .unwrap();
    let by_first_again = first
        .insert_events(&acme, &batch, Timestamp::now())
        .await
        .unwrap();

    assert_eq!(by_first.inserted, 1);
    assert_eq!(by_second.duplicates, 1);
    assert_eq!(by_first_again.duplicates, 1);

    // Keys moved by the other store's compaction are still found.
    let other = [event("b", "cus_1", "2026-11-02T00:00:00Z")];
    second
        .insert_events(&acme, &other, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(second.compact_events(1_000).await.unwrap(), 2);
    // With a new event beside it: the first store decides from its cache, finds that the other
    // wrote since, and decides again, still storing the new one.
    let other_and_new = [
        other[0].clone(),
        event("c", "cus_1", "2026-11-02T00:00:00Z"),
    ];
    let by_first_after = first
        .insert_events(&acme, &other_and_new, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(by_first_after.duplicates, 1);
    assert_eq!(by_first_after.inserted, 1);
    assert_eq!(november(&second, &acme, &["cus_1"]).await.len(), 3);

    // Both write at once, with overlapping keys: each key is stored once.
    let overlapping = |from: u32| -> Vec<NewEvent> {
        (from..from + 200)
            .map(|n| event(&format!("n{n}"), "cus_2", "2026-11-02T00:00:00Z"))
            .collect()
    };
    let (low, high) = (overlapping(0), overlapping(100));
    let (one, two) = tokio::join!(
        first.insert_events(&acme, &low, Timestamp::now()),
        second.insert_events(&acme, &high, Timestamp::now()),
    );
    assert_eq!(one.unwrap().inserted + two.unwrap().inserted, 300);
    assert_eq!(november(&first, &acme, &["cus_2"]).await.len(), 300);

    // Chunks merged by the other store: their keys still count, once.
    let mut rounds = Vec::new();
    for round in 0..12 {
        let events = interleaved_round(round, &["cus_3", "cus_4"]);
        second
            .insert_events(&acme, &events, Timestamp::now())
            .await
            .unwrap();
        while second.compact_events(1_000).await.unwrap() > 0 {}
        rounds.extend(events);
    }
    assert!(merge_all(&second).await.chunks_replaced > 0);
    let by_first_after_merge = first
        .insert_events(&acme, &rounds, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(by_first_after_merge.inserted, 0);
    assert_eq!(
        november(&first, &acme, &["cus_3", "cus_4"]).await.len(),
        rounds.len()
    );
}

/// A store compacts the log chunks it wrote from its own memory (SQLite) or reads them back
/// (PostgreSQL). Either way, when the other store compacted them first, or wrote older log
/// chunks meanwhile, each event is moved exactly once and read exactly once, in order.
async fn compaction_by_either_store_moves_each_event_once(first: Store, second: Store) {
    let acme = workspace(&first, "ws_acme").await;
    let write = |store: &Store, id: &str| {
        let store = store.clone();
        let acme = acme.clone();
        let batch = [event(id, "cus_1", "2026-11-02T00:00:00Z")];
        async move {
            let outcome = store
                .insert_events(&acme, &batch, Timestamp::now())
                .await
                .unwrap();
            assert_eq!(outcome.inserted, 1);
        }
    };

    // The first store's chunk is compacted by the second before the first gets to it.
    write(&first, "a").await;
    assert_eq!(second.compact_events(1_000).await.unwrap(), 1);
    assert_eq!(
        first.compact_events(1_000).await.unwrap(),
        0,
        "already moved"
    );
    assert_eq!(november(&first, &acme, &["cus_1"]).await, ["a"]);

    // An older log chunk of the second store lies below the first store's own.
    write(&second, "b").await;
    write(&first, "c").await;
    assert_eq!(
        first.compact_events(1_000).await.unwrap(),
        2,
        "the second store's older chunk is moved with the first's"
    );
    assert_eq!(second.compact_events(1_000).await.unwrap(), 0);
    assert_eq!(november(&second, &acme, &["cus_1"]).await, ["a", "b", "c"]);

    // The first store's own chunks, compacted by itself, a part at a time.
    for id in ["d", "e", "f"] {
        write(&first, id).await;
    }
    assert_eq!(first.compact_events(2).await.unwrap(), 2);
    write(&second, "g").await;
    let own = first.compact_events(1_000).await.unwrap();
    let rest = first.compact_events(1_000).await.unwrap();
    // SQLite moves its own remembered chunk first, then the newer one from the database;
    // PostgreSQL reads both at once.
    assert_eq!(own + rest, 2);
    assert!(own >= 1);
    assert_eq!(first.compact_events(1_000).await.unwrap(), 0);
    assert_eq!(
        november(&first, &acme, &["cus_1"]).await,
        ["a", "b", "c", "d", "e", "f", "g"]
    );
    let again = first
        .insert_events(
            &acme,
            &[event("f", "cus_1", "2026-11-02T00:00:00Z")],
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert_eq!(again.duplicates, 1, "compacted keys still count");
}

/// Runs `check` on two stores opened on one SQLite file (two processes).
async fn on_two_sqlite_stores(check: impl AsyncFnOnce(Store, Store)) {
    let (first, directory) = sqlite_store().await;
    let second = Store::open(&Database::sqlite(directory.path().join("billow.db")))
        .await
        .unwrap();
    check(first, second).await;
}

/// Runs `check` on two stores opened on one fresh PostgreSQL database (two nodes).
async fn on_two_postgres_nodes(check: impl AsyncFnOnce(Store, Store)) {
    let Some((database, admin_url, name)) = create_postgres_database().await else {
        return;
    };
    let first = Store::open(&database).await.unwrap();
    first.migrate().await.unwrap();
    let second = Store::open(&database).await.unwrap();
    check(first.clone(), second.clone()).await;
    first.close().await;
    second.close().await;
    drop_postgres_database(&admin_url, &name).await;
}

/// A workspace whose stored events cannot be compacted (here a subject with U+0000, which the
/// API refuses today but an older version stored, and PostgreSQL cannot hold in `text`) is left
/// out, and compaction goes on with the other workspaces instead of failing for all of them.
#[tokio::test]
async fn postgres_compaction_goes_on_past_a_workspace_whose_events_fail_it() {
    with_postgres_store(async |store: Store| {
        let broken = workspace(&store, "ws_broken").await;
        let acme = workspace(&store, "ws_acme").await;
        // The broken workspace's log chunk is the oldest, which compaction takes first.
        store
            .insert_events(
                &broken,
                &[event("x", "cus_\u{0}", "2026-11-02T00:00:00Z")],
                at("2026-11-05T00:00:00Z"),
            )
            .await
            .unwrap();
        let events = [
            event("a", "cus_1", "2026-11-02T00:00:00Z"),
            event("b", "cus_1", "2026-11-03T00:00:00Z"),
        ];
        store
            .insert_events(&acme, &events, at("2026-11-05T00:00:01Z"))
            .await
            .unwrap();

        let moved = store.compact_events(1_000).await.unwrap();
        let again = store.compact_events(1_000).await.unwrap();

        assert_eq!((moved, again), (2, 0));
        assert_eq!(november(&store, &acme, &["cus_1"]).await, ["a", "b"]);
    })
    .await;
}

#[tokio::test]
async fn sqlite_stores_compact_each_event_once() {
    on_two_sqlite_stores(compaction_by_either_store_moves_each_event_once).await;
}

#[tokio::test]
async fn postgres_nodes_compact_each_event_once() {
    on_two_postgres_nodes(compaction_by_either_store_moves_each_event_once).await;
}

#[tokio::test]
async fn sqlite_stores_opened_on_one_file_share_exactly_once() {
    on_two_sqlite_stores(two_stores_on_one_database_share_exactly_once).await;
}

#[tokio::test]
async fn postgres_nodes_on_one_database_share_exactly_once() {
    on_two_postgres_nodes(two_stores_on_one_database_share_exactly_once).await;
}

fn postgres_admin_url() -> Option<String> {
    match std::env::var("BILLOW_TEST_DATABASE_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("BILLOW_SKIP_POSTGRES").as_deref() == Ok("1") => None,
        Err(_) => panic!(
            "BILLOW_TEST_DATABASE_URL is not set (scripts/test sets it); set \
             BILLOW_SKIP_POSTGRES=1 to skip the PostgreSQL tests"
        ),
    }
}

/// A fresh PostgreSQL database on the test server, dropped by [`drop_postgres_database`].
async fn create_postgres_database() -> Option<(Database, String, String)> {
    let admin_url = postgres_admin_url()?;
    let name = unique_name("billow_events");
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    admin
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .unwrap();
    let url: PostgresUrl = admin_url.parse().unwrap();
    Some((
        Database::Postgres(url.with_database_name(&name)),
        admin_url,
        name,
    ))
}

async fn drop_postgres_database(admin_url: &str, name: &str) {
    let mut admin = PgConnection::connect(admin_url).await.unwrap();
    admin
        .execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str())
        .await
        .unwrap();
}

async fn with_postgres_store(check: impl AsyncFnOnce(Store)) {
    let Some((database, admin_url, name)) = create_postgres_database().await else {
        return;
    };
    let store = Store::open(&database).await.unwrap();
    store.migrate().await.unwrap();
    check(store.clone()).await;
    store.close().await;
    drop_postgres_database(&admin_url, &name).await;
}

macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let (store, _directory) = super::sqlite_store().await;
                    super::$check(store).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    super::with_postgres_store(super::$check).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_duplicate_in_the_batch_or_stored_before_is_counted_once,
    a_failed_write_claims_no_key,
    a_write_given_up_on_half_way_stores_each_event_once_when_sent_again,
    the_same_id_from_another_source_is_another_event,
    workspaces_never_see_each_others_events_or_keys,
    usage_events_selects_subjects_and_a_half_open_period,
    late_events_are_found_by_when_they_were_ingested,
    concurrent_writers_store_each_key_once,
    compaction_changes_nothing_that_is_read_and_keeps_exactly_once,
    usage_chunks_split_by_customer_read_as_usage_events,
    compaction_moves_at_least_one_log_chunk_and_about_as_many_events_as_asked,
    the_writer_compacts_what_it_wrote_once_idle,
    merging_keeps_every_event_once_in_order_and_few_chunks_per_subject,
);
