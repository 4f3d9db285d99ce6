//! The `file://` object store: each object is one file at `root/key`, written in place.
//! No staging file: a file half-written by a crash sits under its own key, which the database
//! never made visible and the sweep deletes by key like any orphan.

use super::{validate_key, ObjectBackend, ObjectError, ObjectWriter};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Size of the pieces a read hands out.
const READ_PIECE: usize = 256 * 1024;
/// Objects are readable by the vault's user only, like its keys and database.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;
/// Tries at creating a file whose fresh directory a concurrent delete removed while empty.
const CREATE_TRIES: usize = 3;

pub struct FileBackend {
    root: PathBuf,
}

impl FileBackend {
    /// A store under `root` (absolute). Nothing is touched until it is used: `ping` and
    /// `create` make the root (mode 0700) when it is missing.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, key: &str) -> Result<PathBuf, ObjectError> {
        validate_key(key)?;
        // A valid key is relative segments without `.` or `..`: the join stays under root.
        Ok(self.root.join(key))
    }

    /// Removes the file at `path` (already gone is fine) and the directories it leaves empty.
    async fn remove(&self, path: &Path) -> Result<(), ObjectError> {
        match tokio::fs::remove_file(path).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        self.remove_empty_parents(path).await;
        Ok(())
    }

    /// Removes the directories between `path` and the root that `path`'s removal left empty.
    /// Best effort: a directory that is not empty, or that a concurrent writer is filling, stays.
    async fn remove_empty_parents(&self, path: &Path) {
        let mut dir = path.parent();
        while let Some(current) = dir {
            if current == self.root || !current.starts_with(&self.root) {
                break;
            }
            match tokio::fs::remove_dir(current).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(_) => break,
            }
            dir = current.parent();
        }
    }
}

async fn make_dirs(dir: &Path) -> std::io::Result<()> {
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .await
}

#[async_trait::async_trait]
impl ObjectBackend for FileBackend {
    async fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>, ObjectError> {
        let path = self.path(key)?;
        let parent = path.parent().unwrap_or(&self.root).to_owned();
        let mut tries = 0;
        let file = loop {
            tries += 1;
            make_dirs(&parent).await?;
            let opened = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&path)
                .await;
            match opened {
                Ok(file) => break file,
                // A delete of this directory's last object removed it between the two steps.
                Err(e) if e.kind() == ErrorKind::NotFound && tries < CREATE_TRIES => continue,
                Err(e) => return Err(e.into()),
            }
        };
        Ok(Box::new(FileWriter {
            file,
            path,
            root: self.root.clone(),
            failed: false,
        }))
    }

    async fn read(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, ObjectError>>, ObjectError> {
        let path = self.path(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(ObjectError::NotFound),
            Err(e) => return Err(e.into()),
        };
        // A key that names a directory of other objects is no object.
        if !file.metadata().await?.is_file() {
            return Err(ObjectError::NotFound);
        }
        Ok(stream::try_unfold(file, |mut file| async move {
            let mut piece = BytesMut::with_capacity(READ_PIECE);
            // Fill the piece, so a reader gets few large pieces rather than many small ones.
            while piece.len() < READ_PIECE {
                if file.read_buf(&mut piece).await? == 0 {
                    break;
                }
            }
            Ok(if piece.is_empty() {
                None
            } else {
                Some((piece.freeze(), file))
            })
        })
        .boxed())
    }

    async fn delete(&self, key: &str, _upload_id: Option<&str>) -> Result<(), ObjectError> {
        self.remove(&self.path(key)?).await
    }

    async fn ping(&self) -> Result<(), ObjectError> {
        make_dirs(&self.root).await?;
        let root = self.root.clone();
        // access(2) asks the kernel, so a read-only mount or a foreign owner shows here.
        tokio::task::spawn_blocking(move || {
            rustix::fs::access(
                &root,
                rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
            )
        })
        .await
        .map_err(|e| ObjectError::Unavailable(format!("checking the object root: {e}")))?
        .map_err(|e| {
            ObjectError::Unavailable(format!("the object root is not a writable directory: {e}"))
        })
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn list(&self) -> BoxStream<'static, Result<String, ObjectError>> {
        let walk = Walk {
            top: Some(self.root.join(super::LAYOUT)),
            blobs: None,
            current: None,
        };
        stream::try_unfold(walk, Walk::next).boxed()
    }
}

/// A walk of `v1/<blob id>/<file>`, one directory open at a time.
struct Walk {
    /// The layout's directory, until it has been opened.
    top: Option<PathBuf>,
    blobs: Option<tokio::fs::ReadDir>,
    /// The blob directory being read, and its name.
    current: Option<(String, tokio::fs::ReadDir)>,
}

impl Walk {
    async fn next(mut self) -> Result<Option<(String, Self)>, ObjectError> {
        loop {
            if let Some((blob, files)) = self.current.as_mut() {
                match files.next_entry().await? {
                    Some(entry) => {
                        let name = entry.file_name();
                        if entry.file_type().await?.is_file() {
                            if let Some(name) = name.to_str() {
                                let key = format!("{}/{blob}/{name}", super::LAYOUT);
                                return Ok(Some((key, self)));
                            }
                        }
                        continue;
                    }
                    None => self.current = None,
                }
            }
            if let Some(top) = self.top.take() {
                match tokio::fs::read_dir(&top).await {
                    Ok(blobs) => self.blobs = Some(blobs),
                    // Nothing was ever stored.
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
            let Some(blobs) = self.blobs.as_mut() else {
                return Ok(None);
            };
            match blobs.next_entry().await? {
                Some(entry) => {
                    if entry.file_type().await?.is_dir() {
                        if let Some(name) = entry.file_name().to_str() {
                            let files = tokio::fs::read_dir(entry.path()).await?;
                            self.current = Some((name.to_owned(), files));
                        }
                    }
                }
                None => return Ok(None),
            }
        }
    }
}

struct FileWriter {
    file: tokio::fs::File,
    path: PathBuf,
    root: PathBuf,
    /// A write failed part-way: finishing would store an object with a gap.
    failed: bool,
}

#[async_trait::async_trait]
impl ObjectWriter for FileWriter {
    fn upload_id(&self) -> Option<String> {
        None
    }

    async fn write(&mut self, bytes: Bytes) -> Result<(), ObjectError> {
        super::usable(self.failed)?;
        self.failed = true;
        self.file.write_all(&bytes).await?;
        self.failed = false;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<(), ObjectError> {
        super::usable(self.failed)?;
        // tokio's File may still hold the last write in flight: flush hands it to the kernel.
        self.file.flush().await?;
        self.file.sync_all().await?;
        // The file's name, and the names of directories `create` may have just made, are only
        // durable once each directory up to the root is synced too.
        let mut dir = self.path.parent();
        while let Some(current) = dir {
            tokio::fs::File::open(current).await?.sync_all().await?;
            if current == self.root || !current.starts_with(&self.root) {
                break;
            }
            dir = current.parent();
        }
        Ok(())
    }

    async fn abort(self: Box<Self>) -> Result<(), ObjectError> {
        let Self {
            file, path, root, ..
        } = *self;
        drop(file);
        FileBackend { root }.remove(&path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn backend() -> (tempfile::TempDir, FileBackend) {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path().join("objects"));
        (dir, backend)
    }

    async fn read_all(backend: &FileBackend, key: &str) -> Result<Vec<u8>, ObjectError> {
        let mut stream = backend.read(key).await?;
        let mut out = Vec::new();
        while let Some(piece) = stream.next().await {
            let piece = piece?;
            assert!(piece.len() <= READ_PIECE);
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }

    /// Creates an empty object at `key`.
    async fn touch(backend: &FileBackend, key: &str) {
        backend.create(key).await.unwrap().finish().await.unwrap();
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn an_object_round_trips_in_pieces() {
        let (_dir, backend) = backend();
        let data: Vec<u8> = (0..READ_PIECE * 3 + 17)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let mut writer = backend.create("v1/blob-1/r1").await.unwrap();
        assert_eq!(writer.upload_id(), None);
        for chunk in data.chunks(100_000) {
            writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        writer.finish().await.unwrap();
        assert_eq!(read_all(&backend, "v1/blob-1/r1").await.unwrap(), data);
    }

    #[tokio::test]
    async fn empty_objects_exist_and_read_as_nothing() {
        let (_dir, backend) = backend();
        touch(&backend, "v1/empty").await;
        assert_eq!(
            read_all(&backend, "v1/empty").await.unwrap(),
            Vec::<u8>::new()
        );
    }

    #[tokio::test]
    async fn files_and_directories_are_private() {
        let (_dir, backend) = backend();
        let mut writer = backend.create("v1/blob-2/r1").await.unwrap();
        writer.write(Bytes::from_static(b"x")).await.unwrap();
        writer.finish().await.unwrap();
        assert_eq!(mode(&backend.root.join("v1/blob-2/r1")), FILE_MODE);
        assert_eq!(mode(&backend.root.join("v1/blob-2")), DIR_MODE);
        assert_eq!(mode(&backend.root.join("v1")), DIR_MODE);
    }

    #[tokio::test]
    async fn bad_keys_are_refused_before_touching_the_disk() {
        let (dir, backend) = backend();
        for key in ["../escape", "v1/../../escape", "/tmp/escape", "v1//x", ""] {
            assert!(matches!(
                backend.create(key).await.err(),
                Some(ObjectError::InvalidKey(_))
            ));
            assert!(matches!(
                backend.read(key).await.err(),
                Some(ObjectError::InvalidKey(_))
            ));
            assert!(matches!(
                backend.delete(key, None).await,
                Err(ObjectError::InvalidKey(_))
            ));
        }
        assert!(!dir.path().join("escape").exists());
        assert!(!backend.root.exists());
    }

    #[tokio::test]
    async fn an_existing_key_is_not_overwritten() {
        let (_dir, backend) = backend();
        touch(&backend, "v1/once").await;
        match backend.create("v1/once").await {
            Err(ObjectError::Io(e)) => assert_eq!(e.kind(), ErrorKind::AlreadyExists),
            other => panic!("expected AlreadyExists, got {:?}", other.err()),
        }
    }

    #[tokio::test]
    async fn missing_objects_are_not_found_and_deleting_them_is_fine() {
        let (_dir, backend) = backend();
        assert!(matches!(
            backend.read("v1/none").await.err(),
            Some(ObjectError::NotFound)
        ));
        backend.delete("v1/none", None).await.unwrap();
        backend.delete("v1/none", Some("ignored")).await.unwrap();
        // A key naming a directory of objects is not an object.
        touch(&backend, "v1/dir/x").await;
        assert!(matches!(
            backend.read("v1/dir").await.err(),
            Some(ObjectError::NotFound)
        ));
    }

    #[tokio::test]
    async fn delete_removes_the_object_and_its_emptied_directories() {
        let (_dir, backend) = backend();
        for key in ["v1/a/r1", "v1/a/r2", "v1/b/r1"] {
            touch(&backend, key).await;
        }
        backend.delete("v1/a/r1", None).await.unwrap();
        assert!(matches!(
            backend.read("v1/a/r1").await.err(),
            Some(ObjectError::NotFound)
        ));
        assert!(backend.root.join("v1/a").is_dir(), "r2 still lives there");
        backend.delete("v1/a/r2", None).await.unwrap();
        assert!(!backend.root.join("v1/a").exists());
        assert!(backend.root.join("v1/b/r1").is_file());
        backend.delete("v1/b/r1", None).await.unwrap();
        assert!(!backend.root.join("v1").exists());
        assert!(backend.root.is_dir(), "the root itself stays");
    }

    #[tokio::test]
    async fn abort_removes_what_was_written() {
        let (_dir, backend) = backend();
        let mut writer = backend.create("v1/c/r1").await.unwrap();
        writer.write(Bytes::from(vec![7u8; 1000])).await.unwrap();
        writer.abort().await.unwrap();
        assert!(matches!(
            backend.read("v1/c/r1").await.err(),
            Some(ObjectError::NotFound)
        ));
        assert!(!backend.root.join("v1").exists());
    }

    #[tokio::test]
    async fn a_writer_whose_write_failed_cannot_finish() {
        let (_dir, backend) = backend();
        touch(&backend, "v1/w/r1").await;
        let path = backend.root.join("v1/w/r1");
        // A read-only handle makes the write fail as a full disk would.
        let mut writer = Box::new(FileWriter {
            file: tokio::fs::File::open(&path).await.unwrap(),
            path,
            root: backend.root.clone(),
            failed: false,
        });
        // tokio's File reports a failed write at the next call on it, not always at once.
        let first = writer.write(Bytes::from_static(b"lost")).await;
        if first.is_ok() {
            assert!(matches!(
                writer.write(Bytes::from_static(b"lost")).await,
                Err(ObjectError::Io(_))
            ));
        }
        assert!(matches!(
            writer.write(Bytes::from_static(b"more")).await,
            Err(ObjectError::Unavailable(_))
        ));
        assert!(matches!(
            writer.finish().await,
            Err(ObjectError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn ping_makes_a_private_root() {
        let (_dir, backend) = backend();
        backend.ping().await.unwrap();
        assert!(backend.root.is_dir());
        assert_eq!(mode(&backend.root), DIR_MODE);
    }

    #[tokio::test]
    async fn ping_refuses_a_root_that_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("objects");
        std::fs::write(&root, b"not a directory").unwrap();
        assert!(FileBackend::new(root).ping().await.is_err());
    }

    #[test]
    fn describe_names_the_root() {
        assert_eq!(
            FileBackend::new("/srv/vault/objects".into()).describe(),
            "file:///srv/vault/objects"
        );
    }
}
