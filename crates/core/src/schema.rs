//! OpenAPI schemas of the spec types (the `utoipa` feature): what an API that takes these types
//! as request bodies documents.
//!
//! Amounts, rates and quantities are exact decimals: they are documented as [`DecimalText`], a
//! string such as `"12.50"` (a JSON number is read exactly too, never through a binary float).

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Ref, RefOr, Schema};

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

/// An ISO 4217 currency code, upper case (`"USD"`, `"JPY"`, `"KWD"`): how [`crate::Currency`] is
/// written.
impl utoipa::PartialSchema for crate::Currency {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[A-Z]{3}$"))
            .description(Some(
                "An active ISO 4217 currency code; its minor unit decides how many decimals an \
                 amount has (2 for USD, 0 for JPY, 3 for KWD).",
            ))
            .examples(["USD"])
            .into()
    }
}

impl utoipa::ToSchema for crate::Currency {}

/// An amount of money as [`crate::Money`] writes it: the exact amount in major units, the same in
/// minor units, and the currency.
impl utoipa::PartialSchema for crate::Money {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "amount",
                Ref::from_schema_name(<DecimalText as utoipa::ToSchema>::name()),
            )
            .property(
                "amount_minor",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .description(Some(
                        "The same amount in minor units of the currency (cents for USD).",
                    )),
            )
            .property(
                "currency",
                Ref::from_schema_name(<crate::Currency as utoipa::ToSchema>::name()),
            )
            .required("amount")
            .required("amount_minor")
            .required("currency")
            .description(Some(
                "A settled amount: a whole number of the currency's minor units, also written \
                 in major units as an exact decimal.",
            ))
            .examples([serde_json::json!({
                "amount": "12.50",
                "amount_minor": 1250,
                "currency": "USD"
            })])
            .into()
    }
}

impl utoipa::ToSchema for crate::Money {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        use utoipa::PartialSchema;
        schemas.push((DecimalText::name().into_owned(), DecimalText::schema()));
        schemas.push((
            crate::Currency::name().into_owned(),
            crate::Currency::schema(),
        ));
    }
}
