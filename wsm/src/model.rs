//! JSON on the command line ↔ each codec's own data model.
//!
//! Arguments, auth values and fixed results are given as JSON and turned
//! into the codec's dynamic value type (`serde_json::Value` for JSON,
//! `rmpv::Value` for MessagePack, `ciborium::Value` for CBOR); what comes
//! back is turned into JSON the same way. JSON has no binary, so the binary
//! formats mark it with a one-key object:
//!
//! | JSON on the command line | MessagePack | CBOR |
//! |---|---|---|
//! | `{"$bytes":"<base64>"}` | `bin` | byte string |
//! | `{"$ext":[type,"<base64>"]}` | `ext` | — |
//! | `{"$tag":[n,value]}` | — | tag `n` |
//!
//! With `--codec json` such objects are sent as they are. A map key that is
//! not a string is printed as its JSON text. Unit tests: `cargo test -p wsm`.

use data_encoding::BASE64;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Number, Value as Json};
use ws_messaging::Codec;
use ws_messaging_cbor::Cbor;
use ws_messaging_json::Json as JsonCodec;
use ws_messaging_msgpack::MsgPack;

/// A codec whose values `wsm` can read from and write as JSON.
pub(crate) trait Model: Codec + Default + Clone {
    /// The codec's dynamic value type.
    type Value: Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// The name given to `--codec`.
    const NAME: &'static str;

    /// The JSON value in this codec's data model.
    fn from_json(value: Json) -> Result<Self::Value, String>;

    /// A value of this codec as JSON.
    fn to_json(value: Self::Value) -> Json;
}

impl Model for JsonCodec {
    type Value = Json;
    const NAME: &'static str = "json";

    fn from_json(value: Json) -> Result<Json, String> {
        Ok(value)
    }

    fn to_json(value: Json) -> Json {
        value
    }
}

impl Model for MsgPack {
    type Value = ws_messaging_msgpack::Value;
    const NAME: &'static str = "msgpack";

    fn from_json(value: Json) -> Result<Self::Value, String> {
        use ws_messaging_msgpack::Value as V;
        Ok(match value {
            Json::Null => V::Nil,
            Json::Bool(b) => V::Boolean(b),
            Json::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => V::from(u),
                (None, Some(i)) => V::from(i),
                _ => V::F64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => V::from(s),
            Json::Array(items) => V::Array(items.into_iter().map(Self::from_json).collect::<Result<_, _>>()?),
            Json::Object(map) => {
                if let Some(bytes) = marker(&map, "$bytes") {
                    return Ok(V::Binary(base64(bytes)?));
                }
                if let Some(ext) = marker(&map, "$ext") {
                    let bad = || format!("$ext must be [type (-128..127), \"<base64>\"], got {ext}");
                    let Json::Array(pair) = ext else { return Err(bad()) };
                    let (Some(kind), Some(Json::String(data)), 2) =
                        (pair.first().and_then(Json::as_i64), pair.get(1), pair.len())
                    else {
                        return Err(bad());
                    };
                    let kind = i8::try_from(kind).map_err(|_| bad())?;
                    return Ok(V::Ext(kind, base64(&Json::String(data.clone()))?));
                }
                V::Map(
                    map.into_iter()
                        .map(|(k, v)| Ok((V::from(k), Self::from_json(v)?)))
                        .collect::<Result<_, String>>()?,
                )
            }
        })
    }

    fn to_json(value: Self::Value) -> Json {
        use ws_messaging_msgpack::Value as V;
        match value {
            V::Nil => Json::Null,
            V::Boolean(b) => Json::Bool(b),
            V::Integer(i) => match (i.as_u64(), i.as_i64()) {
                (Some(u), _) => Json::from(u),
                (None, Some(i)) => Json::from(i),
                _ => float(i.as_f64().unwrap_or(f64::NAN)),
            },
            V::F32(f) => float(f64::from(f)),
            V::F64(f) => float(f),
            V::String(s) => match s.into_str() {
                Some(s) => Json::String(s),
                None => Json::String("<invalid UTF-8>".into()),
            },
            V::Binary(bytes) => bytes_marker(&bytes),
            V::Array(items) => Json::Array(items.into_iter().map(Self::to_json).collect()),
            V::Map(pairs) => Json::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (key(Self::to_json(k)), Self::to_json(v)))
                    .collect(),
            ),
            V::Ext(kind, data) => {
                let mut map = Map::new();
                map.insert(
                    "$ext".into(),
                    Json::Array(vec![Json::from(kind), Json::String(BASE64.encode(&data))]),
                );
                Json::Object(map)
            }
        }
    }
}

impl Model for Cbor {
    type Value = ws_messaging_cbor::Value;
    const NAME: &'static str = "cbor";

    fn from_json(value: Json) -> Result<Self::Value, String> {
        use ws_messaging_cbor::Value as V;
        Ok(match value {
            Json::Null => V::Null,
            Json::Bool(b) => V::Bool(b),
            Json::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => V::Integer(u.into()),
                (None, Some(i)) => V::Integer(i.into()),
                _ => V::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => V::Text(s),
            Json::Array(items) => V::Array(items.into_iter().map(Self::from_json).collect::<Result<_, _>>()?),
            Json::Object(map) => {
                if let Some(bytes) = marker(&map, "$bytes") {
                    return Ok(V::Bytes(base64(bytes)?));
                }
                if let Some(tag) = marker(&map, "$tag") {
                    let bad = || format!("$tag must be [tag number, value], got {tag}");
                    let Json::Array(pair) = tag else { return Err(bad()) };
                    let (Some(n), Some(inner), 2) = (pair.first().and_then(Json::as_u64), pair.get(1), pair.len())
                    else {
                        return Err(bad());
                    };
                    return Ok(V::Tag(n, Box::new(Self::from_json(inner.clone())?)));
                }
                V::Map(
                    map.into_iter()
                        .map(|(k, v)| Ok((V::Text(k), Self::from_json(v)?)))
                        .collect::<Result<_, String>>()?,
                )
            }
        })
    }

    fn to_json(value: Self::Value) -> Json {
        use ws_messaging_cbor::Value as V;
        match value {
            V::Null => Json::Null,
            V::Bool(b) => Json::Bool(b),
            V::Integer(i) => {
                let i = i128::from(i);
                if let Ok(u) = u64::try_from(i) {
                    Json::from(u)
                } else if let Ok(i) = i64::try_from(i) {
                    Json::from(i)
                } else {
                    float(i as f64)
                }
            }
            V::Float(f) => float(f),
            V::Text(s) => Json::String(s),
            V::Bytes(bytes) => bytes_marker(&bytes),
            V::Array(items) => Json::Array(items.into_iter().map(Self::to_json).collect()),
            V::Map(pairs) => Json::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (key(Self::to_json(k)), Self::to_json(v)))
                    .collect(),
            ),
            V::Tag(n, inner) => {
                let mut map = Map::new();
                map.insert("$tag".into(), Json::Array(vec![Json::from(n), Self::to_json(*inner)]));
                Json::Object(map)
            }
            // `ciborium::Value` is non-exhaustive.
            _ => Json::Null,
        }
    }
}

/// The value of `map` when it is exactly `{ name: value }`.
fn marker<'a>(map: &'a Map<String, Json>, name: &str) -> Option<&'a Json> {
    if map.len() == 1 {
        map.get(name)
    } else {
        None
    }
}

/// Decodes the base64 text of a `$bytes` marker.
fn base64(value: &Json) -> Result<Vec<u8>, String> {
    let Json::String(text) = value else {
        return Err(format!("$bytes must be a base64 string, got {value}"));
    };
    BASE64
        .decode(text.as_bytes())
        .map_err(|e| format!("$bytes: invalid base64 {text:?}: {e}"))
}

/// `{"$bytes": "<base64>"}`.
fn bytes_marker(bytes: &[u8]) -> Json {
    let mut map = Map::new();
    map.insert("$bytes".into(), Json::String(BASE64.encode(bytes)));
    Json::Object(map)
}

/// A float as JSON; JSON has no NaN or infinity, which become `null`.
fn float(f: f64) -> Json {
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}

/// A map key as a JSON object key: a string as it is, anything else as its
/// JSON text.
fn key(value: Json) -> String {
    match value {
        Json::String(s) => s,
        other => other.to_string(),
    }
}

/// A command-line argument: its JSON value when it is valid JSON, else the
/// text as a string (`wsm call URL sum 1 2 3.5`, `wsm send URL say hello`).
pub(crate) fn bare(arg: &str) -> Json {
    serde_json::from_str(arg).unwrap_or_else(|_| Json::String(arg.to_string()))
}

/// Arguments given on the command line, in the codec's data model.
pub(crate) fn args<M: Model>(args: &[String]) -> Result<Vec<M::Value>, String> {
    args.iter().map(|a| M::from_json(bare(a))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip<M: Model>(value: Json) -> Json {
        let codec = M::default();
        let mut buf = Vec::new();
        codec.encode_value(&M::from_json(value).unwrap(), &mut buf).unwrap();
        M::to_json(codec.decode_value(&buf).unwrap())
    }

    #[test]
    fn bare_arguments_are_json_or_text() {
        assert_eq!(bare("3.5"), json!(3.5));
        assert_eq!(bare("-2"), json!(-2));
        assert_eq!(bare("hello"), json!("hello"));
        assert_eq!(bare("\"1\""), json!("1"));
        assert_eq!(bare("{\"a\":[true,null]}"), json!({"a": [true, null]}));
        assert_eq!(bare("{oops"), json!("{oops"));
    }

    #[test]
    fn values_survive_every_codec() {
        let value = json!({"n": [0, -1, 18446744073709551615u64, 2.5], "s": "é", "b": false, "z": null});
        assert_eq!(round_trip::<JsonCodec>(value.clone()), value);
        assert_eq!(round_trip::<MsgPack>(value.clone()), value);
        assert_eq!(round_trip::<Cbor>(value.clone()), value);
    }

    #[test]
    fn bytes_are_binary_in_binary_codecs() {
        let value = json!({"$bytes": "aGVsbG8="});
        assert_eq!(
            MsgPack::from_json(value.clone()).unwrap(),
            ws_messaging_msgpack::Value::Binary(b"hello".to_vec())
        );
        assert_eq!(
            Cbor::from_json(value.clone()).unwrap(),
            ws_messaging_cbor::Value::Bytes(b"hello".to_vec())
        );
        assert_eq!(round_trip::<MsgPack>(value.clone()), value);
        assert_eq!(round_trip::<Cbor>(value.clone()), value);
        // JSON has no binary: the marker goes as it is.
        assert_eq!(round_trip::<JsonCodec>(value.clone()), value);
        // Not a marker: more than one key.
        let two = json!({"$bytes": "aGVsbG8=", "x": 1});
        assert_eq!(round_trip::<MsgPack>(two.clone()), two);
        assert!(MsgPack::from_json(json!({"$bytes": "%%%"})).is_err());
        assert!(Cbor::from_json(json!({"$bytes": 3})).is_err());
    }

    #[test]
    fn ext_and_tags() {
        let ext = json!({"$ext": [5, "AQI="]});
        assert_eq!(
            MsgPack::from_json(ext.clone()).unwrap(),
            ws_messaging_msgpack::Value::Ext(5, vec![1, 2])
        );
        assert_eq!(round_trip::<MsgPack>(ext), json!({"$ext": [5, "AQI="]}));
        assert!(MsgPack::from_json(json!({"$ext": [500, "AQI="]})).is_err());
        let tag = json!({"$tag": [1, 1000]});
        assert_eq!(round_trip::<Cbor>(tag.clone()), tag);
    }

    #[test]
    fn non_string_keys_print_as_json_text() {
        use ws_messaging_msgpack::Value as V;
        let map = V::Map(vec![(V::from(1), V::from("one")), (V::Nil, V::Boolean(true))]);
        assert_eq!(MsgPack::to_json(map), json!({"1": "one", "null": true}));
    }
}
