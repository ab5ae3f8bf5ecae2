//! [`JsonBody`]: a JSON request body whose validation errors name the offending field.
//!
//! poem-openapi's `Json<T>` answers a missing or mistyped field with the type that failed
//! ("Expected input type \"string\", found null"), not the field. The contract wants the field
//! named, as FastAPI does, so on a parse failure this looks at the body against `T`'s own
//! OpenAPI schema to find which field is wrong. Everything else, the document included, is
//! `Json<T>`'s.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::error::ParseRequestPayloadError;
use poem_openapi::impl_apirequest_for_payload;
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use serde_json::Value;

/// A JSON request body, parsed and validated as `Json<T>` would be.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = Json::<T>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        Json::<T>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromJSON> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = Vec::<u8>::from_request(request, body).await?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|err| invalid(format!("body: not valid JSON: {err}")))?;
        match T::parse_from_json(Some(value.clone())) {
            // poem-openapi reads `null` as "absent" for an optional field; the document says
            // the field is not nullable, so `null` there is refused, as the document promises.
            // (Unknown properties, `null` or not, are ignored.)
            Ok(parsed) if has_null_property(&value) => match misfit_field::<T>(&value) {
                Some(reason) => Err(invalid(reason)),
                None => Ok(Self(parsed)),
            },
            Ok(parsed) => Ok(Self(parsed)),
            Err(err) => {
                let reason = misfit_field::<T>(&value).unwrap_or_else(|| err.into_message());
                Err(invalid(reason))
            }
        }
    }
}

impl_apirequest_for_payload!(JsonBody<T>, T: ParseFromJSON);

fn has_null_property(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|object| object.values().any(Value::is_null))
}

fn invalid(reason: String) -> poem::Error {
    ParseRequestPayloadError { reason }.into()
}

/// The first field of `value` that does not fit `T`'s schema, described, or `None` when the
/// problem is not one of a single field's presence or type.
fn misfit_field<T: Type>(value: &Value) -> Option<String> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let schema = registry.schemas.get(T::name().as_ref())?;
    let Value::Object(object) = value else {
        return Some("body: must be a JSON object".to_owned());
    };
    for name in &schema.required {
        if object.get(*name).is_none_or(Value::is_null) {
            return Some(format!("{name}: field required"));
        }
    }
    for (name, property) in &schema.properties {
        let Some(field) = object.get(*name) else {
            continue;
        };
        let (expected, nullable) = match property {
            MetaSchemaRef::Inline(schema) => (schema.ty, schema.nullable),
            MetaSchemaRef::Reference(_) => ("object", false),
        };
        if field.is_null() && !nullable {
            return Some(format!("{name}: must not be null"));
        }
        let fits = match expected {
            "string" => field.is_string(),
            "integer" => field.is_i64() || field.is_u64(),
            "number" => field.is_number(),
            "boolean" => field.is_boolean(),
            "array" => field.is_array(),
            "object" => field.is_object(),
            _ => true,
        };
        if !fits && !field.is_null() {
            return Some(format!("{name}: must be of type {expected}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use poem_openapi::Object;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Object)]
    struct Sample {
        name: String,
        count: i64,
        note: Option<String>,
    }

    #[test]
    fn a_missing_or_null_field_is_named() {
        assert_eq!(
            misfit_field::<Sample>(&json!({"count": 1})).as_deref(),
            Some("name: field required")
        );
        assert_eq!(
            misfit_field::<Sample>(&json!({"name": null, "count": 1})).as_deref(),
            Some("name: field required")
        );
    }

    #[test]
    fn a_mistyped_field_is_named() {
        assert_eq!(
            misfit_field::<Sample>(&json!({"name": "a", "count": "1"})).as_deref(),
            Some("count: must be of type integer")
        );
        assert_eq!(
            misfit_field::<Sample>(&json!({"name": "a", "count": 1, "note": 5})).as_deref(),
            Some("note: must be of type string")
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_said_so() {
        assert_eq!(
            misfit_field::<Sample>(&json!([1, 2])).as_deref(),
            Some("body: must be a JSON object")
        );
    }

    #[test]
    fn null_is_a_misfit_unless_the_schema_allows_it() {
        assert_eq!(
            misfit_field::<Sample>(&json!({"name": "a", "count": 1, "note": null})).as_deref(),
            Some("note: must not be null")
        );
    }

    #[test]
    fn a_fitting_body_has_no_misfit() {
        assert_eq!(
            misfit_field::<Sample>(&json!({"name": "a", "count": 1})),
            None
        );
        assert_eq!(
            misfit_field::<Sample>(&json!({"name": "a", "count": 1, "note": "n"})),
            None
        );
    }
}
