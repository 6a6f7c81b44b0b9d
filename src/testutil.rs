//! A minimal JWKS server for the core's tests: std::net on 127.0.0.1, one thread per connection,
//! a request counter, and a switch to make it fail.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::sign::SigningKey;

pub(crate) struct JwksServer {
    pub base: String,
    pub hits: Arc<AtomicUsize>,
    pub down: Arc<AtomicBool>,
    keys: Arc<Mutex<Vec<Value>>>,
}

impl JwksServer {
    pub(crate) fn start(keys: &[&SigningKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = JwksServer {
            base,
            hits: Arc::default(),
            down: Arc::default(),
            keys: Arc::new(Mutex::new(
                keys.iter().map(|k| k.public_jwk().clone()).collect(),
            )),
        };
        let (hits, down, published) = (
            server.hits.clone(),
            server.down.clone(),
            server.keys.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (hits, down, published) = (hits.clone(), down.clone(), published.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if line == "\r\n" {
                            hits.fetch_add(1, Ordering::SeqCst);
                            if down.load(Ordering::SeqCst) {
                                return; // closes the connection without an answer
                            }
                            let body = json!({ "keys": *published.lock() }).to_string();
                            let response = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=300\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if (&stream).write_all(response.as_bytes()).is_err() {
                                return;
                            }
                        }
                        line.clear();
                    }
                });
            }
        });
        server
    }

    pub(crate) fn jwks_uri(&self) -> String {
        format!("{}/certs", self.base)
    }

    pub(crate) fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock() = keys.iter().map(|k| k.public_jwk().clone()).collect();
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A server that hands each request to `answer` with its request line (`GET /path HTTP/1.1`)
/// and the connection to write the answer to; std::net on 127.0.0.1, one thread per connection.
pub(crate) struct RawServer {
    pub base: String,
    pub hits: Arc<AtomicUsize>,
}

type Answer = dyn Fn(&str, &mut std::net::TcpStream) + Send + Sync;

impl RawServer {
    pub(crate) fn start(
        answer: impl Fn(&str, &mut std::net::TcpStream) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits: Arc<AtomicUsize> = Arc::default();
        let answer: Arc<Answer> = Arc::new(answer);
        let counter = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (hits, answer) = (counter.clone(), answer.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut request_line = String::new();
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if request_line.is_empty() {
                            request_line = line.trim_end().to_string();
                        } else if line == "\r\n" {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let mut stream = stream.try_clone().unwrap();
                            answer(&request_line, &mut stream);
                            return; // one request per connection: every answer closes it
                        }
                        line.clear();
                    }
                });
            }
        });
        RawServer { base, hits }
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Writes a complete answer that closes the connection.
pub(crate) fn respond(
    stream: &mut std::net::TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
) {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    let _ = stream.write_all(out.as_bytes());
}
