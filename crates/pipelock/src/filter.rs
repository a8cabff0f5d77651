//! Where refusals used to be decided; the decisions now live in [`crate::policy`]. Kept as
//! the name the response judge imports the refusal type by.

pub use crate::policy::Denied;
