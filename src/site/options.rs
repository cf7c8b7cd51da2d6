//! Runtime Leptos options. `Leptos.toml` is compiled into the binary so the binary runs with
//! nothing beside it; `LEPTOS_*` environment variables override it, and a file given with
//! `--leptos-config` replaces it.

use std::path::Path;

use leptos::config::{get_config_from_str, LeptosOptions};

const EMBEDDED: &str = include_str!("../../Leptos.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("invalid Leptos options in {0}: {1}")]
    Invalid(String, String),
}

pub fn leptos_options(file: Option<&Path>) -> Result<LeptosOptions, ConfigError> {
    let (name, text) = match file {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Read(path.display().to_string(), e))?,
        ),
        None => ("the built-in Leptos.toml".to_owned(), EMBEDDED.to_owned()),
    };
    get_config_from_str(&text).map_err(|e| ConfigError::Invalid(name, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_options_agree_with_the_build_options() {
        let runtime = leptos_options(None).expect("Leptos.toml parses");
        let build =
            get_config_from_str(include_str!("../../Cargo.toml")).expect("Cargo.toml parses");
        // The page links /pkg/<output-name>.js; both files must name the same output.
        assert_eq!(runtime.output_name, build.output_name);
        assert_eq!(runtime.site_pkg_dir, build.site_pkg_dir);
        assert!(
            !runtime.hash_files,
            "hash-files would need a hash.txt beside the binary"
        );
    }

    #[test]
    fn a_broken_file_is_a_clear_error() {
        let missing = leptos_options(Some(Path::new("/no/such/Leptos.toml")));
        assert!(matches!(missing, Err(ConfigError::Read(..))));
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), "not = [valid").expect("write");
        assert!(matches!(
            leptos_options(Some(file.path())),
            Err(ConfigError::Invalid(..))
        ));
    }
}
