//! The JSON shapes of the volume plugin protocol, field names as Docker spells them.
//!
//! Requests ignore fields they do not know (the protocol's schema is open) and refuse
//! missing required ones; responses carry `Err` (empty on success) on every
//! `/VolumeDriver.*` endpoint, as the documented examples do.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Capabilities, Options, Scope, Volume};

/// The handshake path.
pub const ACTIVATE: &str = "/Plugin.Activate";

/// What a plugin implements, as `/Plugin.Activate` names it.
pub const VOLUME_DRIVER: &str = "VolumeDriver";

/// One `/VolumeDriver.*` endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/VolumeDriver.Create {"Name", "Opts"}`.
    Create,
    /// `/VolumeDriver.Remove {"Name"}`.
    Remove,
    /// `/VolumeDriver.Mount {"Name", "ID"}` → `{"Mountpoint"}`.
    Mount,
    /// `/VolumeDriver.Unmount {"Name", "ID"}`.
    Unmount,
    /// `/VolumeDriver.Path {"Name"}` → `{"Mountpoint"}`.
    Path,
    /// `/VolumeDriver.Get {"Name"}` → `{"Volume"}`.
    Get,
    /// `/VolumeDriver.List {}` → `{"Volumes"}`.
    List,
    /// `/VolumeDriver.Capabilities {}` → `{"Capabilities"}`.
    Capabilities,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 8] = [
        Endpoint::Create,
        Endpoint::Remove,
        Endpoint::Mount,
        Endpoint::Unmount,
        Endpoint::Path,
        Endpoint::Get,
        Endpoint::List,
        Endpoint::Capabilities,
    ];

    /// The request path (`/VolumeDriver.Create`, ...).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Create => "/VolumeDriver.Create",
            Endpoint::Remove => "/VolumeDriver.Remove",
            Endpoint::Mount => "/VolumeDriver.Mount",
            Endpoint::Unmount => "/VolumeDriver.Unmount",
            Endpoint::Path => "/VolumeDriver.Path",
            Endpoint::Get => "/VolumeDriver.Get",
            Endpoint::List => "/VolumeDriver.List",
            Endpoint::Capabilities => "/VolumeDriver.Capabilities",
        }
    }

    /// The endpoint at `path`, if any.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.path() == path)
    }

    /// The operation name errors carry (`plugin create`, ...).
    pub(crate) fn op(self) -> &'static str {
        match self {
            Endpoint::Create => "plugin create",
            Endpoint::Remove => "plugin remove",
            Endpoint::Mount => "plugin mount",
            Endpoint::Unmount => "plugin unmount",
            Endpoint::Path => "plugin path",
            Endpoint::Get => "plugin get",
            Endpoint::List => "plugin list",
            Endpoint::Capabilities => "plugin capabilities",
        }
    }
}

/// `/Plugin.Activate` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivateResponse {
    /// The plugin kinds implemented (`VolumeDriver`, `NetworkDriver`, ...).
    #[serde(rename = "Implements")]
    pub implements: Vec<String>,
}

/// Request with a name only (`Remove`, `Path`, `Get`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRequest {
    /// The volume.
    #[serde(rename = "Name")]
    pub name: String,
}

/// `/VolumeDriver.Create` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The volume.
    #[serde(rename = "Name")]
    pub name: String,
    /// Driver options (`null` or absent is none).
    #[serde(rename = "Opts", default, deserialize_with = "null_as_empty")]
    pub opts: Options,
}

/// `/VolumeDriver.Mount` and `/VolumeDriver.Unmount` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRequest {
    /// The volume.
    #[serde(rename = "Name")]
    pub name: String,
    /// The caller's mount id (Docker: the container's id).
    #[serde(rename = "ID")]
    pub id: String,
}

/// A response that is only an error slot (`Create`, `Remove`, `Unmount`, and every
/// failure).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrResponse {
    /// Empty on success, the message otherwise.
    #[serde(rename = "Err", default, deserialize_with = "null_as_empty")]
    pub err: String,
}

/// `/VolumeDriver.Mount` and `/VolumeDriver.Path` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountpointResponse {
    /// Where the content is (empty when unknown, for `Path`).
    #[serde(rename = "Mountpoint", default, deserialize_with = "null_as_empty")]
    pub mountpoint: String,
    /// Empty on success.
    #[serde(rename = "Err", default, deserialize_with = "null_as_empty")]
    pub err: String,
}

/// A volume on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireVolume {
    /// The name.
    #[serde(rename = "Name")]
    pub name: String,
    /// Where the content is, when known.
    #[serde(
        rename = "Mountpoint",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub mountpoint: String,
    /// Creation time, when known.
    #[serde(
        rename = "CreatedAt",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub created_at: String,
    /// Driver-specific status.
    #[serde(
        rename = "Status",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_empty"
    )]
    pub status: BTreeMap<String, serde_json::Value>,
}

impl From<Volume> for WireVolume {
    fn from(v: Volume) -> WireVolume {
        WireVolume {
            name: v.name,
            mountpoint: v
                .mountpoint
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            created_at: v.created_at.unwrap_or_default(),
            status: v.status,
        }
    }
}

impl From<WireVolume> for Volume {
    fn from(v: WireVolume) -> Volume {
        Volume {
            name: v.name,
            mountpoint: (!v.mountpoint.is_empty()).then(|| PathBuf::from(v.mountpoint)),
            created_at: (!v.created_at.is_empty()).then_some(v.created_at),
            status: v.status,
        }
    }
}

/// `/VolumeDriver.Get` response (`Volume` is absent on failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetResponse {
    /// The volume.
    #[serde(rename = "Volume", default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<WireVolume>,
    /// Empty on success.
    #[serde(rename = "Err", default, deserialize_with = "null_as_empty")]
    pub err: String,
}

/// `/VolumeDriver.List` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResponse {
    /// Every volume (`null` or absent is none).
    #[serde(rename = "Volumes", default, deserialize_with = "null_as_empty")]
    pub volumes: Vec<WireVolume>,
    /// Empty on success.
    #[serde(rename = "Err", default, deserialize_with = "null_as_empty")]
    pub err: String,
}

/// The capabilities object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCapabilities {
    /// `local` or `global`.
    #[serde(rename = "Scope")]
    pub scope: String,
}

/// `/VolumeDriver.Capabilities` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilitiesResponse {
    /// The capabilities.
    #[serde(rename = "Capabilities")]
    pub capabilities: WireCapabilities,
}

impl From<Capabilities> for CapabilitiesResponse {
    fn from(c: Capabilities) -> CapabilitiesResponse {
        let scope = match c.scope {
            Scope::Local => "local",
            Scope::Global => "global",
        };
        CapabilitiesResponse {
            capabilities: WireCapabilities {
                scope: scope.to_string(),
            },
        }
    }
}

/// Docker's Go encoder writes `null` for a nil map or slice: read it as empty.
fn null_as_empty<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_reads_null_and_absent_opts_as_empty() {
        for body in [
            r#"{"Name":"vol","Opts":null}"#,
            r#"{"Name":"vol"}"#,
            r#"{"Name":"vol","Opts":{},"Extra":1}"#,
        ] {
            let r: CreateRequest = serde_json::from_str(body).unwrap();
            assert_eq!(r.name, "vol");
            assert!(r.opts.is_empty(), "{body}");
        }
        assert!(serde_json::from_str::<CreateRequest>(r#"{"Opts":{}}"#).is_err());
        assert!(serde_json::from_str::<CreateRequest>(r#"{"Name":"v","Opts":{"a":1}}"#).is_err());
    }

    #[test]
    fn endpoints_round_trip_through_their_paths() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_path(e.path()), Some(e));
        }
        assert_eq!(Endpoint::from_path("/VolumeDriver.Rename"), None);
    }

    #[test]
    fn wire_volume_omits_what_is_unknown() {
        let v = Volume {
            name: "vol".into(),
            mountpoint: None,
            created_at: None,
            status: BTreeMap::new(),
        };
        let json = serde_json::to_value(WireVolume::from(v.clone())).unwrap();
        assert_eq!(json, serde_json::json!({"Name": "vol"}));
        let back: WireVolume = serde_json::from_value(json).unwrap();
        assert_eq!(Volume::from(back), v);
    }
}
