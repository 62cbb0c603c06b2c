//! Stands up what the tests and the bench measure against: certbot-shaped
//! certificate directories, client network namespaces, and a machine-wide
//! lock around Docker and privileged ports.

pub mod acme;
pub mod certs;
pub mod cgroup;
pub mod compose;
pub mod image;
pub mod lock;
pub mod netns;

pub use certs::{CertbotDir, CertsError};
pub use netns::ClientNamespace;
