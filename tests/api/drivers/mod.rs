//! Real clients: Chromium (puppeteer-core) and standard OAuth and JOSE libraries.

mod browser;
pub mod interop;
