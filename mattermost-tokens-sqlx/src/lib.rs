//! adapter
#![deny(missing_docs)]
