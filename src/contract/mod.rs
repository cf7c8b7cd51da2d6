//! Pure rules over text: the parsers of the files agent loops write (one folder per project kind),
//! the ANSI escape grammar, the rules for request paths and hosts, and query-value encoding. No
//! I/O; compiled for the server and the WASM client alike.

pub mod ansi;
pub mod buildrunner;
pub mod lenient;
pub mod percent;
pub mod ralph;
pub mod request_host;
pub mod request_path;
