//! Security of the kafka-protocol admin path ([`super::ClusterAdmin`]), from the same
//! librdkafka properties the workers and the rdkafka admin client get (`--client-config`):
//! TLS (`SSL`, `SASL_SSL`) and SASL `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`. OpenSSL does
//! the cryptography — the library librdkafka already links — through the `openssl` crate:
//! TLS, PBKDF2, HMAC, the hashes (RFC 5802's SCRAM is computed here, in a few lines, and
//! checked against RFC 7677's example).

use std::path::PathBuf;

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use super::ClientProperties;

/// How the admin path reaches a broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// Wrap the connection in TLS.
    pub tls: bool,
    /// CA certificates (PEM) to trust (`ssl.ca.location`); the system's when unset.
    pub ca: Option<PathBuf>,
    /// Check the broker's certificate names its address (`ssl.endpoint.identification.algorithm`
    /// `https`, librdkafka's default; `none` turns it off).
    pub verify_hostname: bool,
    /// SASL authentication, for `SASL_PLAINTEXT` and `SASL_SSL`.
    pub sasl: Option<Sasl>,
}

/// SASL credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Sasl {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// `sasl.username`.
    pub username: String,
    /// `sasl.password`.
    pub password: String,
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sasl({:?}, {})", self.mechanism, self.username)
    }
}

/// A SASL mechanism this path speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `PLAIN` (only ever over TLS in production).
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl Mechanism {
    /// Kafka's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl Security {
    /// From librdkafka properties; an error names the property and what this path speaks.
    pub fn from_properties(p: &ClientProperties) -> Result<Security, String> {
        let protocol = p
            .get("security.protocol")
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_else(|| "PLAINTEXT".into());
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(format!(
                    "security.protocol={other}: one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                ))
            }
        };
        let sasl = if sasl {
            let mechanism = match p
                .get("sasl.mechanism")
                .or_else(|| p.get("sasl.mechanisms"))
                .map(String::as_str)
                .unwrap_or("GSSAPI")
            {
                "PLAIN" => Mechanism::Plain,
                "SCRAM-SHA-256" => Mechanism::ScramSha256,
                "SCRAM-SHA-512" => Mechanism::ScramSha512,
                other => {
                    return Err(format!(
                        "sasl.mechanism={other}: the admin path speaks PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512"
                    ))
                }
            };
            let get = |k: &str| {
                p.get(k)
                    .cloned()
                    .ok_or_else(|| format!("{k} is needed for sasl.mechanism={}", mechanism.name()))
            };
            Some(Sasl {
                mechanism,
                username: get("sasl.username")?,
                password: get("sasl.password")?,
            })
        } else {
            None
        };
        Ok(Security {
            tls,
            ca: p.get("ssl.ca.location").map(PathBuf::from),
            verify_hostname: p
                .get("ssl.endpoint.identification.algorithm")
                .is_none_or(|v| !v.eq_ignore_ascii_case("none")),
            sasl,
        })
    }
}

/// The client side of one SCRAM exchange (RFC 5802, without channel binding).
pub struct ScramClient {
    /// The hash (SHA-256 or SHA-512).
    digest: MessageDigest,
    /// The password.
    password: String,
    /// `n=USER,r=NONCE`.
    client_first_bare: String,
    /// The client nonce.
    nonce: String,
    /// Set by [`ScramClient::client_final`]: the salted password and the auth message, to
    /// check the server's signature.
    proof_state: Option<(Vec<u8>, String)>,
}

/// RFC 5802's SaltedPassword: PBKDF2 with the mechanism's HMAC (the client proves it in
/// an exchange; `AlterUserScramCredentials` takes it to create a credential).
pub fn salted_password(
    digest: MessageDigest,
    password: &str,
    salt: &[u8],
    iterations: usize,
) -> Result<Vec<u8>, String> {
    let mut salted = vec![0u8; digest.size()];
    openssl::pkcs5::pbkdf2_hmac(password.as_bytes(), salt, iterations, digest, &mut salted)
        .map_err(|e| e.to_string())?;
    Ok(salted)
}

fn hmac(digest: MessageDigest, key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let key = PKey::hmac(key).map_err(|e| e.to_string())?;
    let mut s = Signer::new(digest, &key).map_err(|e| e.to_string())?;
    s.update(data).map_err(|e| e.to_string())?;
    s.sign_to_vec().map_err(|e| e.to_string())
}

impl ScramClient {
    /// A client for `username`/`password` with `mechanism` (a SCRAM one) and a fresh nonce.
    pub fn new(mechanism: Mechanism, username: &str, password: &str) -> ScramClient {
        let mut raw = [0u8; 24];
        openssl::rand::rand_bytes(&mut raw).expect("OpenSSL's random generator");
        let nonce = openssl::base64::encode_block(&raw);
        Self::with_nonce(mechanism, username, password, &nonce)
    }

    /// As [`ScramClient::new`] with a given nonce (tests).
    pub fn with_nonce(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        nonce: &str,
    ) -> ScramClient {
        let digest = match mechanism {
            Mechanism::ScramSha512 => MessageDigest::sha512(),
            _ => MessageDigest::sha256(),
        };
        let user = username.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            digest,
            password: password.to_string(),
            client_first_bare: format!("n={user},r={nonce}"),
            nonce: nonce.to_string(),
            proof_state: None,
        }
    }

    /// The first message: no channel binding, no authorization id.
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// The final message, with the proof, for the server's first message.
    pub fn client_final(&mut self, server_first: &str) -> Result<String, String> {
        let field = |k: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(k))
                .ok_or_else(|| format!("the server's first SCRAM message has no `{k}`"))
        };
        let nonce = field("r=")?;
        if !nonce.starts_with(&self.nonce) {
            return Err("the server's SCRAM nonce does not extend ours".into());
        }
        let salt = openssl::base64::decode_block(field("s=")?)
            .map_err(|e| format!("the server's SCRAM salt: {e}"))?;
        let iterations: usize = field("i=")?
            .parse()
            .map_err(|e| format!("the server's SCRAM iteration count: {e}"))?;
        let salted = salted_password(self.digest, &self.password, &salt, iterations)?;
        let client_key = hmac(self.digest, &salted, b"Client Key")?;
        let stored_key =
            openssl::hash::hash(self.digest, &client_key).map_err(|e| e.to_string())?;
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac(self.digest, &stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        self.proof_state = Some((salted, auth_message));
        Ok(format!(
            "{without_proof},p={}",
            openssl::base64::encode_block(&proof)
        ))
    }

    /// Checks the server's final message: it proves the server knows the password too.
    pub fn verify_server_final(&self, server_final: &str) -> Result<(), String> {
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(format!("the server refused: {e}"));
        }
        let (salted, auth_message) = self
            .proof_state
            .as_ref()
            .ok_or("no client final message was sent")?;
        let server_key = hmac(self.digest, salted, b"Server Key")?;
        let expected = hmac(self.digest, &server_key, auth_message.as_bytes())?;
        let given = server_final
            .split(',')
            .find_map(|f| f.strip_prefix("v="))
            .ok_or("the server's final SCRAM message has no signature")?;
        if openssl::base64::decode_block(given).ok().as_deref() == Some(&expected[..]) {
            Ok(())
        } else {
            Err(
                "the server's SCRAM signature is wrong: not the server the password was set on"
                    .into(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3: SCRAM-SHA-256 for user `user`, password `pencil`.
    #[test]
    fn scram_sha_256_matches_rfc_7677() {
        let mut c = ScramClient::with_nonce(
            Mechanism::ScramSha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            c.client_final(server_first).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(c
            .verify_server_final("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .is_err());
        assert!(c.verify_server_final("e=invalid-proof").is_err());
        let mut other = ScramClient::with_nonce(Mechanism::ScramSha256, "u", "p", "abc");
        assert!(
            other.client_final("r=xyz,s=AAAA,i=1").is_err(),
            "a nonce not ours"
        );
    }

    #[test]
    fn security_from_librdkafka_properties() {
        let p = |pairs: &[(&str, &str)]| -> ClientProperties {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            Security::from_properties(&p(&[])).unwrap(),
            Security {
                verify_hostname: true,
                ..Default::default()
            }
        );
        let s = Security::from_properties(&p(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "alice"),
            ("sasl.password", "secret"),
            ("ssl.ca.location", "/ca.pem"),
            ("ssl.endpoint.identification.algorithm", "none"),
        ]))
        .unwrap();
        assert!(s.tls && !s.verify_hostname);
        assert_eq!(s.sasl.unwrap().mechanism, Mechanism::ScramSha512);
        let e = Security::from_properties(&p(&[("security.protocol", "SASL_SSL")])).unwrap_err();
        assert!(e.contains("GSSAPI"), "{e}");
        let e = Security::from_properties(&p(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
        ]))
        .unwrap_err();
        assert!(e.contains("sasl.username"), "{e}");
    }
}
