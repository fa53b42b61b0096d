//! Counting the requests a driver sends, by kind, so listing, collection and checks
//! on object storage can report what they cost.

use std::sync::atomic::{AtomicU64, Ordering};

/// Requests an [`S3`](super::S3) driver (and its clones) sent so far, by S3 operation.
/// A listing counts one request per page (S3 pages hold up to 1,000 keys); a batched
/// delete one `DeleteObjects` request per 1,000 keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// `HeadObject` (stat, and the checks that a file has no file above it).
    pub head: u64,
    /// `GetObject`, whole or ranged.
    pub get: u64,
    /// `PutObject` of a whole small file.
    pub put: u64,
    /// `ListObjectsV2` pages.
    pub list: u64,
    /// Keys the listings returned.
    pub listed_keys: u64,
    /// `CopyObject` (a rename is a copy and a delete).
    pub copy: u64,
    /// `DeleteObjects` batches and single `DeleteObject` calls.
    pub delete: u64,
    /// Keys deleted.
    pub deleted_keys: u64,
    /// Multipart requests: create, each part, complete, abort.
    pub multipart: u64,
}

impl RequestCounts {
    /// Every request, whatever its kind.
    pub fn total(&self) -> u64 {
        self.head + self.get + self.put + self.list + self.copy + self.delete + self.multipart
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Request {
    Head,
    Get,
    Put,
    Copy,
    Multipart,
}

/// The shared counters behind [`RequestCounts`].
#[derive(Debug, Default)]
pub(super) struct Requests {
    head: AtomicU64,
    get: AtomicU64,
    put: AtomicU64,
    list: AtomicU64,
    listed_keys: AtomicU64,
    copy: AtomicU64,
    delete: AtomicU64,
    deleted_keys: AtomicU64,
    multipart: AtomicU64,
}

/// S3's most keys per listing page and per `DeleteObjects` request.
pub(super) const PAGE: u64 = 1000;

impl Requests {
    pub(super) fn count(&self, r: Request) {
        let c = match r {
            Request::Head => &self.head,
            Request::Get => &self.get,
            Request::Put => &self.put,
            Request::Copy => &self.copy,
            Request::Multipart => &self.multipart,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A listing that returned `keys` keys (and common prefixes): its pages.
    pub(super) fn listed(&self, keys: u64) {
        self.list
            .fetch_add(keys.div_ceil(PAGE).max(1), Ordering::Relaxed);
        self.listed_keys.fetch_add(keys, Ordering::Relaxed);
    }

    /// A deletion of `keys` keys in batches.
    pub(super) fn deleted(&self, keys: u64) {
        self.delete
            .fetch_add(keys.div_ceil(PAGE), Ordering::Relaxed);
        self.deleted_keys.fetch_add(keys, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> RequestCounts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestCounts {
            head: g(&self.head),
            get: g(&self.get),
            put: g(&self.put),
            list: g(&self.list),
            listed_keys: g(&self.listed_keys),
            copy: g(&self.copy),
            delete: g(&self.delete),
            deleted_keys: g(&self.deleted_keys),
            multipart: g(&self.multipart),
        }
    }
}
