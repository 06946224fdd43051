//! Secrets loaded from the environment or from files, and the token module's error type.

use std::io;
use std::path::{Path, PathBuf};

use crate::secret::SecretString;

/// Why a secret could not be loaded or a token layer not be configured.
///
/// Messages name the environment variable or the file, never the value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The environment variable is not set.
    #[error("environment variable `{name}` is not set")]
    EnvMissing {
        /// The variable's name.
        name: String,
    },
    /// The environment variable is set but not valid Unicode.
    #[error("environment variable `{name}` is not valid Unicode")]
    EnvNotUnicode {
        /// The variable's name.
        name: String,
    },
    /// The environment variable is set but empty (or, for a list, holds no token).
    #[error("environment variable `{name}` is empty")]
    EnvEmpty {
        /// The variable's name.
        name: String,
    },
    /// The file could not be read.
    #[error("cannot read secret file `{}`: {source}", path.display())]
    FileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why (an I/O error never carries the file's content).
        #[source]
        source: io::Error,
    },
    /// The file is not UTF-8.
    #[error("secret file `{}` is not UTF-8", path.display())]
    FileNotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// The file is empty once its trailing newline is trimmed.
    #[error("secret file `{}` is empty", path.display())]
    FileEmpty {
        /// The file.
        path: PathBuf,
    },
    /// A secret or token given in code is the empty string.
    #[error("a secret or token is empty")]
    EmptySecret,
    /// Require mode was given no token at all.
    #[error("no caller token is configured")]
    NoTokens,
    /// A realm that cannot be written in a `WWW-Authenticate` quoted string.
    #[error("realm must be printable ASCII without `\"` or `\\`")]
    InvalidRealm,
}

/// Reads a secret from the environment variable `name`.
///
/// The value is taken as it is (no trimming: Electric compares its secret byte for byte), and
/// must not be empty.
///
/// ```
/// use tower_electric::token::{secret_from_env, TokenError};
///
/// let error = secret_from_env("TOWER_ELECTRIC_DOC_UNSET_VARIABLE").unwrap_err();
/// assert!(matches!(error, TokenError::EnvMissing { .. }));
/// assert_eq!(error.to_string(), "environment variable `TOWER_ELECTRIC_DOC_UNSET_VARIABLE` is not set");
/// ```
pub fn secret_from_env(name: &str) -> Result<SecretString, TokenError> {
    let value = match std::env::var(name) {
        Ok(value) => value,
        Err(std::env::VarError::NotPresent) => {
            return Err(TokenError::EnvMissing { name: name.into() })
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(TokenError::EnvNotUnicode { name: name.into() })
        }
    };
    if value.is_empty() {
        return Err(TokenError::EnvEmpty { name: name.into() });
    }
    Ok(SecretString::new(value))
}

/// Reads several tokens from the environment variable `name`, separated by commas (rotation:
/// `GATEWAY_REQUIRE_TOKEN=new,old`). Spaces around each token are trimmed and empty entries
/// skipped; at least one token must remain.
pub fn secrets_from_env(name: &str) -> Result<Vec<SecretString>, TokenError> {
    let list = secret_from_env(name)?;
    let tokens: Vec<SecretString> = list
        .expose()
        .split(',')
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(SecretString::new)
        .collect();
    if tokens.is_empty() {
        return Err(TokenError::EnvEmpty { name: name.into() });
    }
    Ok(tokens)
}

/// Reads a secret from a file (a Docker or Kubernetes secret, for example).
///
/// Trailing line breaks (`\n`, `\r\n`) are trimmed, since editors and `echo` add them; any
/// other byte is part of the secret. The file must be UTF-8 and not empty.
pub fn secret_from_file(path: impl AsRef<Path>) -> Result<SecretString, TokenError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| TokenError::FileUnreadable {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| TokenError::FileNotUtf8 {
        path: path.to_owned(),
    })?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(TokenError::FileEmpty {
            path: path.to_owned(),
        });
    }
    Ok(SecretString::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, content: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "tower-electric-token-{}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn env_secret_is_read_as_is_and_errors_name_the_variable_only() {
        std::env::set_var("TOWER_ELECTRIC_TEST_SECRET_SET", " s3cr3t-value ");
        let secret = secret_from_env("TOWER_ELECTRIC_TEST_SECRET_SET").unwrap();
        assert_eq!(secret.expose(), " s3cr3t-value ");

        std::env::set_var("TOWER_ELECTRIC_TEST_SECRET_EMPTY", "");
        let error = secret_from_env("TOWER_ELECTRIC_TEST_SECRET_EMPTY").unwrap_err();
        assert!(matches!(error, TokenError::EnvEmpty { .. }));
        assert!(error
            .to_string()
            .contains("TOWER_ELECTRIC_TEST_SECRET_EMPTY"));

        let error = secret_from_env("TOWER_ELECTRIC_TEST_SECRET_UNSET").unwrap_err();
        assert!(matches!(error, TokenError::EnvMissing { .. }));
        assert!(error
            .to_string()
            .contains("TOWER_ELECTRIC_TEST_SECRET_UNSET"));
    }

    #[test]
    fn env_token_list_splits_on_commas_for_rotation() {
        std::env::set_var("TOWER_ELECTRIC_TEST_TOKENS", "new-token, old-token,");
        let tokens = secrets_from_env("TOWER_ELECTRIC_TEST_TOKENS").unwrap();
        let exposed: Vec<&str> = tokens.iter().map(SecretString::expose).collect();
        assert_eq!(exposed, ["new-token", "old-token"]);

        std::env::set_var("TOWER_ELECTRIC_TEST_TOKENS_BLANK", " , ,");
        let error = secrets_from_env("TOWER_ELECTRIC_TEST_TOKENS_BLANK").unwrap_err();
        assert!(matches!(error, TokenError::EnvEmpty { .. }));
    }

    #[test]
    fn file_secret_loses_its_trailing_newline_only() {
        let path = temp_file("newline", b" file-secret\t\r\n");
        assert_eq!(secret_from_file(&path).unwrap().expose(), " file-secret\t");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn file_errors_name_the_file_never_the_content() {
        let path = temp_file("blank", b"\n\n");
        let error = secret_from_file(&path).unwrap_err();
        assert!(matches!(error, TokenError::FileEmpty { .. }));
        assert!(error.to_string().contains(&*path.to_string_lossy()));
        std::fs::remove_file(path).unwrap();

        let path = temp_file("latin1", b"caf\xe9-secret-bytes");
        let error = secret_from_file(&path).unwrap_err();
        assert!(matches!(error, TokenError::FileNotUtf8 { .. }));
        assert!(!error.to_string().contains("secret-bytes"));
        std::fs::remove_file(path).unwrap();

        let missing = std::env::temp_dir().join("tower-electric-token-no-such-file");
        let error = secret_from_file(&missing).unwrap_err();
        assert!(matches!(error, TokenError::FileUnreadable { .. }));
        assert!(error
            .to_string()
            .contains("tower-electric-token-no-such-file"));
    }
}
