//! Prometheus remote write: pushing the families to engines that cannot scrape the device.

pub mod post;
pub mod proto;
pub mod tls;
