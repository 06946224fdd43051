//! AES-256-GCM column encryption for a gateway: the read path decrypts shape-log columns with
//! [`tower_electric::BodyTransformLayer`], the write path encrypts JSON fields with
//! [`tower_electric::RequestBodyTransformLayer`], each with the caller's tenant key, looked up
//! once per response or request.
//!
//! A ciphertext is `base64(nonce || AES-256-GCM(plaintext))` with a random 96-bit nonce, and
//! the column's name as associated data, so a ciphertext moved to another column does not
//! decrypt. Electric syncs it as the text it is.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use tower_electric::rejection::Rejection;
use tower_electric::transform::{
    BoxError, JsonTransform, Message, MessageTransform, ShapeTransform, WriteTransform,
};

const NONCE_LEN: usize = 12;

/// Why a value did not decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CipherError {
    /// Not base64, or shorter than a nonce.
    Encoding,
    /// The key, the column or the ciphertext is wrong.
    Authentication,
    /// The plaintext is not UTF-8.
    NotText,
}

impl fmt::Display for CipherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Encoding => "ciphertext is not base64(nonce || ciphertext)",
            Self::Authentication => "ciphertext does not authenticate",
            Self::NotText => "plaintext is not UTF-8",
        })
    }
}

impl std::error::Error for CipherError {}

/// One tenant's key and the columns it protects.
#[derive(Clone)]
pub(crate) struct ColumnCipher {
    cipher: Aes256Gcm,
    columns: Arc<[String]>,
}

impl fmt::Debug for ColumnCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("ColumnCipher")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

impl ColumnCipher {
    /// A cipher with a 256-bit key for the named columns.
    pub(crate) fn new(key: &[u8; 32], columns: Arc<[String]>) -> Self {
        Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
            columns,
        }
    }

    fn protects(&self, column: &str) -> bool {
        self.columns.iter().any(|name| name == column)
    }

    /// Encrypts one column value.
    pub(crate) fn encrypt(&self, column: &str, plaintext: &str) -> Result<String, CipherError> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: column.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(&nonce, payload)
            .map_err(|_| CipherError::Authentication)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(BASE64.encode(sealed))
    }

    /// Decrypts one column value.
    pub(crate) fn decrypt(&self, column: &str, text: &str) -> Result<String, CipherError> {
        let sealed = BASE64.decode(text).map_err(|_| CipherError::Encoding)?;
        if sealed.len() < NONCE_LEN {
            return Err(CipherError::Encoding);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: column.as_bytes(),
        };
        let plaintext = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| CipherError::Authentication)?;
        String::from_utf8(plaintext).map_err(|_| CipherError::NotText)
    }
}

/// Decrypts the protected columns of `value` and `old_value` (a `NULL` stays `NULL`).
impl MessageTransform for ColumnCipher {
    fn transform(&mut self, message: &mut Message<'_>) -> Result<(), BoxError> {
        for row in message.rows_mut() {
            for column in self.columns.iter() {
                if let Some(Some(text)) = row.get(column) {
                    let plaintext = self.decrypt(column, text)?;
                    row.set(column, Some(plaintext));
                }
            }
        }
        Ok(())
    }
}

/// Encrypts the protected fields of a JSON object write body; a protected field that is
/// neither a string nor `null` is a `400`.
impl JsonTransform for ColumnCipher {
    fn transform(&mut self, body: &mut serde_json::Value) -> Result<(), Rejection> {
        let Some(object) = body.as_object_mut() else {
            return Err(
                Rejection::invalid_request().with_field_error("body", "must be a JSON object")
            );
        };
        for (field, value) in object.iter_mut() {
            if !self.protects(field) {
                continue;
            }
            match value {
                serde_json::Value::Null => {}
                serde_json::Value::String(text) => {
                    *text = self
                        .encrypt(field, text)
                        .map_err(|_| Rejection::bad_gateway())?;
                }
                _ => {
                    return Err(Rejection::invalid_request()
                        .with_field_error(field.clone(), "must be a string or null"))
                }
            }
        }
        Ok(())
    }
}

/// The caller's tenant, put in the request extensions by the app's own authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tenant(pub(crate) String);

/// Tenant keys, looked up once per response (read path) or request (write path). A real
/// gateway asks its key store here; the lookup may be async.
#[derive(Clone)]
pub(crate) struct TenantKeys {
    keys: Arc<HashMap<String, [u8; 32]>>,
    columns: Arc<[String]>,
}

impl fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantKeys")
            .field("tenants", &self.keys.len())
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

impl TenantKeys {
    /// Keys by tenant, protecting `columns`.
    pub(crate) fn new(keys: HashMap<String, [u8; 32]>, columns: &[&str]) -> Self {
        Self {
            keys: Arc::new(keys),
            columns: columns.iter().map(|column| (*column).to_owned()).collect(),
        }
    }

    /// The cipher of the request's tenant; an error when the caller has no tenant or the
    /// tenant no key (the layers answer `502` and log it).
    pub(crate) fn cipher_for(
        &self,
        request: &http::request::Parts,
    ) -> Result<ColumnCipher, BoxError> {
        let tenant = request
            .extensions
            .get::<Tenant>()
            .ok_or("request has no tenant")?;
        self.cipher_for_tenant(&tenant.0)
    }

    /// The cipher of one tenant; an error when the tenant has no key.
    #[allow(dead_code)] // not every example that includes this file seeds data at rest
    pub(crate) fn cipher_for_tenant(&self, tenant: &str) -> Result<ColumnCipher, BoxError> {
        let key = self.keys.get(tenant).ok_or("tenant has no key")?;
        Ok(ColumnCipher::new(key, Arc::clone(&self.columns)))
    }
}

impl ShapeTransform for TenantKeys {
    type Messages = ColumnCipher;
    type Future = std::future::Ready<Result<ColumnCipher, BoxError>>;

    fn setup(&self, request: &http::request::Parts, _: &http::response::Parts) -> Self::Future {
        std::future::ready(self.cipher_for(request))
    }
}

impl WriteTransform for TenantKeys {
    type Json = ColumnCipher;
    type Future = std::future::Ready<Result<ColumnCipher, BoxError>>;

    fn setup(&self, request: &http::request::Parts) -> Self::Future {
        std::future::ready(self.cipher_for(request))
    }
}
