//! What [`LocalMessages::repair`](crate::LocalMessages::repair) reports: the types the
//! repair and the parts it calls on (such as [`deleting`](super::deleting)) fill in.

use std::path::PathBuf;

/// One file [`LocalMessages::repair`](crate::LocalMessages::repair) found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairItem {
    /// The file (or, for a whole conversation or the listing index, its directory).
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for RepairItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

/// What [`LocalMessages::repair`](crate::LocalMessages::repair) checked, found and rebuilt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// Whether it was a dry run: nothing was written.
    pub dry_run: bool,
    /// Conversations checked.
    pub conversations: u64,
    /// Derived or housekeeping files that were wrong (missing, damaged, stale, or an
    /// unfinished record after a log's last one): written again from the logs, or with
    /// [`dry_run`](Self::dry_run) what would be.
    pub rebuilt: Vec<RepairItem>,
    /// Conversations whose log (the truth: user data) is damaged. Nothing of them is
    /// changed: reads report them as `Corrupt`, as before.
    pub damaged: Vec<RepairItem>,
}

impl RepairReport {
    /// Whether nothing was found wrong.
    pub fn is_clean(&self) -> bool {
        self.rebuilt.is_empty() && self.damaged.is_empty()
    }
}
