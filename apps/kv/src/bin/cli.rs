//! sluice-kv-cli: PUT, GET and DEL against a sluice-kv server from any host, over the
//! kernel's UDP sockets. Each run opens a session, sends one request and closes it.

use clap::{Parser, Subcommand};
use sluice_kv::client::Client;
use sluice_kv::protocol::{Operation, Status, DEFAULT_PORT, MAX_KEY_LEN, MAX_VALUE_LEN};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

/// A client of sluice-kv over the kernel's UDP sockets (docs/protocol.md).
#[derive(Parser)]
#[command(name = "sluice-kv-cli", version)]
struct Cli {
    /// The server: IP:PORT, or IP alone for port 7000 ([IPv6]:PORT for IPv6)
    #[arg(long, short, value_parser = server)]
    server: SocketAddr,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store VALUE under KEY
    Put { key: String, value: String },
    /// Print the value stored under KEY (exit status 1 if there is none)
    Get { key: String },
    /// Remove KEY (exit status 1 if there was none)
    Del { key: String },
}

fn server(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| {
            text.parse::<IpAddr>()
                .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
        })
        .map_err(|_| format!("'{text}' is not IP:PORT or IP (e.g. 10.0.0.1:7000)"))
}

fn check(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!(
            "a key is 1 to {MAX_KEY_LEN} bytes, not {}",
            key.len()
        ));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(format!(
            "a value is at most {MAX_VALUE_LEN} bytes, not {}",
            value.len()
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (op, key) = match &cli.command {
        Command::Put { key, value } => (Operation::Put(key.as_bytes(), value.as_bytes()), key),
        Command::Get { key } => (Operation::Get(key.as_bytes()), key),
        Command::Del { key } => (Operation::Del(key.as_bytes()), key),
    };
    let value = match &cli.command {
        Command::Put { value, .. } => value.as_str(),
        _ => "",
    };
    if let Err(e) = check(key, value) {
        eprintln!("sluice-kv-cli: error: {e}");
        return ExitCode::from(2);
    }
    let outcome = Client::connect(cli.server).and_then(|mut client| {
        let results = client.request(&[op])?;
        client.close()?;
        Ok(results)
    });
    let results = match outcome {
        Ok(results) => results,
        Err(e) => {
            eprintln!("sluice-kv-cli: error: {}: {e}", cli.server);
            return ExitCode::FAILURE;
        }
    };
    match results.first() {
        Some((Status::Ok, value)) => {
            if let Command::Get { .. } = cli.command {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(value).and_then(|()| out.write_all(b"\n"));
            } else {
                println!("OK");
            }
            ExitCode::SUCCESS
        }
        Some((Status::NotFound, _)) => {
            eprintln!("sluice-kv-cli: {key}: not found");
            ExitCode::FAILURE
        }
        Some((status, _)) => {
            eprintln!("sluice-kv-cli: {key}: the server answered {status:?}");
            ExitCode::FAILURE
        }
        None => {
            eprintln!("sluice-kv-cli: the server's answer has no result");
            ExitCode::FAILURE
        }
    }
}
