//! What the indexer may read: files inside a registered root, not matching
//! an exclusion. Exclusions are checked before a file is opened; the root
//! is checked after, on the path the kernel actually opened, so a symlink
//! or `..` that leads elsewhere is refused without a byte being read.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

/// Patterns never indexed unless the owner removes them: keys and secrets,
/// password stores, browser profiles, version-control internals. Each
/// matches any one component of a path below a root (`*` and `?` globs).
pub const DEFAULT_EXCLUSIONS: &[&str] = &[
    ".ssh",
    ".gnupg",
    "*.key",
    "*.pem",
    "*.p12",
    "*.pfx",
    ".env",
    ".env.*",
    "id_*",
    ".password-store",
    "*.kdbx",
    ".netrc",
    ".mozilla",
    "google-chrome",
    "chromium",
    "BraveSoftware",
    ".git",
    ".hg",
    ".svn",
];

/// Why a file was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("{path} matches the exclusion `{pattern}`")]
    Excluded { path: PathBuf, pattern: String },
    #[error("{path} leads to {real}, outside the root {root}")]
    OutsideRoot {
        path: PathBuf,
        real: PathBuf,
        root: PathBuf,
    },
    #[error("{path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
}

/// The exclusion patterns in force.
#[derive(Debug, Clone)]
pub struct Exclusions {
    patterns: Vec<String>,
}

impl Exclusions {
    /// The defaults plus the owner's own patterns.
    pub fn new(extra: &[String]) -> Self {
        let mut patterns: Vec<String> = DEFAULT_EXCLUSIONS.iter().map(|s| s.to_string()).collect();
        patterns.extend(extra.iter().cloned());
        Self { patterns }
    }

    /// The first pattern matching a component of `rel` (a path relative to
    /// its root).
    pub fn matching(&self, rel: &Path) -> Option<&str> {
        rel.components().find_map(|c| match c {
            Component::Normal(name) => {
                let name = name.to_string_lossy();
                self.patterns
                    .iter()
                    .find(|p| glob_match(p, &name))
                    .map(String::as_str)
            }
            _ => None,
        })
    }
}

/// `*` matches any run of characters, `?` one character; nothing else is
/// special.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Opens `path` for reading if it lies inside `root` (canonical) and
/// matches no exclusion, checking the path the kernel resolved.
pub fn open_within(
    root: &Path,
    path: &Path,
    exclusions: &Exclusions,
) -> Result<(File, PathBuf), Refusal> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    if let Some(p) = exclusions.matching(rel) {
        return Err(Refusal::Excluded {
            path: path.to_path_buf(),
            pattern: p.to_string(),
        });
    }
    let unreadable = |e: std::io::Error| Refusal::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = File::open(path).map_err(unreadable)?;
    let real = real_path(&file, path).map_err(unreadable)?;
    if !real.starts_with(root) {
        return Err(Refusal::OutsideRoot {
            path: path.to_path_buf(),
            real,
            root: root.to_path_buf(),
        });
    }
    // A link inside the root may still point at an excluded file.
    if let Ok(real_rel) = real.strip_prefix(root)
        && let Some(p) = exclusions.matching(real_rel)
    {
        return Err(Refusal::Excluded {
            path: path.to_path_buf(),
            pattern: p.to_string(),
        });
    }
    Ok((file, real))
}

/// The path of an open file as the kernel knows it.
fn real_path(file: &File, path: &Path) -> std::io::Result<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let _ = path;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        std::fs::canonicalize(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn globs() {
        assert!(glob_match("*.pem", "server.pem"));
        assert!(glob_match("id_*", "id_rsa"));
        assert!(glob_match(".env.*", ".env.local"));
        assert!(!glob_match(".env", ".envrc"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("*.key", "keyboard.txt"));
    }

    #[test]
    fn refuses_links_and_dots_outside_the_root_and_excluded_files() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let root = base.join("root");
        std::fs::create_dir_all(root.join(".ssh")).unwrap();
        std::fs::write(base.join("outside.txt"), "outside secret").unwrap();
        std::fs::write(root.join("notes.md"), "fine").unwrap();
        std::fs::write(root.join(".ssh/id_rsa"), "PRIVATE KEY").unwrap();
        std::fs::write(root.join(".env"), "TOKEN=1").unwrap();
        std::os::unix::fs::symlink(base.join("outside.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(root.join(".ssh/id_rsa"), root.join("innocent.txt")).unwrap();
        let ex = Exclusions::new(&[]);

        let (mut f, real) = open_within(&root, &root.join("notes.md"), &ex).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!((s.as_str(), real), ("fine", root.join("notes.md")));

        assert!(matches!(
            open_within(&root, &root.join("link.txt"), &ex),
            Err(Refusal::OutsideRoot { .. })
        ));
        assert!(matches!(
            open_within(&root, &root.join("../outside.txt"), &ex),
            Err(Refusal::OutsideRoot { .. })
        ));
        assert!(matches!(
            open_within(&root, &root.join(".ssh/id_rsa"), &ex),
            Err(Refusal::Excluded { .. })
        ));
        assert!(matches!(
            open_within(&root, &root.join(".env"), &ex),
            Err(Refusal::Excluded { .. })
        ));
        assert!(matches!(
            open_within(&root, &root.join("innocent.txt"), &ex),
            Err(Refusal::Excluded { .. })
        ));
        let custom = Exclusions::new(&["notes.*".to_string()]);
        assert!(matches!(
            open_within(&root, &root.join("notes.md"), &custom),
            Err(Refusal::Excluded { .. })
        ));
    }

    /// Property: whatever path is asked for (`..`, `.`, links to links,
    /// absolute and relative links, siblings whose names start like the
    /// root's), what opens is inside the root and never a file outside.
    #[test]
    fn nothing_outside_the_root_opens_whatever_the_path() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(7);
        let ex = Exclusions::new(&[]);
        let mut opened = 0;
        for round in 0..60 {
            let dir = tempfile::tempdir().unwrap();
            let base = std::fs::canonicalize(dir.path()).unwrap();
            let root = base.join("root");
            let dirs = ["", "a", "a/b", "c"];
            for d in dirs {
                std::fs::create_dir_all(root.join(d)).unwrap();
            }
            for sib in ["rootx", "root-evil", "outside"] {
                std::fs::create_dir_all(base.join(sib)).unwrap();
                std::fs::write(base.join(sib).join("f.txt"), "OUTSIDE").unwrap();
            }
            for d in dirs {
                std::fs::write(root.join(d).join("f.txt"), "inside").unwrap();
            }
            // Targets for links: inside and outside, absolute and relative.
            let targets: Vec<PathBuf> = vec![
                root.join("a/f.txt"),
                root.join("a"),
                base.join("outside/f.txt"),
                base.join("rootx/f.txt"),
                base.join("root-evil"),
                PathBuf::from("../f.txt"),
                PathBuf::from("../../outside/f.txt"),
                PathBuf::from("../../root-evil/f.txt"),
                PathBuf::from("b/f.txt"),
                PathBuf::from("l0"),
                PathBuf::from("/etc/hostname"),
            ];
            let mut names = vec!["f.txt".to_string(), "a".into(), "b".into(), "c".into()];
            for i in 0..6 {
                let at = root
                    .join(dirs[rng.random_range(0..dirs.len())])
                    .join(format!("l{i}"));
                let t = &targets[rng.random_range(0..targets.len())];
                let _ = std::os::unix::fs::symlink(t, &at);
                names.push(format!("l{i}"));
            }
            names.extend(["..".into(), ".".into(), "rootx".into(), "outside".into()]);
            for _ in 0..80 {
                let mut p = root.clone();
                for _ in 0..rng.random_range(1..6) {
                    p.push(&names[rng.random_range(0..names.len())]);
                }
                if let Ok((mut f, real)) = open_within(&root, &p, &ex) {
                    let mut s = String::new();
                    let _ = f.read_to_string(&mut s);
                    assert!(
                        real.starts_with(&root),
                        "round {round}: {p:?} opened {real:?}"
                    );
                    assert_ne!(s, "OUTSIDE", "round {round}: {p:?} read a file outside");
                    opened += 1;
                }
            }
        }
        assert!(opened > 100, "the property was exercised ({opened} opens)");
    }
}
