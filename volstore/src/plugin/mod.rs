//! The Docker volume plugin protocol, both ways: [`serve`] exposes any
//! [`Driver`](crate::Driver) as a plugin Docker Engine (or podman) can use, and [`Client`]
//! drives any plugin socket as a [`Driver`](crate::Driver).
//!
//! # Using it
//!
//! Docker Engine finds a plugin by its socket: serve at `/run/docker/plugins/NAME.sock`
//! and `docker volume create --driver NAME` reaches the served driver. Podman takes the
//! socket from `containers.conf` (`[engine.volume_plugins]`, `NAME = "/path/to.sock"`).
//! The other way, [`Client::connect`] takes the socket of any running plugin.
//!
//! # The wire
//!
//! JSON over HTTP/1.1 on a unix socket; every call is a `POST`:
//!
//! | path | request | success response |
//! |---|---|---|
//! | `/Plugin.Activate` | empty | `{"Implements": ["VolumeDriver"]}` |
//! | `/VolumeDriver.Create` | `{"Name", "Opts"}` | `{"Err": ""}` |
//! | `/VolumeDriver.Remove` | `{"Name"}` | `{"Err": ""}` |
//! | `/VolumeDriver.Mount` | `{"Name", "ID"}` | `{"Mountpoint", "Err": ""}` |
//! | `/VolumeDriver.Unmount` | `{"Name", "ID"}` | `{"Err": ""}` |
//! | `/VolumeDriver.Path` | `{"Name"}` | `{"Mountpoint", "Err": ""}` (`""` when unknown) |
//! | `/VolumeDriver.Get` | `{"Name"}` | `{"Volume": {"Name", "Mountpoint", "CreatedAt", "Status"}, "Err": ""}` |
//! | `/VolumeDriver.List` | `{}` | `{"Volumes": [{"Name", "Mountpoint"}], "Err": ""}` |
//! | `/VolumeDriver.Capabilities` | `{}` | `{"Capabilities": {"Scope": "local" \| "global"}}` |
//!
//! A volume's `Mountpoint`, `CreatedAt` and `Status` are left out when the driver does
//! not know them. Responses are `application/vnd.docker.plugins.v1.2+json` (what Docker
//! sends in `Accept`). Requests may come with no `Content-Type` (Docker sends none),
//! `application/json` or `application/vnd.docker.plugins.v1.N+json`; an empty body
//! is `{}` (Docker posts an empty body to `/Plugin.Activate`).
//!
//! # Failures
//!
//! Every failure is `{"Err": "message"}` with a status other than 200. Docker treats any
//! status but 200 as an error and takes the message from `Err` (it also fails a 200
//! whose `Err` is not empty, but podman does not: it reads a 200 as success whatever
//! `Err` says, so a failure must never be a 200):
//!
//! | status | when | kind in the message |
//! |---|---|---|
//! | 400 | malformed JSON, a missing or mistyped field, a content type that is not JSON | `invalid_argument` |
//! | 404 | an unknown path | `unsupported` |
//! | 405 | a method other than `POST` | `unsupported` |
//! | 413 | a request body over 1 MiB (read on up to 16 MiB, so the sender reads the refusal) | `limit_exceeded` |
//! | 500 | the driver failed (or panicked: `io`, and the server goes on) | the driver error's kind |
//!
//! None of the first four reaches the driver. The message starts with the error's kind
//! in brackets, as [`ErrorKind::as_str`] spells it (`[not_found] get vol: ...`), so
//! that a cargohold [`Client`] gets back the very kind the driver raised.
//!
//! The client maps a plugin's `Err` to a kind by that prefix; a plugin that is not
//! cargohold has no prefix, and the kind is inferred from the message's words, case
//! ignored ([`kind_of_message`]): `no such`, `not found`, `does not exist`, `doesn't
//! exist` → `NotFound`; `already exists` → `AlreadyExists`; `in use`, `busy` →
//! `InUse`; `permission denied` → `PermissionDenied`; `not supported`, `unsupported`
//! → `Unsupported`; `invalid` → `InvalidArgument`; anything else `Io`. An answer the
//! client cannot read (not JSON, a missing `Mountpoint`/`Volume`/`Capabilities`, a
//! relative mountpoint, another volume than the one asked for, a volume listed twice,
//! an unknown scope) is `Corrupt`; a failed status without a readable `Err`, a refused
//! or broken connection (a missing socket too), or a timeout, is `Io`.
//!
//! # Timeouts (client)
//!
//! Connecting (socket connect plus HTTP handshake) is bounded by
//! [`Timeouts::connect`] (5 s by default) and every call, from sending the request to
//! the last byte of the answer, by [`Timeouts::call`] (120 s by default: a mount of a
//! network volume can be slow). Running out is `Io`. The client never repeats a request
//! it sent (a create or mount that timed out may have happened); it retries only one
//! that never left, on a kept-alive connection the plugin had closed meanwhile.
//!
//! # The socket path (server)
//!
//! [`serve`] binds a unix socket at the path it is given, under an `flock` on the
//! directory holding it (so that two servers starting at once cannot both take it):
//! - nothing there: the socket is created;
//! - a socket nobody answers on (left by a killed server): it is replaced;
//! - a socket a server answers on: `InUse`, and that server is left alone;
//! - anything that is not a socket: `AlreadyExists`, and it is left alone.
//!
//! The socket is bound in a private staging directory (`.cargohold-bind-<pid>`, next to
//! it, removed at once), made mode 0660 and renamed into place, so only its owner and
//! group can ever connect, whatever the umask; a socket path must leave room for that
//! directory's name within the kernel's 107 bytes.
//!
//! [`Server::shutdown`] (or dropping the [`Server`]) stops accepting, lets calls in
//! flight finish (their driver calls are never cut short), closes the connections and
//! removes the socket, unless another server has replaced it since.

mod client;
#[cfg(feature = "conformance")]
mod fixture;
pub mod protocol;
mod server;

pub use client::{Client, Timeouts};
#[cfg(feature = "conformance")]
pub use fixture::plugin_fixture;
pub use server::{Server, serve};

use cargohold_core::{Error, ErrorKind};

/// The content type of responses, and of the client's requests.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// The message an error travels as: its kind in brackets, then the error.
pub fn message_of(err: &Error) -> String {
    format!("[{}] {err}", err.kind().as_str())
}

/// The kind a plugin's `Err` message means, and the message without a kind prefix.
///
/// A `[kind] ` prefix (as [`message_of`] writes it) wins; otherwise the kind is
/// inferred from the message's words as the module documentation lists.
pub fn kind_of_message(message: &str) -> (ErrorKind, &str) {
    if let Some(rest) = message.strip_prefix('[')
        && let Some((name, tail)) = rest.split_once("] ")
        && let Some(kind) = ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    {
        return (kind, tail);
    }
    let lower = message.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    let kind = if has(&["no such", "not found", "does not exist", "doesn't exist"]) {
        ErrorKind::NotFound
    } else if has(&["already exists"]) {
        ErrorKind::AlreadyExists
    } else if has(&["in use", "busy"]) {
        ErrorKind::InUse
    } else if has(&["permission denied"]) {
        ErrorKind::PermissionDenied
    } else if has(&["not supported", "unsupported"]) {
        ErrorKind::Unsupported
    } else if has(&["invalid"]) {
        ErrorKind::InvalidArgument
    } else {
        ErrorKind::Io
    };
    (kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_the_message() {
        for kind in ErrorKind::ALL {
            let err = Error::new(kind, "get", "vol", "it failed");
            let msg = message_of(&err);
            let (back, rest) = kind_of_message(&msg);
            assert_eq!(back, kind, "{msg}");
            assert_eq!(rest, err.to_string());
        }
    }

    #[test]
    fn foreign_messages_are_read_by_their_words() {
        let k = |m: &str| kind_of_message(m).0;
        assert_eq!(k("no such volume: vol"), ErrorKind::NotFound);
        assert_eq!(k("Volume Not Found"), ErrorKind::NotFound);
        assert_eq!(k("volume vol already exists"), ErrorKind::AlreadyExists);
        assert_eq!(k("volume is in use"), ErrorKind::InUse);
        assert_eq!(k("device or resource busy"), ErrorKind::InUse);
        assert_eq!(k("open /x: permission denied"), ErrorKind::PermissionDenied);
        assert_eq!(k("option not supported"), ErrorKind::Unsupported);
        assert_eq!(k("invalid option size"), ErrorKind::InvalidArgument);
        assert_eq!(k("the disk caught fire"), ErrorKind::Io);
        // A bracket that is not a kind is just text.
        assert_eq!(k("[warning] no such volume"), ErrorKind::NotFound);
        assert_eq!(k("[bogus] x"), ErrorKind::Io);
    }
}
