//! Durable before reported, on SQLite: every invoice a billing run reports is still there after
//! a power cut that comes right after the report (docs/billing-runs.md, "Durable before
//! reported").
//!
//! The power cut is a filesystem shutdown that flushes nothing: the SQLite file lives on an ext4
//! filesystem made in a file and mounted through a loop device, and `xfs_io -x -c shutdown`
//! (xfsprogs; `FS_IOC_SHUTDOWN`, which ext4 implements, without flushing its log) stops the
//! filesystem the moment the report is read. What the kernel had not written to the device by
//! then is lost, as in a power cut; unmounting and mounting again replays ext4's journal, and
//! SQLite recovers its WAL as after a crash.
//!
//! Needs root (loop devices, mount) and `mkfs.ext4`, `mount`, `umount` and `xfs_io`;
//! `scripts/test` installs xfsprogs when missing. Without them the test says why and passes
//! without checking anything.
//!
//! How well it catches a regression: with `synchronous=NORMAL`, a commit reaches the disk at the
//! next WAL checkpoint, which the store's checkpointer makes every 200 ms (a checkpoint syncs the
//! WAL). The run's last batch is committed a few milliseconds before the shutdown, so the test
//! loses it unless a checkpoint falls in between: with NORMAL it failed in every one of the runs
//! tried, but a checkpoint in that window would let it pass. With FULL it cannot fail this way.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::json;
use sqlx::{Connection, SqliteConnection};
use support::{api_key, arrange_on, months_billed_by_today, runtime, Backend, Server};

/// Customers billed by the run: each has one invoice per month since January 2024.
const CUSTOMERS: usize = 10;
/// The filesystem's size: the database of this test needs a few MiB.
const FILESYSTEM_BYTES: u64 = 128 * 1024 * 1024;
/// The filesystem's image and its mount point, in the test's temporary directory.
const IMAGE: &str = "ext4.img";
const ROOT: &str = "mnt";

/// An ext4 filesystem in a file, mounted through a loop device; unmounted when dropped.
struct LoopFilesystem {
    directory: tempfile::TempDir,
    tools: Tools,
}

impl LoopFilesystem {
    /// Makes and mounts the filesystem, or says on stderr why it cannot and returns `None`.
    fn mount() -> Option<Self> {
        if !running_as_root() {
            eprintln!("skipped: the power-cut test needs root (loop devices, mount)");
            return None;
        }
        let tools = Tools::find()?;
        let directory = tempfile::tempdir().unwrap();
        let image = directory.path().join(IMAGE);
        std::fs::File::create(&image)
            .and_then(|file| file.set_len(FILESYSTEM_BYTES))
            .unwrap();
        std::fs::create_dir(directory.path().join(ROOT)).unwrap();
        let made = Command::new(&tools.mkfs_ext4)
            .args(["-q", "-F"])
            .arg(&image)
            .output()
            .unwrap();
        if !made.status.success() {
            eprintln!("skipped: mkfs.ext4 failed: {made:?}");
            return None;
        }
        let filesystem = Self { directory, tools };
        match filesystem.mount_again() {
            Ok(()) => Some(filesystem),
            Err(why) => {
                eprintln!("skipped: cannot mount a loop device here: {why}");
                None
            }
        }
    }

    fn image(&self) -> PathBuf {
        self.directory.path().join(IMAGE)
    }

    /// The filesystem's root, where it is mounted.
    fn root(&self) -> PathBuf {
        self.directory.path().join(ROOT)
    }

    fn mount_again(&self) -> Result<(), String> {
        let output = Command::new(&self.tools.mount)
            .args(["-t", "ext4", "-o", "loop"])
            .arg(self.image())
            .arg(self.root())
            .output()
            .unwrap();
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    fn unmount(&self) {
        let output = Command::new(&self.tools.umount)
            .arg(self.root())
            .output()
            .unwrap();
        assert!(output.status.success(), "umount: {output:?}");
    }

    /// An `xfs_io` on the filesystem, waiting for the word to shut it down: started ahead, so
    /// that the shutdown follows the report by as little as possible.
    fn prepare_power_cut(&self) -> PowerSwitch {
        let child = Command::new(&self.tools.xfs_io)
            .arg("-x")
            .arg(self.root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        PowerSwitch { child: Some(child) }
    }
}

impl Drop for LoopFilesystem {
    fn drop(&mut self) {
        let _ = Command::new(&self.tools.umount).arg(self.root()).output();
    }
}

/// An `xfs_io` process reading commands from its standard input; killed when dropped unused,
/// so that the filesystem can still be unmounted after a failure.
struct PowerSwitch {
    child: Option<Child>,
}

impl PowerSwitch {
    /// Shuts the filesystem down without flushing anything (`shutdown` without `-f`: the
    /// `NOLOGFLUSH` flag), then lets `xfs_io` exit, closing its handle on the filesystem.
    fn cut(mut self) {
        let mut child = self.child.take().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"shutdown\nquit\n").unwrap();
        drop(stdin);
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "xfs_io: {output:?}");
        assert!(
            output.stderr.is_empty(),
            "xfs_io: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PowerSwitch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn running_as_root() -> bool {
    // The effective uid is the second field of `Uid:` in /proc/self/status.
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Where the programs the test runs are: on `PATH`, or in the system directories a user's
/// `PATH` may leave out.
struct Tools {
    mkfs_ext4: PathBuf,
    mount: PathBuf,
    umount: PathBuf,
    xfs_io: PathBuf,
}

impl Tools {
    /// Every tool, or `None` after saying on stderr which one is missing.
    fn find() -> Option<Self> {
        let find = |tool: &str| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let found = std::env::split_paths(&path)
                .chain(["/sbin", "/usr/sbin", "/bin", "/usr/bin"].map(PathBuf::from))
                .map(|directory| directory.join(tool))
                .find(|candidate| candidate.is_file());
            if found.is_none() {
                eprintln!("skipped: the power-cut test needs {tool} (scripts/test installs it)");
            }
            found
        };
        Some(Self {
            mkfs_ext4: find("mkfs.ext4")?,
            mount: find("mount")?,
            umount: find("umount")?,
            xfs_io: find("xfs_io")?,
        })
    }
}

/// The numbers of the finalized invoices stored in the SQLite file at `path`, in order.
fn stored_numbers(path: &Path) -> Vec<i64> {
    runtime().block_on(async {
        let url = format!("sqlite://{}", path.display());
        let mut connection = SqliteConnection::connect(&url).await.unwrap();
        let numbers: Vec<(i64,)> =
            sqlx::query_as("SELECT number FROM invoices WHERE number IS NOT NULL ORDER BY number")
                .fetch_all(&mut connection)
                .await
                .unwrap();
        connection.close().await.unwrap();
        numbers.into_iter().map(|(number,)| number).collect()
    })
}

#[test]
fn every_invoice_a_run_reports_survives_a_power_cut() {
    let Some(filesystem) = LoopFilesystem::mount() else {
        return;
    };
    let data = filesystem.root().join("billow.db");
    let backend = Backend::Sqlite(data.clone());
    let key = api_key(&backend);
    let server = Server::start(
        &backend,
        &[
            "--billing-interval-seconds",
            "0",
            "--grace-period-seconds",
            "0",
        ],
    );
    arrange_on(&server, &key, CUSTOMERS);
    let switch = filesystem.prepare_power_cut();

    let run = server.post(&key, "/api/v1/billing-runs", &json!({}));
    switch.cut();
    server.kill();
    filesystem.unmount();
    filesystem.mount_again().unwrap();

    let report = &run["report"];
    let finalized = CUSTOMERS * months_billed_by_today();
    assert_eq!(report["finalized"], finalized, "{report}");
    // The first run of a workspace numbers its invoices 1..=n; the report lists the first 100.
    let reported: Vec<i64> = serde_json::from_value(report["numbers"].clone()).unwrap();
    assert_eq!(reported, (1..=100).collect::<Vec<i64>>(), "{report}");
    let stored = stored_numbers(&data);
    assert_eq!(
        stored.len(),
        finalized,
        "invoices reported finalized but lost in the power cut: {} of {finalized}",
        finalized - stored.len().min(finalized)
    );
    let one_to_n: Vec<i64> = (1..=i64::try_from(finalized).unwrap()).collect();
    assert_eq!(stored, one_to_n);
}
