//! Running the service: health, errors, metrics, instances, outages, migrations, TLS,
//! the command line, the OpenAPI document, logs.

mod cli;
pub(crate) mod edges;
mod errors;
mod hardening;
mod health;
mod instances;
mod metrics;
mod migration;
mod openapi;
mod operations;
mod outage;
mod secrets;
mod shutdown;
mod tls;
