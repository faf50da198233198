//! OpenAPI schemas of the spec types (the `utoipa` feature): what an API that takes these types
//! as request bodies documents.
//!
//! Amounts, rates and quantities are exact decimals: they are documented as [`DecimalText`], a
//! string such as `"12.50"` (a JSON number is read exactly too, never through a binary float).

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::ToSchema;

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

impl ToSchema for DecimalText {
    fn name() -> std::borrow::Cow<'static, str> {
        "Decimal".into()
    }
}

/// An amount of money as every response writes it: `amount` in major units (an exact decimal),
/// `amount_minor` in whole minor units, and the `currency`.
impl utoipa::PartialSchema for crate::money::Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "An amount of money: `amount` in major units, `amount_minor` in whole minor units \
                 of `currency` (1250 for 12.50 USD).",
            ))
            .property("amount", Ref::from_schema_name(DecimalText::name()))
            .required("amount")
            .property(
                "amount_minor",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
            )
            .required("amount_minor")
            .property(
                "currency",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("ISO 4217"))
                    .examples(["EUR"]),
            )
            .required("currency")
            .into()
    }
}

impl ToSchema for crate::money::Money {
    fn name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        use utoipa::PartialSchema;
        schemas.push((DecimalText::name().into(), DecimalText::schema()));
    }
}
