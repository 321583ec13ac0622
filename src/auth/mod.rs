//! Authentication: who is calling (a verified JWT), from which credential source.
//! Authorization decisions are the [`crate::domain::Role`] methods and [`crate::scope`].

pub mod claims;
pub mod extractor;
pub mod keys;
pub mod origin;

pub use claims::Claims;
pub use extractor::{Credential, Principal, authenticate, bearer_token, token_expired};
pub use keys::{Signer, Verifier};
