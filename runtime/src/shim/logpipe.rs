//! The containers' stdout and stderr: pipes the shim reads in its event
//! loop and writes to the container's log in the CRI format, rotated by
//! size (`crate::logs`). The container never holds the log file, so it
//! cannot make it grow past its bound.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::logs::{self, Stream};

use super::{io, Error, Shim};

/// The most the shim copies from one pipe per wake-up: a container that
/// prints without pause must not keep the event loop from its signals and
/// timers (poll wakes it again at once while data is left).
const MAX_PER_WAKE: usize = 1 << 20;
const CHUNK: usize = 64 << 10;

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
        let keep_from = if shim.mutant == Some(crate::mutants::Mutant::PreviousLogLost) {
            restart
        } else {
            restart.saturating_sub(1)
        };
        logs::prune(&dir, keep_from);
        let max_size = if shim.mutant == Some(crate::mutants::Mutant::UnboundedLogs) {
            u64::MAX
        } else {
            shim.config.log_max_size
        };
        let writer = logs::Writer::create(
            logs::log_path(&dir, restart),
            max_size,
            shim.config.log_max_files,
        )?;
        let (out_r, out_w) = crate::sandbox::pipe()?;
        let (err_r, err_w) = crate::sandbox::pipe()?;
        for fd in [&out_r, &err_r] {
            crate::sys::set_nonblocking(fd).map_err(io("log pipe nonblocking"))?;
        }
        let log = CtrLog {
            writer,
            pipes: vec![(Stream::Stdout, out_r), (Stream::Stderr, err_r)],
        };
        Ok((log, out_w, err_w))
    }

    /// The path of this start's log.
    pub(super) fn path(&self) -> &std::path::Path {
        self.writer.path()
    }

    pub(super) fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.pipes.iter().map(|(_, fd)| fd.as_raw_fd())
    }

    /// Copies what is in the pipes to the log; a pipe at EOF (every
    /// process holding its write end is gone) is closed. Returns write errors.
    pub(super) fn pump(&mut self) -> Result<(), logs::Error> {
        self.pump_at_most(MAX_PER_WAKE).map(|_| ())
    }

    /// [`CtrLog::pump`] copying at most `limit` bytes (rounded up to a
    /// read) from each pipe; returns how much it copied in all.
    fn pump_at_most(&mut self, limit: usize) -> Result<usize, logs::Error> {
        let mut total = 0;
        let mut buf = vec![0u8; CHUNK];
        let mut open = Vec::new();
        for (stream, fd) in std::mem::take(&mut self.pipes) {
            let mut copied = 0;
            let eof = loop {
                if copied >= limit {
                    break false;
                }
                match nix::unistd::read(&fd, &mut buf) {
                    Ok(0) => break true,
                    Ok(n) => {
                        copied += n;
                        self.writer.write(stream, &buf[..n])?;
                    }
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(nix::errno::Errno::EAGAIN) => break false,
                    Err(_) => break true,
                }
            };
            total += copied;
            if eof {
                self.writer.flush(stream)?;
            } else {
                open.push((stream, fd));
            }
        }
        self.pipes = open;
        Ok(total)
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
                    eprintln!("log of {}: {}", c.spec.name, crate::error::chain(&e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn one_wake_copies_at_most_its_share() {
        let tmp = tempfile::tempdir().unwrap();
        let writer = logs::Writer::create(logs::log_path(tmp.path(), 0), 1 << 20, 2).unwrap();
        let (r, w) = crate::sandbox::pipe().unwrap();
        // 1 MiB is the default pipe-max-size.
        let size = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20)).unwrap();
        assert!(size >= 1 << 19, "pipe size {size}");
        crate::sys::set_nonblocking(&r).unwrap();
        let mut w = std::fs::File::from(w);
        let line = [b'y'; 1023];
        for _ in 0..512 {
            w.write_all(&line).unwrap();
            w.write_all(b"\n").unwrap();
        }
        let mut log = CtrLog {
            writer,
            pipes: vec![(Stream::Stdout, r)],
        };
        // A writer that never pauses would keep a loop without a share busy.
        let first = log.pump_at_most(CHUNK).unwrap();
        assert_eq!(first, CHUNK);
        assert_eq!(log.pipes.len(), 1, "the pipe is still open");
        let rest = log.pump_at_most(usize::MAX).unwrap();
        assert_eq!(first + rest, 512 * 1024);
        drop(w);
        assert_eq!(log.pump_at_most(usize::MAX).unwrap(), 0);
        assert!(log.pipes.is_empty(), "EOF closes the pipe");
        assert_eq!(
            logs::read(&logs::log_path(tmp.path(), 0)).unwrap().len(),
            512
        );
    }
}
