//! OCI layer tars: apply them into a directory, export a directory's diff as one, and
//! describe a tree path by path.
//!
//! # Contract
//!
//! - [`apply`] reads a plain, gzip (also multi-member, as pigz writes) or zstd layer tar
//!   and writes its entries into `target`. Both digests (of the bytes as read and of the
//!   uncompressed tar) are computed in the same pass, and the stream is always read to
//!   its end (tar padding after the end-of-archive blocks included) so that the digests
//!   cover all of it. An expected digest that does not match is `DigestMismatch`; the
//!   caller then throws the target away (apply writes into a directory the caller made
//!   for it, so "nothing is kept" is the caller's rename not happening).
//! - With [`ApplyOptions::sync`] (the default) what apply wrote is durable when it
//!   returns `Ok`: one `syncfs` of the target's filesystem after the digests matched,
//!   instead of an `fsync` per file.
//! - The tar is untrusted. Every filesystem write goes through core's [`Root`] opened
//!   with `Confine::InRoot`, so nothing outside `target` is created, changed or read:
//!   - a name with a `..` component is `PathEscape` (whatever it would resolve to);
//!   - an absolute name is made relative (`/etc/passwd` becomes `etc/passwd`), as GNU
//!     tar and moby do;
//!   - a symlink in a path, including one this same tar created, resolves as in a
//!     chroot at `target` (`etc -> /etc` then `etc/passwd` writes `target/etc/passwd`);
//!   - a hardlink target is a name inside the layer (or a lower); `..` in it is
//!     `PathEscape`, and it resolves confined like any other name;
//!   - overlay-private xattrs in the tar (`trusted.overlay.*`, `user.overlay.*`) are
//!     **dropped**: only the applier decides what is a whiteout or an opaque dir;
//!   - character and block devices are `PermissionDenied` unless
//!     [`ApplyOptions::allow_devices`];
//!   - [`ApplyOptions::max_uncompressed_bytes`] and [`ApplyOptions::max_entries`] stop
//!     decompression bombs with `LimitExceeded`;
//!   - malformed or truncated tars are `Corrupt`, never a panic. One shape that looks
//!     cut is complete: a stream that ends exactly where the last entry's data ends,
//!     without its padding and the end-of-archive blocks, is what Go's `archive/tar`
//!     writer leaves when it is not closed (`umoci insert` writes such layers); it is
//!     applied like a closed tar, as Go's reader takes it. A stream that ends inside an
//!     entry's data, inside a header (or a PAX/GNU extension header's data), or inside
//!     the padding stays `Corrupt`.
//! - Whiteouts follow [`WhiteoutFormat`]. With `Remove`, an opaque marker
//!   (`.wh..wh..opq`) empties its directory of what came from lower layers but keeps
//!   what this layer already put there, whatever the order inside the tar.
//! - Directory mtimes are restored at the end, after their contents were written.
//! - [`inventory`] describes a tree (type, mode, owner, size, content sha256, link
//!   target, device numbers, xattrs, hardlink groups, mtimes of non-directories); tests
//!   compare trees with it.
//! - [`export_tree_diff`] writes the diff of a full-copy child tree against its parent
//!   as a deterministic tar (entries sorted by path, PAX for long names and xattrs, no
//!   user/group names, no atime/ctime).
//!   [`export_snapshot_diff`] writes the same tar for a child that is a copy-on-write
//!   snapshot of its parent, reading only the files whose inode or change time differ.

mod apply;
mod compression;
mod export;
mod inventory;
mod path;
mod pump;
mod stream;

pub use apply::{Applied, ApplyOptions, WhiteoutFormat, apply};
pub use compression::{Compression, decompressor};
pub use export::{
    Change, ChangeKind, Exported, export_overlay_upper, export_snapshot_diff, export_tree_diff,
};
pub use inventory::{EntryInfo, EntryKind, InventoryOptions, inventory, inventory_with};

#[cfg(doc)]
use cargohold_core::Root;
