//! The mount options that go with any volume mount, `mountPropagation`
//! and `recursiveReadOnly`, in the form the container init applies them;
//! hostPath's type check is the kubelet's rule, in [`podlab_kube::hostpath`].

use serde::{Deserialize, Serialize};

pub use podlab_kube::hostpath::{prepare, Kind, TYPES};

/// `mountPropagation`, in the kernel's terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Propagation {
    /// `None` (and unset): rprivate, nothing crosses either way.
    #[default]
    Private,
    /// `HostToContainer`: rslave, the node's new mounts show inside.
    Slave,
    /// `Bidirectional`: rshared, and the container's mounts show on the node.
    Shared,
}

impl Propagation {
    pub fn of(field: Option<&str>) -> Propagation {
        match field {
            Some("HostToContainer") => Propagation::Slave,
            Some("Bidirectional") => Propagation::Shared,
            _ => Propagation::Private,
        }
    }
}

/// `recursiveReadOnly` of a readOnly mount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecursiveReadOnly {
    /// Only the volume's own mount is read-only; mounts below it keep theirs.
    #[default]
    Disabled,
    /// Every mount below is read-only too where the kernel can do it.
    IfPossible,
    /// Every mount below is read-only too, or the container does not start.
    Enabled,
}

impl RecursiveReadOnly {
    pub fn of(field: Option<&str>) -> RecursiveReadOnly {
        match field {
            Some("IfPossible") => RecursiveReadOnly::IfPossible,
            Some("Enabled") => RecursiveReadOnly::Enabled,
            _ => RecursiveReadOnly::Disabled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_and_recursive_read_only_from_the_fields() {
        assert_eq!(Propagation::of(None), Propagation::Private);
        assert_eq!(Propagation::of(Some("None")), Propagation::Private);
        assert_eq!(Propagation::of(Some("HostToContainer")), Propagation::Slave);
        assert_eq!(Propagation::of(Some("Bidirectional")), Propagation::Shared);
        assert_eq!(RecursiveReadOnly::of(None), RecursiveReadOnly::Disabled);
        assert_eq!(
            RecursiveReadOnly::of(Some("Enabled")),
            RecursiveReadOnly::Enabled
        );
        assert_eq!(
            RecursiveReadOnly::of(Some("IfPossible")),
            RecursiveReadOnly::IfPossible
        );
    }
}
