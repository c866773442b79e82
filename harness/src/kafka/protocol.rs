//! The admin requests librdkafka lacks, on the kafka-protocol crate: one blocking TCP
//! connection per broker, the API versions negotiated once per connection (ApiVersions),
//! requests routed where Kafka wants them (the controller for reassignments and elections,
//! a broker for its own configs and log dirs), errors mapped to their Kafka names.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use thiserror::Error;

use super::security::{Mechanism, Sasl, ScramClient, Security};

/// TLS over `tcp` to `addr`, trusting `security.ca` (or the system's CAs).
fn tls(
    addr: &str,
    tcp: TcpStream,
    security: &Security,
) -> Result<openssl::ssl::SslStream<TcpStream>, AdminError> {
    use openssl::ssl::{SslConnector, SslMethod};
    let fail = |message: String| AdminError::Protocol {
        what: format!("TLS to {addr}"),
        message,
    };
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| fail(e.to_string()))?;
    if let Some(ca) = &security.ca {
        b.set_ca_file(ca)
            .map_err(|e| fail(format!("ssl.ca.location {}: {e}", ca.display())))?;
    }
    let mut config = b.build().configure().map_err(|e| fail(e.to_string()))?;
    if !security.verify_hostname {
        config.set_verify_hostname(false);
    }
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    config.connect(host, tcp).map_err(|e| fail(e.to_string()))
}

/// Why an admin request did not do what was asked.
#[derive(Debug, Error)]
pub enum AdminError {
    /// No TCP connection to the broker.
    #[error("cannot connect to broker {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connection broke or timed out mid-request.
    #[error("broker {addr}: {source}")]
    Io {
        /// `host:port`.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The broker does not speak a version of the request this client knows.
    #[error("broker {addr} does not support {api:?} in a version this client speaks (broker: {broker_min}..={broker_max}, client: {client_min}..={client_max})")]
    Unsupported {
        /// `host:port`.
        addr: String,
        /// The request.
        api: ApiKey,
        /// Lowest version the broker speaks (-1: not at all).
        broker_min: i16,
        /// Highest version the broker speaks (-1: not at all).
        broker_max: i16,
        /// Lowest version this client speaks.
        client_min: i16,
        /// Highest version this client speaks.
        client_max: i16,
    },
    /// The bytes could not be encoded or decoded.
    #[error("{what}: {message}")]
    Protocol {
        /// Which request or response.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// Kafka answered with an error code.
    #[error("{request}: {name} (error {code}){}{}", .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(), hint_for(*.code).map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Kafka {
        /// Which request, and for what (a topic/partition, a resource).
        request: String,
        /// Kafka's error code.
        code: i16,
        /// Kafka's name for it (e.g. `NotController`).
        name: String,
        /// The broker's message, when it sent one.
        message: Option<String>,
    },
    /// No broker could be asked.
    #[error("no broker answered: {0}")]
    NoBroker(String),
    /// Waited too long.
    #[error("{0}")]
    Timeout(String),
}

/// Error codes an operator meets during reassignments, and what to do about them.
fn hint_for(code: i16) -> Option<&'static str> {
    Some(match code {
        41 => "the controller moved; the request is retried at the new one",
        39 => "a broker id in the plan is not registered: start it, or check the id map",
        60 => "a reassignment of that partition is already in flight: wait for it or cancel it",
        85 => "no reassignment of that partition is in flight (nothing to cancel)",
        84 => "the preferred replica already leads (not an error for an election)",
        83 => "the preferred replica is not in sync yet: wait for the ISR",
        3 => "no such topic or partition",
        38 => "the replication factor asked is larger than the live brokers",
        _ => return None,
    })
}

impl AdminError {
    /// A Kafka error from a response code (`None` for 0).
    pub fn from_code(
        request: impl Into<String>,
        code: i16,
        message: Option<&StrBytes>,
    ) -> Option<AdminError> {
        let err = ResponseError::try_from_code(code)?;
        Some(AdminError::Kafka {
            request: request.into(),
            code,
            name: err.to_string(),
            message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
        })
    }

    /// Kafka's error code, when this is a Kafka error.
    pub fn code(&self) -> Option<i16> {
        match self {
            AdminError::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Kafka's `NOT_CONTROLLER`.
pub const NOT_CONTROLLER: i16 = 41;

/// The bytes' way to a broker: plain TCP, or TLS over it.
enum Wire {
    /// `PLAINTEXT`, `SASL_PLAINTEXT`.
    Plain(TcpStream),
    /// `SSL`, `SASL_SSL`.
    Tls(Box<openssl::ssl::SslStream<TcpStream>>),
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read(buf),
            Wire::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(s) => s.write(buf),
            Wire::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Wire::Plain(s) => s.flush(),
            Wire::Tls(s) => s.flush(),
        }
    }
}

/// One connection to one broker, with the versions it speaks.
pub struct BrokerConnection {
    addr: String,
    stream: Wire,
    correlation: i32,
    /// api key → (min, max) the broker speaks.
    versions: HashMap<i16, (i16, i16)>,
}

impl std::fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BrokerConnection({})", self.addr)
    }
}

const CLIENT_ID: &str = "kmh-admin";

impl BrokerConnection {
    /// Connects to `addr` (`host:port`) and asks which API versions it speaks.
    pub fn connect(addr: &str, timeout: Duration) -> Result<BrokerConnection, AdminError> {
        Self::connect_secured(addr, timeout, &Security::default())
    }

    /// Connects to `addr` with TLS and SASL as `security` says, then asks which API
    /// versions it speaks (before SASL: Kafka answers ApiVersions unauthenticated).
    pub fn connect_secured(
        addr: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<BrokerConnection, AdminError> {
        let connect_err = |source| AdminError::Connect {
            addr: addr.to_string(),
            source,
        };
        let sock = addr
            .to_socket_addrs()
            .map_err(connect_err)?
            .next()
            .ok_or_else(|| AdminError::NoBroker(format!("{addr} resolves to nothing")))?;
        let stream = TcpStream::connect_timeout(&sock, timeout).map_err(connect_err)?;
        let io = |source| AdminError::Io {
            addr: addr.to_string(),
            source,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let stream = if security.tls {
            Wire::Tls(Box::new(tls(addr, stream, security)?))
        } else {
            Wire::Plain(stream)
        };
        let mut conn = BrokerConnection {
            addr: addr.to_string(),
            stream,
            correlation: 0,
            versions: HashMap::new(),
        };
        // ApiVersions v0 is understood by every broker; its response header is always v0
        let resp: ApiVersionsResponse = conn.exchange(&ApiVersionsRequest::default(), 0)?;
        if let Some(e) = AdminError::from_code("ApiVersions", resp.error_code, None) {
            return Err(e);
        }
        conn.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        if let Some(sasl) = &security.sasl {
            conn.authenticate(sasl)?;
        }
        Ok(conn)
    }

    /// SASL: the handshake names the mechanism, then its messages go in SaslAuthenticate
    /// requests (KIP-152).
    fn authenticate(&mut self, sasl: &Sasl) -> Result<(), AdminError> {
        let refused = |message: String| AdminError::Kafka {
            request: "SaslAuthenticate".into(),
            code: 58,
            name: "SaslAuthenticationFailed".into(),
            message: Some(message),
        };
        let hs = self.call(
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str(sasl.mechanism.name())),
        )?;
        if let Some(e) = AdminError::from_code("SaslHandshake", hs.error_code, None) {
            return Err(e);
        }
        let mut round = |bytes: Vec<u8>| -> Result<Vec<u8>, AdminError> {
            let r =
                self.call(&SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)))?;
            if let Some(e) =
                AdminError::from_code("SaslAuthenticate", r.error_code, r.error_message.as_ref())
            {
                return Err(e);
            }
            Ok(r.auth_bytes.to_vec())
        };
        match sasl.mechanism {
            Mechanism::Plain => {
                round(format!("\0{}\0{}", sasl.username, sasl.password).into_bytes())?;
            }
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                let mut scram = ScramClient::new(sasl.mechanism, &sasl.username, &sasl.password);
                let first = round(scram.client_first().into_bytes())?;
                let last = scram
                    .client_final(&String::from_utf8_lossy(&first))
                    .map_err(refused)?;
                let server_final = round(last.into_bytes())?;
                scram
                    .verify_server_final(&String::from_utf8_lossy(&server_final))
                    .map_err(refused)?;
            }
        }
        Ok(())
    }

    /// `host:port` of the broker.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `req` in the highest version both sides speak and returns the response.
    pub fn call<R: Request>(&mut self, req: &R) -> Result<R::Response, AdminError> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| AdminError::Protocol {
            what: format!("api key {}", R::KEY),
            message: "unknown to kafka-protocol".into(),
        })?;
        let (bmin, bmax) = self.versions.get(&R::KEY).copied().unwrap_or((-1, -1));
        let version = bmax.min(R::VERSIONS.max);
        if bmax < 0 || version < bmin.max(R::VERSIONS.min) {
            return Err(AdminError::Unsupported {
                addr: self.addr.clone(),
                api,
                broker_min: bmin,
                broker_max: bmax,
                client_min: R::VERSIONS.min,
                client_max: R::VERSIONS.max,
            });
        }
        self.exchange(req, version)
    }

    /// One request/response round trip in `version`.
    fn exchange<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response, AdminError> {
        let what = format!("{:?} v{version}", ApiKey::try_from(R::KEY).ok());
        let proto = |message: String| AdminError::Protocol {
            what: what.clone(),
            message,
        };
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(|e| proto(format!("encoding the header: {e}")))?;
        req.encode(&mut body, version)
            .map_err(|e| proto(format!("encoding: {e}")))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        let io = |source| AdminError::Io {
            addr: self.addr.clone(),
            source,
        };
        self.stream.write_all(&frame).map_err(io)?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).map_err(io)?;
        let len = i32::from_be_bytes(len);
        if !(0..=256 << 20).contains(&len) {
            return Err(proto(format!("response of {len} bytes")));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf).map_err(io)?;
        let mut bytes = Bytes::from(buf);
        let rh = ResponseHeader::decode(&mut bytes, R::Response::header_version(version))
            .map_err(|e| proto(format!("decoding the response header: {e}")))?;
        if rh.correlation_id != self.correlation {
            return Err(proto(format!(
                "correlation id {} in the answer to request {}",
                rh.correlation_id, self.correlation
            )));
        }
        let resp = R::Response::decode(&mut bytes, version)
            .map_err(|e| proto(format!("decoding: {e}")))?;
        if bytes.has_remaining() {
            tracing::debug!(
                "{what}: {} bytes left after the response",
                bytes.remaining()
            );
        }
        Ok(resp)
    }
}
