//! Readiness probes that speak each server's own protocol, so "ready" means "answers a real
//! request", not merely "the port is open" (both servers open their ports before they can
//! serve). Hand-written over `TcpStream` because xtask must build in seconds, before the
//! Kafka and CQL client crates: one Kafka `Metadata` request, and the CQL native protocol v4
//! handshake followed by `SELECT release_version FROM system.local`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::error::{Context, Error, Result, bail};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn connect(addr: &str) -> Result<TcpStream> {
    let sock: SocketAddr = addr
        .parse()
        .with_context(|| format!("{addr} is not an ip:port address"))?;
    let stream = TcpStream::connect_timeout(&sock, CONNECT_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .context("socket")?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .context("socket")?;
    stream.set_nodelay(true).context("socket")?;
    Ok(stream)
}

/// `GET path` over HTTP/1.0 from `addr` (`host:port`): the status code and the body. The error
/// says in words what failed (for the messages of the pipeline's and Prometheus' waits).
pub fn http_get(addr: &str, path: &str) -> std::result::Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("not answering ({e})"))?;
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(|e| format!("request failed ({e})"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("no response ({e})"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Whether anything accepts TCP connections on `addr` (to spot a port taken by a stranger).
pub fn port_open(addr: &str) -> bool {
    connect(addr).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Kafka

/// Metadata v4 (non-flexible encoding; every Kafka 4.x broker serves it).
const METADATA_API_KEY: i16 = 3;
const METADATA_VERSION: i16 = 4;

/// Sends a Kafka `Metadata` request for no topics and reports the live brokers. The broker is
/// ready once it lists itself: by then it has registered with the controller and is unfenced.
pub fn kafka(addr: &str) -> Result<String> {
    let mut stream = connect(addr)?;
    let correlation_id = 7_i32;
    let mut req = Vec::new();
    req.extend_from_slice(&METADATA_API_KEY.to_be_bytes());
    req.extend_from_slice(&METADATA_VERSION.to_be_bytes());
    req.extend_from_slice(&correlation_id.to_be_bytes());
    put_i16_string(&mut req, "auditflow-xtask");
    req.extend_from_slice(&0_i32.to_be_bytes()); // topics: empty array, i.e. none
    req.push(0); // allow_auto_topic_creation: false
    let mut frame = (req.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&req);
    stream
        .write_all(&frame)
        .context("sending a Metadata request")?;

    let mut len = [0_u8; 4];
    stream
        .read_exact(&mut len)
        .context("reading the Metadata response")?;
    let len = i32::from_be_bytes(len);
    if !(8..=1 << 20).contains(&len) {
        bail!("implausible Metadata response length {len}");
    }
    let mut body = vec![0_u8; len as usize];
    stream
        .read_exact(&mut body)
        .context("reading the Metadata response")?;

    let mut r = Reader::new(&body);
    if r.i32()? != correlation_id {
        bail!("Metadata response for another request");
    }
    let _throttle_ms = r.i32()?;
    let brokers = r.i32()?;
    for _ in 0..brokers.max(0) {
        let _node_id = r.i32()?;
        let _host = r.i16_string()?;
        let _port = r.i32()?;
        let _rack = r.i16_string()?;
    }
    let cluster_id = r.i16_string()?.unwrap_or_default();
    if brokers < 1 {
        bail!("the broker answers but lists no live broker yet");
    }
    Ok(format!("{brokers} broker(s), cluster {cluster_id}"))
}

fn put_i16_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as i16).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// CQL native protocol v4

const CQL_VERSION: u8 = 0x04;
const OP_ERROR: u8 = 0x00;
const OP_STARTUP: u8 = 0x01;
const OP_READY: u8 = 0x02;
const OP_AUTHENTICATE: u8 = 0x03;
const OP_QUERY: u8 = 0x07;
const OP_RESULT: u8 = 0x08;
const OP_AUTH_RESPONSE: u8 = 0x0F;
const OP_AUTH_SUCCESS: u8 = 0x10;
const FLAG_TRACING: u8 = 0x02;
const FLAG_CUSTOM_PAYLOAD: u8 = 0x04;
const FLAG_WARNING: u8 = 0x08;
const RESULT_ROWS: i32 = 0x0002;
const CONSISTENCY_ONE: u16 = 0x0001;

/// Credentials used when the server asks for authentication (the local stack run with
/// `AUDITFLOW_CASSANDRA_AUTH=password` has Cassandra's default superuser).
fn cql_credentials() -> (String, String) {
    let user = std::env::var("AUDITFLOW_CQL_USERNAME").unwrap_or_else(|_| "cassandra".into());
    let pass = std::env::var("AUDITFLOW_CQL_PASSWORD").unwrap_or_else(|_| "cassandra".into());
    (user, pass)
}

/// STARTUP (authenticating if asked), then `SELECT release_version FROM system.local`;
/// returns e.g. `Cassandra 5.0.9`.
pub fn cql(addr: &str) -> Result<String> {
    let mut stream = connect(addr)?;

    let mut startup = Vec::new();
    startup.extend_from_slice(&1_u16.to_be_bytes());
    put_u16_string(&mut startup, "CQL_VERSION");
    put_u16_string(&mut startup, "3.0.0");
    send_cql(&mut stream, OP_STARTUP, &startup)?;
    match read_cql(&mut stream)? {
        (OP_READY, _) => {}
        (OP_AUTHENTICATE, _) => {
            let (user, pass) = cql_credentials();
            let token = format!("\0{user}\0{pass}");
            let mut body = (token.len() as i32).to_be_bytes().to_vec();
            body.extend_from_slice(token.as_bytes());
            send_cql(&mut stream, OP_AUTH_RESPONSE, &body)?;
            match read_cql(&mut stream)? {
                (OP_AUTH_SUCCESS, _) => {}
                (op, body) => return Err(cql_unexpected("AUTH_RESPONSE", op, &body)),
            }
        }
        (op, body) => return Err(cql_unexpected("STARTUP", op, &body)),
    }

    let mut query = Vec::new();
    let text = "SELECT release_version FROM system.local";
    query.extend_from_slice(&(text.len() as i32).to_be_bytes());
    query.extend_from_slice(text.as_bytes());
    query.extend_from_slice(&CONSISTENCY_ONE.to_be_bytes());
    query.push(0); // no query flags
    send_cql(&mut stream, OP_QUERY, &query)?;
    let body = match read_cql(&mut stream)? {
        (OP_RESULT, body) => body,
        (op, body) => return Err(cql_unexpected("QUERY", op, &body)),
    };
    let version = first_text_cell(&body).context("reading system.local")?;
    Ok(format!("Cassandra {version}"))
}

fn put_u16_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u16).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn send_cql(stream: &mut TcpStream, opcode: u8, body: &[u8]) -> Result<()> {
    let mut frame = vec![CQL_VERSION, 0, 0, 0, opcode];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).context("sending a CQL request")
}

/// Reads one response frame; returns its opcode and body with any warnings etc. skipped.
fn read_cql(stream: &mut TcpStream) -> Result<(u8, Vec<u8>)> {
    let mut header = [0_u8; 9];
    stream
        .read_exact(&mut header)
        .context("reading a CQL response")?;
    if header[0] != 0x80 | CQL_VERSION {
        bail!("not a CQL v4 response (version byte {:#04x})", header[0]);
    }
    let flags = header[1];
    let opcode = header[4];
    let len = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
    if len > 16 << 20 {
        bail!("implausible CQL frame length {len}");
    }
    let mut body = vec![0_u8; len as usize];
    stream
        .read_exact(&mut body)
        .context("reading a CQL response")?;
    let mut r = Reader::new(&body);
    if flags & FLAG_TRACING != 0 {
        r.take(16)?;
    }
    if flags & FLAG_WARNING != 0 {
        for _ in 0..r.u16()? {
            r.u16_string()?;
        }
    }
    if flags & FLAG_CUSTOM_PAYLOAD != 0 {
        for _ in 0..r.u16()? {
            r.u16_string()?;
            r.bytes()?;
        }
    }
    let rest = r.rest().to_vec();
    Ok((opcode, rest))
}

fn cql_unexpected(request: &str, opcode: u8, body: &[u8]) -> Error {
    if opcode == OP_ERROR {
        let mut r = Reader::new(body);
        if let (Ok(code), Ok(message)) = (r.i32(), r.u16_string()) {
            return Error::new(format!(
                "{request} failed: {message} (CQL error {code:#06x})"
            ));
        }
    }
    Error::new(format!(
        "{request} answered with unexpected opcode {opcode:#04x}"
    ))
}

/// The first cell of the first row of a Rows result, as text.
fn first_text_cell(body: &[u8]) -> Result<String> {
    let mut r = Reader::new(body);
    let kind = r.i32()?;
    if kind != RESULT_ROWS {
        bail!("expected rows, got result kind {kind}");
    }
    let flags = r.i32()?;
    let columns = r.i32()?;
    if flags & 0x0002 != 0 {
        r.bytes()?; // paging state
    }
    if flags & 0x0004 == 0 {
        let global_table_spec = flags & 0x0001 != 0;
        if global_table_spec {
            r.u16_string()?;
            r.u16_string()?;
        }
        for _ in 0..columns {
            if !global_table_spec {
                r.u16_string()?;
                r.u16_string()?;
            }
            r.u16_string()?; // column name
            skip_type(&mut r)?;
        }
    }
    if r.i32()? < 1 {
        bail!("no row");
    }
    let cell = r.bytes()?.ok_or_else(|| Error::new("null cell"))?;
    Ok(String::from_utf8_lossy(cell).into_owned())
}

/// Skips a column type `[option]`; collections nest, user types and tuples do not occur here.
fn skip_type(r: &mut Reader<'_>) -> Result<()> {
    match r.u16()? {
        0x0000 => {
            r.u16_string()?;
        }
        0x0020 | 0x0022 => skip_type(r)?,
        0x0021 => {
            skip_type(r)?;
            skip_type(r)?;
        }
        id @ (0x0030 | 0x0031) => bail!("unexpected column type {id:#06x}"),
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

/// Big-endian cursor over a response body; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            bail!("response ends early");
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn rest(&self) -> &'a [u8] {
        self.buf
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// CQL `[string]`: u16 length, then UTF-8.
    fn u16_string(&mut self) -> Result<String> {
        let len = self.u16()? as usize;
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    /// Kafka nullable `STRING`: i16 length (-1 is null), then UTF-8.
    fn i16_string(&mut self) -> Result<Option<String>> {
        let len = self.u16()? as i16;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(self.take(len as usize)?).into_owned(),
        ))
    }

    /// CQL `[bytes]`: i32 length (negative is null), then the bytes.
    fn bytes(&mut self) -> Result<Option<&'a [u8]>> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(len as usize)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_release_version_from_a_rows_result() {
        // kind=Rows, flags=global spec, 1 column "release_version" varchar, 1 row "5.0.9".
        let mut b = Vec::new();
        b.extend_from_slice(&RESULT_ROWS.to_be_bytes());
        b.extend_from_slice(&1_i32.to_be_bytes());
        b.extend_from_slice(&1_i32.to_be_bytes());
        put_u16_string(&mut b, "system");
        put_u16_string(&mut b, "local");
        put_u16_string(&mut b, "release_version");
        b.extend_from_slice(&0x000D_u16.to_be_bytes());
        b.extend_from_slice(&1_i32.to_be_bytes());
        b.extend_from_slice(&5_i32.to_be_bytes());
        b.extend_from_slice(b"5.0.9");
        assert_eq!(first_text_cell(&b).unwrap(), "5.0.9");
        assert!(first_text_cell(&b[..b.len() - 1]).is_err());
    }
}
