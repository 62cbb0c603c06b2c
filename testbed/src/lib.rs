//! Stands up what the tests and the bench measure against: certbot-shaped
//! certificate directories today; client network namespaces, compose
//! profiles and CPU budgets as the deploy and bench work lands.

pub mod certs;

pub use certs::{CertbotDir, CertsError};
