//! Sorted runs on local disk (Arrow IPC stream files), so that a full rebuild of a table
//! larger than memory holds only a memory budget of rows at a time.
//!
//! Each invocation gets its own directory under the configured temp dir, removed when the
//! invocation ends. A process that was killed (a Lambda timeout) cannot clean up, and
//! Lambda keeps `/tmp` between invocations, so directories of processes that no longer run
//! are removed when the next one starts.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::ipc::reader::StreamReader;
use deltalake::arrow::ipc::writer::StreamWriter;
use futures::stream;

use super::dedup::SortedBuffer;
use super::error::{SnapshotError, SnapshotResult};
use super::reader::BatchStream;

/// Name prefix of spill directories: `<prefix><pid>-<random>`.
const DIR_PREFIX: &str = "cdf-s3-replicator-snapshot-";

/// Rows per batch in spill files and in merges.
pub(crate) const SPILL_BATCH_ROWS: usize = 8192;

/// A directory for this invocation's spill files; removed on drop.
#[derive(Debug)]
pub(crate) struct SpillDir {
    path: PathBuf,
    next: u64,
}

impl SpillDir {
    /// Creates `<temp_dir>/cdf-s3-replicator-snapshot-<pid>-<random>`, after removing the
    /// directories of processes that no longer run.
    pub(crate) fn create(temp_dir: &Path) -> SnapshotResult<Self> {
        remove_stale(temp_dir);
        let path = temp_dir.join(format!(
            "{DIR_PREFIX}{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&path).map_err(|source| SnapshotError::Spill {
            path: path.display().to_string(),
            context: "creating the spill directory (extractor.snapshot.temp-dir)",
            source,
        })?;
        Ok(Self { path, next: 0 })
    }

    fn next_path(&mut self) -> PathBuf {
        self.next += 1;
        self.path.join(format!("run-{:06}.arrows", self.next))
    }

    /// Writes a sorted buffer as a run file (on a blocking thread: gathering and writing a
    /// memory budget of rows takes a while), gathered on up to `threads` threads.
    pub(crate) async fn write_sorted(
        &mut self,
        sorted: SortedBuffer,
        threads: usize,
    ) -> SnapshotResult<SpillFile> {
        let path = self.next_path();
        tokio::task::spawn_blocking(move || {
            let schema = sorted.schema().clone();
            let mut writer = RunWriter::create(path, &schema)?;
            for batch in sorted.gather(SPILL_BATCH_ROWS, threads)? {
                writer.write(&batch)?;
            }
            writer.finish()
        })
        .await
        .map_err(|e| SnapshotError::Spill {
            path: self.path.display().to_string(),
            context: "writing a sorted run",
            source: std::io::Error::other(e.to_string()),
        })?
    }

    /// A writer for a run produced by merging other runs.
    pub(crate) fn run_writer(&mut self, schema: &SchemaRef) -> SnapshotResult<RunWriter> {
        RunWriter::create(self.next_path(), schema)
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), %error, "could not remove the snapshot spill directory");
        }
    }
}

/// Removes spill directories whose process is gone. Only where process ids can be checked
/// (`/proc`); elsewhere they are left alone.
fn remove_stale(temp_dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(temp_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if !alive {
            let path = entry.path();
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {
                    tracing::info!(dir = %path.display(), "removed the spill directory of an interrupted snapshot")
                }
                Err(error) => {
                    tracing::warn!(dir = %path.display(), %error, "could not remove a stale spill directory")
                }
            }
        }
    }
}

/// A finished run file; deleted on drop.
#[derive(Debug)]
pub(crate) struct SpillFile {
    path: PathBuf,
    rows: u64,
}

impl SpillFile {
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// The run's batches, read one at a time. The file is deleted when the stream is dropped.
    pub(crate) fn into_stream(self) -> SnapshotResult<BatchStream<'static>> {
        let display = self.path.display().to_string();
        let file = File::open(&self.path).map_err(|source| SnapshotError::Spill {
            path: display.clone(),
            context: "opening",
            source,
        })?;
        let reader = StreamReader::try_new(BufReader::with_capacity(1 << 20, file), None).map_err(
            |source| SnapshotError::SpillFormat {
                path: display.clone(),
                context: "reading the header",
                source,
            },
        )?;
        // Local reads of one batch take microseconds; they run inline.
        Ok(Box::pin(stream::iter(RunBatches {
            reader,
            path: display,
            _file: self,
        })))
    }
}

/// The batches of a run file, which lives (and is deleted) with the iterator.
struct RunBatches {
    reader: StreamReader<BufReader<File>>,
    path: String,
    _file: SpillFile,
}

impl Iterator for RunBatches {
    type Item = SnapshotResult<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.reader.next().map(|batch| {
            batch.map_err(|source| SnapshotError::SpillFormat {
                path: self.path.clone(),
                context: "reading a batch",
                source,
            })
        })
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes one run file.
pub(crate) struct RunWriter {
    path: PathBuf,
    writer: StreamWriter<BufWriter<File>>,
    rows: u64,
}

impl RunWriter {
    fn create(path: PathBuf, schema: &SchemaRef) -> SnapshotResult<Self> {
        let display = path.display().to_string();
        let file = File::create(&path).map_err(|source| SnapshotError::Spill {
            path: display.clone(),
            context: "creating",
            source,
        })?;
        let writer = StreamWriter::try_new(BufWriter::with_capacity(1 << 20, file), schema)
            .map_err(|source| SnapshotError::SpillFormat {
                path: display,
                context: "writing the header",
                source,
            })?;
        Ok(Self {
            path,
            writer,
            rows: 0,
        })
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> SnapshotResult<()> {
        self.rows += batch.num_rows() as u64;
        self.writer
            .write(batch)
            .map_err(|source| SnapshotError::SpillFormat {
                path: self.path.display().to_string(),
                context: "writing a batch (is the temp dir full?)",
                source,
            })
    }

    pub(crate) fn finish(mut self) -> SnapshotResult<SpillFile> {
        self.writer
            .finish()
            .map_err(|source| SnapshotError::SpillFormat {
                path: self.path.display().to_string(),
                context: "finishing (is the temp dir full?)",
                source,
            })?;
        Ok(SpillFile {
            path: self.path,
            rows: self.rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::dedup::SortBuffer;
    use crate::snapshot::keys::KeyColumns;
    use futures::TryStreamExt;

    #[tokio::test]
    async fn runs_round_trip_and_are_removed() {
        let temp = tempfile::tempdir().unwrap();
        let schema = crate::snapshot::dedup::tests::schema();
        let keys = KeyColumns::of(&schema, "t").unwrap();
        let mut buffer = SortBuffer::new(schema.clone(), keys);
        buffer.push(crate::snapshot::dedup::tests::batch(&[
            ("b", None, 1),
            ("a", None, 2),
        ]));
        let mut dir = SpillDir::create(temp.path()).unwrap();
        let file = dir
            .write_sorted(buffer.finish(1).unwrap(), 2)
            .await
            .unwrap();
        assert_eq!(file.rows(), 2);
        let path = file.path.clone();
        let batches: Vec<RecordBatch> = file.into_stream().unwrap().try_collect().await.unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        assert!(!path.exists(), "read runs are deleted");
        let dir_path = dir.path.clone();
        drop(dir);
        assert!(!dir_path.exists());
    }

    #[test]
    fn directories_of_dead_processes_are_removed() {
        let temp = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22 on Linux, so this pid cannot run.
        let stale = temp.path().join(format!("{DIR_PREFIX}4294967-0000"));
        std::fs::create_dir_all(&stale).unwrap();
        let ours = SpillDir::create(temp.path()).unwrap();
        assert!(!stale.exists());
        assert!(ours.path.exists());
    }
}
