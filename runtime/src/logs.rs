//! Container logs as the kubelet keeps them: the CRI log format, one line
//! per record (`2026-12-05T10:00:00.123456789Z stdout F text`, tag `P` for
//! a partial line cut at [`MAX_LINE`]), one file per container start
//! (`<container>/<restart>.log`) rotated by size into `<restart>.log.1`,
//! `.2`, … with at most `max_files` files per start. The shim writes them
//! from the container's stdout/stderr pipes; `podlab logs` reads them back.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use k8s_openapi::jiff::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The kubelet's defaults: `containerLogMaxSize` 10Mi, `containerLogMaxFiles` 5.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;
pub const DEFAULT_MAX_FILES: usize = 5;
/// A line longer than this is written in pieces tagged `P` (containerd's
/// `max_container_log_line_size` is 16 KiB).
pub const MAX_LINE: usize = 16 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The log file of one start (`restart` = the container's restart count).
pub fn log_path(dir: &Path, restart: u32) -> PathBuf {
    dir.join(format!("{restart}.log"))
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The current time in RFC 3339 with nanoseconds, as CRI log lines carry it.
fn now() -> Timestamp {
    timestamp(std::time::SystemTime::now())
}

/// A system time as a timestamp (k8s-openapi's jiff has no std conversion).
pub fn timestamp(t: std::time::SystemTime) -> Timestamp {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp::new(d.as_secs() as i64, d.subsec_nanos() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Writes one container start's log, rotating by size.
pub struct Writer {
    path: PathBuf,
    max_size: u64,
    max_files: usize,
    file: File,
    size: u64,
    /// Bytes of an unfinished line, per stream.
    pending: [Vec<u8>; 2],
}

impl Writer {
    pub fn create(path: PathBuf, max_size: u64, max_files: usize) -> Result<Writer, Error> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Writer {
            path,
            max_size: max_size.max(1),
            max_files: max_files.max(1),
            file,
            size,
            pending: [Vec::new(), Vec::new()],
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes what the container wrote on `stream`: complete lines are
    /// written (`F`), a line longer than [`MAX_LINE`] in pieces (`P`), the
    /// rest waits for its newline.
    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> Result<(), Error> {
        let i = stream as usize;
        let mut buf = std::mem::take(&mut self.pending[i]);
        buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl;
            self.pieces(stream, &buf[start..end], true)?;
            start = end + 1;
        }
        let rest = &buf[start..];
        let keep = rest.len() % MAX_LINE;
        self.pieces(stream, &rest[..rest.len() - keep], false)?;
        self.pending[i] = rest[rest.len() - keep..].to_vec();
        Ok(())
    }

    /// Writes what is left of unfinished lines (the stream ended).
    pub fn flush(&mut self, stream: Stream) -> Result<(), Error> {
        let rest = std::mem::take(&mut self.pending[stream as usize]);
        if !rest.is_empty() {
            self.pieces(stream, &rest, true)?;
        }
        Ok(())
    }

    /// One line as records of at most MAX_LINE bytes; the last one is `F`
    /// when the line is complete.
    fn pieces(&mut self, stream: Stream, line: &[u8], complete: bool) -> Result<(), Error> {
        let chunks: Vec<&[u8]> = if line.is_empty() {
            if complete {
                vec![&[][..]]
            } else {
                Vec::new()
            }
        } else {
            line.chunks(MAX_LINE).collect()
        };
        let last = chunks.len().saturating_sub(1);
        for (n, chunk) in chunks.into_iter().enumerate() {
            let tag = if complete && n == last { "F" } else { "P" };
            let mut rec = format!("{} {} {tag} ", now(), stream.name()).into_bytes();
            rec.extend_from_slice(chunk);
            rec.push(b'\n');
            self.record(&rec)?;
        }
        Ok(())
    }

    fn record(&mut self, rec: &[u8]) -> Result<(), Error> {
        if self.size > 0 && self.size + rec.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(rec).map_err(io_err(&self.path))?;
        self.size += rec.len() as u64;
        Ok(())
    }

    /// `N.log` becomes `N.log.1`, `.1` becomes `.2`, …; the oldest beyond
    /// `max_files` files is removed.
    fn rotate(&mut self) -> Result<(), Error> {
        let keep = self.max_files - 1;
        if keep == 0 {
            self.file.set_len(0).map_err(io_err(&self.path))?;
            self.size = 0;
            return Ok(());
        }
        let _ = fs::remove_file(rotated(&self.path, keep));
        for n in (1..keep).rev() {
            let _ = fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
        }
        let first = rotated(&self.path, 1);
        fs::rename(&self.path, &first).map_err(io_err(&first))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        self.size = 0;
        Ok(())
    }
}

/// The files of one start, oldest first.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..)
        .map(|n| rotated(path, n))
        .take_while(|p| p.exists())
        .collect();
    out.reverse();
    if path.exists() {
        out.push(path.to_path_buf());
    }
    out
}

/// One line of the container's output.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// The time of its last piece, RFC 3339 with nanoseconds.
    pub time: String,
    pub stream: String,
    pub text: Vec<u8>,
}

/// Lines as `kubectl logs` shows them: the text, each after the time it
/// was written when `timestamps`.
pub fn render(lines: &[Line], timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        if timestamps {
            out.extend_from_slice(l.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(&l.text);
        out.push(b'\n');
    }
    out
}

/// The lines of one start's files, partial records joined.
pub fn read(path: &Path) -> Result<Vec<Line>, Error> {
    let mut f = Follower::new(path.to_path_buf());
    f.read_all()
}

/// Reads one start's log and then what is appended to it, across
/// rotations (`podlab logs -f`): it remembers the current file's inode and
/// how far it read, and finishes a file that was rotated away from there.
pub struct Follower {
    path: PathBuf,
    ino: Option<u64>,
    offset: u64,
    partial: Vec<u8>,
}

impl Follower {
    pub fn new(path: PathBuf) -> Follower {
        Follower {
            path,
            ino: None,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// Every line in the files now, oldest first.
    pub fn read_all(&mut self) -> Result<Vec<Line>, Error> {
        let mut lines = Vec::new();
        let all = files(&self.path);
        for f in &all {
            if f == &self.path {
                break;
            }
            if let Some(bytes) = read_from(f, 0)? {
                self.parse(&bytes, &mut lines);
            }
        }
        self.ino = None;
        self.offset = 0;
        lines.extend(self.read_new()?);
        Ok(lines)
    }

    /// The lines written since the last read.
    pub fn read_new(&mut self) -> Result<Vec<Line>, Error> {
        use std::os::unix::fs::MetadataExt;
        let mut lines = Vec::new();
        let Ok(meta) = fs::metadata(&self.path) else {
            return Ok(lines);
        };
        if self.ino.is_some_and(|ino| ino != meta.ino()) {
            // Rotated: the rest of the file we were reading is now `.1`.
            if let Some(bytes) = read_from(&rotated(&self.path, 1), self.offset)? {
                self.parse(&bytes, &mut lines);
            }
            self.offset = 0;
        }
        self.ino = Some(meta.ino());
        if let Some(bytes) = read_from(&self.path, self.offset)? {
            // Only whole records; the writer finishes the rest later.
            let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            self.offset += end as u64;
            self.parse(&bytes[..end], &mut lines);
        }
        Ok(lines)
    }

    fn parse(&mut self, bytes: &[u8], lines: &mut Vec<Line>) {
        for rec in bytes.split(|&b| b == b'\n').filter(|r| !r.is_empty()) {
            let mut parts = rec.splitn(4, |&b| b == b' ');
            let (Some(time), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            self.partial
                .extend_from_slice(parts.next().unwrap_or_default());
            if tag == b"P" {
                continue;
            }
            lines.push(Line {
                time: String::from_utf8_lossy(time).into_owned(),
                stream: String::from_utf8_lossy(stream).into_owned(),
                text: std::mem::take(&mut self.partial),
            });
        }
    }
}

/// The bytes of `path` from `offset`; None when it is gone (rotated away).
fn read_from(path: &Path, offset: u64) -> Result<Option<Vec<u8>>, Error> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut bytes = Vec::new();
    f.seek(SeekFrom::Start(offset)).map_err(io_err(path))?;
    f.read_to_end(&mut bytes).map_err(io_err(path))?;
    Ok(Some(bytes))
}

/// Whether the line was written at or after `since`.
pub fn at_or_after(line: &Line, since: Timestamp) -> bool {
    line.time.parse::<Timestamp>().is_ok_and(|t| t >= since)
}

/// Removes the logs of starts before `keep_from` (the kubelet keeps the
/// current and the previous start's).
pub fn prune(dir: &Path, keep_from: u32) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let start = name.split('.').next().and_then(|n| n.parse::<u32>().ok());
        if start.is_some_and(|s| s < keep_from) {
            let _ = fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(path: &Path) -> u64 {
        files(path)
            .iter()
            .map(|f| fs::metadata(f).unwrap().len())
            .sum()
    }

    #[test]
    fn lines_are_cri_records() {
        let tmp = tempfile::tempdir().unwrap();
        let path = log_path(tmp.path(), 0);
        let mut w = Writer::create(path.clone(), DEFAULT_MAX_SIZE, DEFAULT_MAX_FILES).unwrap();
        w.write(Stream::Stdout, b"one\ntw").unwrap();
        w.write(Stream::Stderr, b"err\n").unwrap();
        w.write(Stream::Stdout, b"o\n\nthree").unwrap();
        w.flush(Stream::Stdout).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let recs: Vec<Vec<&str>> = text.lines().map(|l| l.splitn(4, ' ').collect()).collect();
        let shape: Vec<(&str, &str, &str)> = recs.iter().map(|r| (r[1], r[2], r[3])).collect();
        assert_eq!(
            shape,
            [
                ("stdout", "F", "one"),
                ("stderr", "F", "err"),
                ("stdout", "F", "two"),
                ("stdout", "F", ""),
                ("stdout", "F", "three"),
            ]
        );
        // RFC 3339 in UTC with up to nanoseconds.
        let t: Timestamp = recs[0][0].parse().unwrap();
        assert!(
            recs[0][0].ends_with('Z') && t > Timestamp::UNIX_EPOCH,
            "{}",
            recs[0][0]
        );
        let texts: Vec<Vec<u8>> = read(&path).unwrap().into_iter().map(|l| l.text).collect();
        assert_eq!(texts, [&b"one"[..], b"err", b"two", b"", b"three"]);
    }

    #[test]
    fn a_long_line_is_written_in_partial_records_and_read_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let path = log_path(tmp.path(), 0);
        let mut w = Writer::create(path.clone(), DEFAULT_MAX_SIZE, DEFAULT_MAX_FILES).unwrap();
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        w.write(Stream::Stdout, &long[..MAX_LINE + 5]).unwrap();
        w.write(Stream::Stdout, &long[MAX_LINE + 5..]).unwrap();
        w.write(Stream::Stdout, b"\n").unwrap();
        let tags: Vec<String> = fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| l.split(' ').nth(2).unwrap().to_string())
            .collect();
        assert_eq!(tags, ["P", "P", "F"]);
        let lines = read(&path).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, long);
    }

    #[test]
    fn rotation_bounds_the_files_and_keeps_the_newest_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let path = log_path(tmp.path(), 3);
        let (max_size, max_files) = (4096, 3);
        let mut w = Writer::create(path.clone(), max_size, max_files).unwrap();
        for n in 0..2000 {
            w.write(Stream::Stdout, format!("line {n}\n").as_bytes())
                .unwrap();
        }
        let f = files(&path);
        assert_eq!(f.len(), max_files, "{f:?}");
        assert!(!rotated(&path, max_files).exists());
        for file in &f {
            assert!(fs::metadata(file).unwrap().len() <= max_size);
        }
        assert!(total(&path) <= max_size * max_files as u64);
        let lines = read(&path).unwrap();
        assert_eq!(lines.last().unwrap().text, b"line 1999");
        // Oldest first, with no gap across the files.
        let nums: Vec<u32> = lines
            .iter()
            .map(|l| String::from_utf8_lossy(&l.text)[5..].parse().unwrap())
            .collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
        assert!(nums[0] > 0);
    }

    #[test]
    fn a_follower_sees_each_line_once_across_rotations() {
        let tmp = tempfile::tempdir().unwrap();
        let path = log_path(tmp.path(), 0);
        let mut w = Writer::create(path.clone(), 4096, 5).unwrap();
        let mut f = Follower::new(path.clone());
        let mut seen = Vec::new();
        for n in 0..600 {
            w.write(Stream::Stdout, format!("line {n}\n").as_bytes())
                .unwrap();
            // A half-written line is not a line yet.
            if n % 7 == 0 {
                w.write(Stream::Stdout, b"half").unwrap();
                seen.extend(f.read_new().unwrap());
                w.write(Stream::Stdout, b" done\n").unwrap();
            }
            if n % 50 == 0 {
                seen.extend(f.read_new().unwrap());
            }
        }
        seen.extend(f.read_new().unwrap());
        let expected: Vec<String> = (0..600)
            .flat_map(|n| {
                let mut v = vec![format!("line {n}")];
                if n % 7 == 0 {
                    v.push("half done".into());
                }
                v
            })
            .collect();
        let got: Vec<String> = seen
            .iter()
            .map(|l| String::from_utf8_lossy(&l.text).into_owned())
            .collect();
        assert_eq!(got, expected);
        assert!(files(&path).len() > 1, "no rotation happened");
    }

    #[test]
    fn prune_keeps_the_named_starts_and_later() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["0.log", "0.log.1", "1.log", "2.log", "2.log.1"] {
            fs::write(tmp.path().join(name), b"x").unwrap();
        }
        prune(tmp.path(), 1);
        let mut left: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["1.log", "2.log", "2.log.1"]);
    }
}
