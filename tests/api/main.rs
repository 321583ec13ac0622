//! Black-box API tests: one binary, one module per feature area.

mod helpers;

mod smoke;
