//! Sync cursors: base64 of a signed JSON state with the query-shape hash and issue time.
//! Tampered, foreign or mismatched cursors are "Invalid cursor provided."; old ones expire.

use std::hash::BuildHasher;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

pub const INVALID_CURSOR: &str = "Invalid cursor provided.";
pub const EXPIRED_CURSOR: &str = "Cursor has expired. Try again with a new cursor.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Backfill of the snapshot taken at `s0` (twoPhase).
    #[serde(rename = "b")]
    Backfill,
    /// Changes after `pos`, in change-sequence order.
    #[serde(rename = "s")]
    Stream,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CursorState {
    pub v: u8,
    /// Hash of the result-set expression the cursor belongs to.
    pub qh: String,
    pub ph: Phase,
    /// Streaming position: the last change sequence already covered.
    pub pos: u64,
    /// Change sequence when the sync began (the backfill snapshot).
    pub s0: u64,
    /// Issue time, epoch ms.
    pub iat: i64,
    /// Issue serial, so that all cursors issued so far can be expired at once.
    pub n: u64,
    /// Last `(space, externalId)` returned during backfill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lk: Option<(String, String)>,
    /// Sort values of the last item returned during a backfill with `backfillSort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ls: Option<Vec<Value>>,
    #[serde(default)]
    pub sig: String,
}

/// Signs and verifies cursors with a per-emulator random key.
#[derive(Debug)]
pub struct CursorCodec {
    key: std::hash::RandomState,
    serial: u64,
    min_valid_serial: u64,
}

impl Default for CursorCodec {
    fn default() -> Self {
        CursorCodec {
            key: std::hash::RandomState::new(),
            serial: 0,
            min_valid_serial: 0,
        }
    }
}

impl CursorCodec {
    fn signature(&self, state: &CursorState) -> String {
        let mut unsigned = state.clone();
        unsigned.sig.clear();
        let bytes = serde_json::to_vec(&unsigned).unwrap_or_default();
        format!("{:016x}", self.key.hash_one(&bytes))
    }

    pub fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Every cursor issued so far counts as expired from now on.
    pub fn expire_all(&mut self) {
        self.min_valid_serial = self.serial + 1;
    }

    pub fn encode(&self, mut state: CursorState) -> String {
        state.sig = self.signature(&state);
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&state).unwrap_or_default())
    }

    /// Decodes and checks a cursor for the result set whose expression hashes to `qh`.
    pub fn decode(
        &self,
        cursor: &str,
        qh: &str,
        now: i64,
        expiry_ms: i64,
        allow_expired: bool,
    ) -> ApiResult<CursorState> {
        let invalid = || ApiError::bad_request(INVALID_CURSOR);
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor.trim_end_matches('='))
            .map_err(|_| invalid())?;
        let state: CursorState = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if state.v != 1 || state.sig != self.signature(&state) || state.qh != qh {
            return Err(invalid());
        }
        let expired = now.saturating_sub(state.iat) > expiry_ms || state.n < self.min_valid_serial;
        if expired && !allow_expired {
            return Err(ApiError::bad_request(EXPIRED_CURSOR));
        }
        Ok(state)
    }
}

/// Stable hash of a JSON value with object keys sorted, so key order never matters.
pub fn shape_hash(v: &Value) -> String {
    fn canon(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push(':');
                    canon(&m[k], out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for x in a {
                    canon(x, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    canon(v, &mut s);
    // FNV-1a, 64 bit: stable across processes, unlike std's randomly keyed hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(codec: &mut CursorCodec, iat: i64) -> CursorState {
        CursorState {
            v: 1,
            qh: "q".into(),
            ph: Phase::Stream,
            pos: 5,
            s0: 3,
            iat,
            n: codec.next_serial(),
            lk: None,
            ls: None,
            sig: String::new(),
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let mut codec = CursorCodec::default();
        let s = state(&mut codec, 1000);
        let c = codec.encode(s.clone());
        let back = codec.decode(&c, "q", 1500, 1000, false).unwrap();
        assert_eq!(back.pos, 5);
        assert_eq!(
            codec
                .decode(&c, "other", 1500, 1000, false)
                .unwrap_err()
                .message,
            INVALID_CURSOR
        );
        assert_eq!(
            codec
                .decode("not-a-cursor", "q", 1500, 1000, false)
                .unwrap_err()
                .message,
            INVALID_CURSOR
        );
        assert_eq!(
            codec
                .decode(&c, "q", 2001, 1000, false)
                .unwrap_err()
                .message,
            EXPIRED_CURSOR
        );
        assert!(codec.decode(&c, "q", 2001, 1000, true).is_ok());
        let foreign = CursorCodec::default();
        assert_eq!(
            foreign
                .decode(&c, "q", 1500, 1000, false)
                .unwrap_err()
                .message,
            INVALID_CURSOR
        );
        codec.expire_all();
        assert_eq!(
            codec
                .decode(&c, "q", 1500, 1000, false)
                .unwrap_err()
                .message,
            EXPIRED_CURSOR
        );
    }

    #[test]
    fn shape_hash_ignores_key_order() {
        assert_eq!(
            shape_hash(&json!({"a":1,"b":[{"x":1,"y":2}]})),
            shape_hash(&json!({"b":[{"y":2,"x":1}],"a":1}))
        );
        assert_ne!(shape_hash(&json!({"a":1})), shape_hash(&json!({"a":2})));
    }
}
