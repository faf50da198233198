//! OpenAPI schemas of the spec types (the `utoipa` feature): what an API that takes these types
//! as request bodies documents.
//!
//! Amounts, rates and quantities are exact decimals: they are documented as [`DecimalText`], a
//! string such as `"12.50"` (a JSON number is read exactly too, never through a binary float).

use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

/// An exact decimal written as a string (`"12.50"`, `"0.029"`, `"-3"`), the wire form of every
/// amount, rate and quantity. Named `Decimal` in the document.
pub struct DecimalText;

impl utoipa::PartialSchema for DecimalText {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("decimal".to_owned())))
            .pattern(Some(r"^-?[0-9]+(\.[0-9]+)?$"))
            .description(Some(
                "An exact decimal as a string, e.g. \"12.50\". Amounts are in major units of \
                 the currency (\"12.50\" USD is 1250 cents) and are never binary floats; a JSON \
                 number is accepted too and read digit for digit.",
            ))
            .examples(["12.50"])
            .into()
    }
}

impl utoipa::ToSchema for DecimalText {
    fn name() -> std::borrow::Cow<'static, str> {
        "Decimal".into()
    }
}
