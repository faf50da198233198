//! What the core's integration tests share: the golden scenarios under `scenarios/golden/`.

use std::path::{Path, PathBuf};

use billow_core::scenario::{Scenario, World};

/// Every golden scenario file as (file name, text), in name order.
pub fn golden_texts() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("scenarios/golden exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&file).unwrap())
        })
        .collect()
}

/// Every golden scenario's world, as (file name, world).
#[allow(dead_code)] // Not every test file reads worlds.
pub fn golden_worlds() -> Vec<(String, World)> {
    golden_texts()
        .into_iter()
        .map(|(name, text)| {
            let scenario = Scenario::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, scenario.world)
        })
        .collect()
}
