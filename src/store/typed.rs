//! Typed ids read back from text columns. Decoding parses, so a row can never hand the
//! service a value that the type's constructor would refuse. Binding needs no impl: the
//! statements bind `as_str()`.

use crate::domain::OrgId;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Type};

impl<DB: Database> Type<DB> for OrgId
where
    String: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as Type<DB>>::compatible(ty)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for OrgId
where
    String: Decode<'r, DB>,
{
    fn decode(value: DB::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <String as Decode<'r, DB>>::decode(value)?;
        Ok(OrgId::parse(&text)?)
    }
}
