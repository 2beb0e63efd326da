//! turmoil's TCP and clock behind the services' transport seams.

use krrish_wire::{Clock, Connect, Listen};
use std::io;

/// Simulated time, shared by every host.
pub struct TurmoilClock;

impl Clock for TurmoilClock {
    fn now_ms(&self) -> u64 {
        turmoil::sim_elapsed()
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

pub struct TurmoilConnect;

impl Connect for TurmoilConnect {
    type Stream = turmoil::net::TcpStream;
    async fn connect(&self, addr: &str) -> io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(addr).await
    }
}

pub struct TurmoilListen(pub turmoil::net::TcpListener);

impl Listen for TurmoilListen {
    type Stream = turmoil::net::TcpStream;
    async fn accept(&mut self) -> io::Result<Self::Stream> {
        Ok(self.0.accept().await?.0)
    }
}
