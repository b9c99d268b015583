//! Bearer tokens for the remote control API: the tokens file (format, permission check, line-
//! numbered errors) and constant-time lookup of a presented token. Only SHA-256 digests of the
//! tokens are kept in memory after loading.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ring::digest::{SHA256, digest};
use serde::Serialize;

/// Shortest token accepted: 16 characters keeps online guessing hopeless even before the
/// per-address limiter, and a stray short word in the file is more likely a mistake than a key.
pub const MIN_TOKEN_LEN: usize = 16;

/// What a token may do. `Operate` includes everything `Read` may do.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Operate,
}

impl Role {
    /// Whether a caller holding `self` may do something that needs `needed`.
    pub fn allows(self, needed: Role) -> bool {
        matches!(
            (self, needed),
            (Role::Operate, _) | (Role::Read, Role::Read)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
        }
    }

    fn parse(word: &str) -> Option<Role> {
        match word {
            "read" => Some(Role::Read),
            "operate" => Some(Role::Operate),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tokens of one tokens file, and the HTTP Basic credentials of a supervisord
/// `[inet_http_server]`, if any.
pub struct Tokens {
    path: PathBuf,
    entries: Vec<Entry>,
    basic: Option<Basic>,
}

/// `username` / `password` (or `{SHA}` and the hex SHA-1 of the password, as supervisord
/// accepts), granting `operate`: supervisorctl over TCP.
struct Basic {
    user: [u8; 32],
    password: BasicPassword,
}

enum BasicPassword {
    Sha256([u8; 32]),
    /// supervisord's `{SHA}hex`: only the SHA-1 is known.
    Sha1([u8; 20]),
}

struct Entry {
    digest: [u8; 32],
    role: Role,
    line: usize,
}

// Hand-written so that no digest ever reaches a log through `{:?}`.
impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("path", &self.path)
            .field("count", &self.entries.len())
            .finish()
    }
}

#[derive(Debug)]
pub enum TokensError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    NotAFile {
        path: PathBuf,
    },
    /// Group or other may read (or write) the file.
    Permissions {
        path: PathBuf,
        mode: u32,
    },
    /// A line that does not parse. `problem` never contains the token itself.
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

impl fmt::Display for TokensError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokensError::Io { path, source } => {
                write!(f, "cannot read tokens file {}: {source}", path.display())
            }
            TokensError::NotAFile { path } => {
                write!(f, "tokens file {} is not a regular file", path.display())
            }
            TokensError::Permissions { path, mode } => write!(
                f,
                "tokens file {} has mode {mode:04o}, so group or others can read it; \
                 run `chmod 600 {}`",
                path.display(),
                path.display()
            ),
            TokensError::Line {
                path,
                line,
                problem,
            } => write!(f, "{}:{line}: {problem}", path.display()),
        }
    }
}

impl std::error::Error for TokensError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TokensError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Tokens {
    /// File format: one token per line `TOKEN ROLE`, blank lines and `#` comments (whole line,
    /// or after whitespace) ignored. Refused unless the file's mode has no group/other bits.
    /// No tokens at all (a listener with Basic credentials only).
    pub fn none() -> Tokens {
        Tokens {
            path: PathBuf::new(),
            entries: Vec::new(),
            basic: None,
        }
    }

    /// Also accept `Authorization: Basic` with these credentials, as `operate`.
    pub fn with_basic(mut self, user: &str, password: &str) -> Tokens {
        let sha1 = password.strip_prefix("{SHA}").and_then(|hex| {
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<_>>()?;
            <[u8; 20]>::try_from(bytes).ok()
        });
        let password = match sha1 {
            Some(sha1) => BasicPassword::Sha1(sha1),
            None => BasicPassword::Sha256(sha256(password.as_bytes())),
        };
        self.basic = Some(Basic {
            user: sha256(user.as_bytes()),
            password,
        });
        self
    }

    /// Basic credentials: the role and who, if they match (compared in constant time).
    pub fn check_basic(&self, user: &str, password: &str) -> Option<(Role, String)> {
        let basic = self.basic.as_ref()?;
        let user_ok = digests_equal(&sha256(user.as_bytes()), &basic.user);
        let password_ok = match &basic.password {
            BasicPassword::Sha256(digest) => digests_equal(&sha256(password.as_bytes()), digest),
            BasicPassword::Sha1(expected) => {
                let presented = ring::digest::digest(
                    &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                    password.as_bytes(),
                );
                let diff = presented
                    .as_ref()
                    .iter()
                    .zip(expected)
                    .fold(0u8, |acc, (x, y)| acc | (x ^ y));
                std::hint::black_box(diff) == 0
            }
        };
        (user_ok & password_ok).then(|| (Role::Operate, format!("basic user {user}")))
    }

    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let io_err = |source| TokensError::Io {
            path: path.to_owned(),
            source,
        };
        // Check the mode on the opened file rather than the path, so the file we check is the
        // file we read even if the path is swapped in between.
        let mut file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(TokensError::NotAFile {
                path: path.to_owned(),
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(TokensError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_err)?;
        Tokens::parse(path, &bytes)
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<Tokens, TokensError> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut seen: HashMap<[u8; 32], usize> = HashMap::new();
        for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = index + 1;
            let bad = |problem: String| TokensError::Line {
                path: path.to_owned(),
                line,
                problem,
            };
            let text =
                std::str::from_utf8(raw).map_err(|_| bad("line is not valid UTF-8".to_owned()))?;
            // A `#` starts a comment only at the start of a field, so tokens may contain `#`.
            let mut fields = text.split_whitespace().take_while(|f| !f.starts_with('#'));
            let Some(token) = fields.next() else {
                continue;
            };
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad(
                    "token contains characters other than printable ASCII, \
                     which cannot be sent in an Authorization header"
                        .to_owned(),
                ));
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(bad(format!(
                    "token is {} characters long; at least {MIN_TOKEN_LEN} are required",
                    token.len()
                )));
            }
            let Some(role_word) = fields.next() else {
                return Err(bad(
                    "missing role after the token (expected `read` or `operate`)".to_owned(),
                ));
            };
            let Some(role) = Role::parse(role_word) else {
                return Err(bad(format!(
                    "unknown role `{role_word}` (expected `read` or `operate`)"
                )));
            };
            if let Some(extra) = fields.next() {
                return Err(bad(format!(
                    "unexpected `{extra}` after the role (comments start with `#`)"
                )));
            }
            let digest = sha256(token.as_bytes());
            if let Some(first) = seen.insert(digest, line) {
                return Err(bad(format!("duplicate token (first at line {first})")));
            }
            entries.push(Entry { digest, role, line });
        }
        Ok(Tokens {
            path: path.to_owned(),
            entries,
            basic: None,
        })
    }

    /// Returns the token's role and an identity for the audit log, "token at FILE:LINE".
    ///
    /// Timing: both sides are hashed with SHA-256 and the fixed 32-byte digests compared with
    /// a branch-free XOR fold, against every entry with no early exit. Hashing first means the
    /// comparison takes the same time whatever the lengths of the presented and stored tokens,
    /// so neither length leaks; and learning how many leading digest bytes matched would not
    /// help an attacker, since that says nothing usable about the token (preimage resistance).
    /// Padding to a fixed-size buffer would also hide lengths but needs a maximum length and
    /// still compares secrets byte by byte; `ring` is already in the build for TLS.
    pub fn check(&self, presented: &str) -> Option<(Role, String)> {
        let presented = sha256(presented.as_bytes());
        let mut found: Option<&Entry> = None;
        for entry in &self.entries {
            // Duplicates are refused at load, so at most one entry can match; the branch on
            // the outcome tells no more than the response will.
            if digests_equal(&presented, &entry.digest) {
                found = Some(entry);
            }
        }
        found.map(|e| {
            (
                e.role,
                format!("token at {}:{}", self.path.display(), e.line),
            )
        })
    }

    /// The file the tokens came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// A file of only comments is accepted (e.g. remote access only for public `/metrics`);
    /// the caller may want to warn about it.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimizer from turning the fold back into an early-exit compare.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn basic_credentials_in_text_or_as_supervisords_sha1() {
        let plain = Tokens::none().with_basic("admin", "secret");
        assert_eq!(
            plain.check_basic("admin", "secret").map(|(role, _)| role),
            Some(Role::Operate)
        );
        assert!(plain.check_basic("admin", "Secret").is_none());
        assert!(plain.check_basic("root", "secret").is_none());
        assert!(plain.check("secret").is_none(), "not a bearer token");
        let sha =
            Tokens::none().with_basic("admin", "{SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4");
        assert!(sha.check_basic("admin", "secret").is_some());
        assert!(
            sha.check_basic("admin", "{SHA}e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4")
                .is_none()
        );
        assert!(Tokens::none().check_basic("admin", "secret").is_none());
    }
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Writes `contents` to a fresh file under the temp dir with `mode`; removed on drop.
    pub(crate) struct TempFile(pub PathBuf);

    impl TempFile {
        pub(crate) fn new(contents: &str, mode: u32) -> TempFile {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "tend-tokens-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_file(&path);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .unwrap();
            std::io::Write::write_all(&mut f, contents.as_bytes()).unwrap();
            // Set explicitly: the umask may have cleared bits that `mode` asks for.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const READ: &str = "read-token-0123456789";
    const OPERATE: &str = "operate-token-0123456789";

    #[test]
    fn comments_blank_lines_and_roles() {
        let file = TempFile::new(
            &format!(
                "# tend tokens\n\n   \n{READ} read\n  # indented comment\n\
                 {OPERATE}\toperate   # ci deploys\nwith#hash-inside-token operate\n"
            ),
            0o600,
        );
        let tokens = Tokens::load(&file.0).unwrap();
        assert_eq!(tokens.len(), 3);
        let path = file.0.display().to_string();
        assert_eq!(
            tokens.check(READ),
            Some((Role::Read, format!("token at {path}:4")))
        );
        assert_eq!(
            tokens.check(OPERATE),
            Some((Role::Operate, format!("token at {path}:6")))
        );
        assert_eq!(
            tokens.check("with#hash-inside-token").map(|c| c.0),
            Some(Role::Operate)
        );
        assert_eq!(tokens.check("nope"), None);
        assert_eq!(tokens.check(""), None);
        assert_eq!(tokens.check(&READ[..READ.len() - 1]), None);
        assert_eq!(tokens.check(&format!("{READ}x")), None);
        // Debug must not print token material.
        let debug = format!("{tokens:?}");
        assert!(debug.contains("count: 3"), "{debug}");
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let cases = [
            (format!("# c\n{READ} admin\n"), 2, "unknown role `admin`"),
            (format!("\n\n{READ}\n"), 3, "missing role"),
            (format!("{READ} # read\n"), 1, "missing role"),
            ("shorttoken read\n".to_owned(), 1, "at least 16"),
            (
                format!("{READ} read\n{OPERATE} operate\n{READ} operate\n"),
                3,
                "duplicate token (first at line 1)",
            ),
            (format!("{READ} read extra\n"), 1, "unexpected `extra`"),
            (
                "tökentökentökentöken read\n".to_owned(),
                1,
                "printable ASCII",
            ),
        ];
        for (contents, line, needle) in cases {
            let file = TempFile::new(&contents, 0o600);
            let err = Tokens::load(&file.0).unwrap_err().to_string();
            let prefix = format!("{}:{line}: ", file.0.display());
            assert!(err.starts_with(&prefix), "{err:?} should start {prefix:?}");
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
            // The offending token must never be echoed into an error message.
            assert!(!err.contains(READ), "{err}");
        }
    }

    #[test]
    fn group_or_other_bits_are_refused() {
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
            let file = TempFile::new(&format!("{READ} read\n"), mode);
            let err = Tokens::load(&file.0).unwrap_err();
            assert!(matches!(err, TokensError::Permissions { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(
                msg.contains(&format!("chmod 600 {}", file.0.display())),
                "{msg}"
            );
        }
        for mode in [0o600, 0o400] {
            let file = TempFile::new(&format!("{READ} read\n"), mode);
            assert_eq!(Tokens::load(&file.0).unwrap().len(), 1);
        }
    }

    #[test]
    fn missing_file_names_it() {
        let err = Tokens::load(Path::new("/nonexistent/tend/tokens"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/tend/tokens"), "{err}");
    }

    #[test]
    fn roles_order_and_serialize() {
        assert!(Role::Operate.allows(Role::Read));
        assert!(Role::Operate.allows(Role::Operate));
        assert!(Role::Read.allows(Role::Read));
        assert!(!Role::Read.allows(Role::Operate));
        assert_eq!(serde_json::to_string(&Role::Read).unwrap(), r#""read""#);
        assert_eq!(
            serde_json::to_string(&Role::Operate).unwrap(),
            r#""operate""#
        );
        assert_eq!(Role::Operate.to_string(), "operate");
    }
}
