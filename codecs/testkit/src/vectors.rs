//! The golden vectors of one format, in `tests/vectors/FORMAT/` at the
//! repository root.

use std::path::{Path, PathBuf};

use crate::hex::{hex, unhex};

/// How a format's vector files hold their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Hex text, one line (`.hex` files of the binary formats).
    Hex,
    /// The frame's bytes as they are (`.json`, `.bin`).
    Raw,
}

/// The vector files of one format: `tests/vectors/FORMAT/NAME.EXT`.
///
/// [`check`](Vectors::check) compares an encoding with its file; with the
/// environment variable `UPDATE_VECTORS` set it rewrites the file first
/// (then review the diff before committing).
#[derive(Debug, Clone)]
pub struct Vectors {
    dir: PathBuf,
    ext: &'static str,
    form: Form,
}

impl Vectors {
    /// The vectors in `tests/vectors/{format}/`, files `*.{ext}` in `form`.
    pub fn new(format: &str, ext: &'static str, form: Form) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/vectors")
            .join(format);
        Vectors { dir, ext, form }
    }

    /// The folder of the vectors.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of vector `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.{}", self.ext))
    }

    /// The bytes of vector `name`.
    ///
    /// # Panics
    /// When the file is missing or unreadable (the message names it).
    pub fn read(&self, name: &str) -> Vec<u8> {
        let path = self.path(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match self.form {
            Form::Hex => unhex(&String::from_utf8_lossy(&bytes)),
            Form::Raw => bytes,
        }
    }

    /// Asserts that `encoded` is exactly vector `name` and returns the
    /// vector's bytes (`UPDATE_VECTORS` set: rewrites the file first).
    pub fn check(&self, name: &str, encoded: &[u8]) -> Vec<u8> {
        let path = self.path(name);
        if std::env::var_os("UPDATE_VECTORS").is_some() {
            let text = match self.form {
                Form::Hex => (hex(encoded) + "\n").into_bytes(),
                Form::Raw => encoded.to_vec(),
            };
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        let golden = self.read(name);
        assert_eq!(
            printable(encoded),
            printable(&golden),
            "encoding of {name} changed: the encoder's bytes differ from {}",
            path.display()
        );
        golden
    }

    /// Every vector of the format (each `*.{ext}` file), sorted by file name:
    /// valid frames to seed a mutation run with.
    pub fn all(&self) -> Vec<Vec<u8>> {
        let suffix = format!(".{}", self.ext);
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap_or_else(|e| panic!("{}: {e}", self.dir.display()))
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|file| file.strip_suffix(&suffix).map(str::to_owned))
            .collect();
        names.sort();
        assert!(!names.is_empty(), "no *{suffix} vectors in {}", self.dir.display());
        names.iter().map(|name| self.read(name)).collect()
    }
}

/// Text as text, anything else as hex: readable assertion diffs.
fn printable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => hex(bytes),
    }
}
