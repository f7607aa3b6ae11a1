//! The containers' stdout and stderr: pipes the shim reads in its event
//! loop and writes to the container's log in the CRI format, rotated by
//! size (`crate::logs`). The container never holds the log file, so it
//! cannot make it grow past its bound.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::logs::{self, Stream};

use super::{Error, Shim};

/// One container start's log and the read ends of its pipes.
pub(super) struct CtrLog {
    writer: logs::Writer,
    pipes: Vec<(Stream, OwnedFd)>,
}

impl CtrLog {
    /// The log of start number `restart` (the restart count), with the two
    /// pipes whose write ends become the container's stdout and stderr.
    pub(super) fn open(
        shim: &Shim,
        name: &str,
        restart: u32,
    ) -> Result<(CtrLog, OwnedFd, OwnedFd), Error> {
        let dir = shim.dir.log_dir(name);
        // The kubelet keeps the logs of the current and the previous start.
        logs::prune(&dir, restart.saturating_sub(1));
        let max_size = if shim.mutant == Some(crate::mutants::Mutant::UnboundedLogs) {
            u64::MAX
        } else {
            shim.config.log_max_size
        };
        let writer = logs::Writer::create(
            logs::log_path(&dir, restart),
            max_size,
            shim.config.log_max_files,
        )
        .map_err(|e| Error::Other(e.to_string()))?;
        let (out_r, out_w) = crate::sandbox::pipe()?;
        let (err_r, err_w) = crate::sandbox::pipe()?;
        for fd in [&out_r, &err_r] {
            crate::sys::set_nonblocking(fd).map_err(|e| Error::Other(e.to_string()))?;
        }
        let log = CtrLog {
            writer,
            pipes: vec![(Stream::Stdout, out_r), (Stream::Stderr, err_r)],
        };
        Ok((log, out_w, err_w))
    }

    pub(super) fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.pipes.iter().map(|(_, fd)| fd.as_raw_fd())
    }

    /// Copies what is in the pipes to the log; a pipe at EOF (every
    /// process holding its write end is gone) is closed. Returns write errors.
    pub(super) fn pump(&mut self) -> Result<(), logs::Error> {
        let mut buf = vec![0u8; 64 << 10];
        let mut open = Vec::new();
        for (stream, fd) in std::mem::take(&mut self.pipes) {
            let eof = loop {
                match nix::unistd::read(&fd, &mut buf) {
                    Ok(0) => break true,
                    Ok(n) => self.writer.write(stream, &buf[..n])?,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(nix::errno::Errno::EAGAIN) => break false,
                    Err(_) => break true,
                }
            };
            if eof {
                self.writer.flush(stream)?;
            } else {
                open.push((stream, fd));
            }
        }
        self.pipes = open;
        Ok(())
    }
}

impl Shim {
    /// The read ends of every container's log pipes, for the event loop's poll.
    pub(super) fn log_fds(&self) -> Vec<RawFd> {
        self.ctrs
            .iter()
            .filter_map(|c| c.log.as_ref())
            .flat_map(|l| l.fds())
            .collect()
    }

    /// Moves what the containers wrote into their logs.
    pub(super) fn pump_logs(&mut self) {
        for c in &mut self.ctrs {
            if let Some(log) = c.log.as_mut() {
                if let Err(e) = log.pump() {
                    eprintln!("log of {}: {e}", c.spec.name);
                }
            }
        }
    }
}
