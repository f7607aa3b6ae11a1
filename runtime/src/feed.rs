//! The store's change feed in memory, for a process that lives on (`podlab
//! serve`): one thread tails the store's history (`changes.jsonl`, woken
//! by inotify), loads each changed pod once, keeps the recent changes in a
//! bounded ring and hands them to every subscriber. Watchers then never
//! touch the files: a change costs one read however many watch it.
//!
//! A subscription starts from a resource version: the ring's changes after
//! it are replayed, or [`Expired`] says it is older than the ring. Each
//! subscriber has a bounded queue; one that falls [`QUEUE`] changes behind
//! is cut off ([`Next::Overflowed`]), so a slow client never holds up the
//! feed or the others: it re-lists, as after any ended watch.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::store::{self, Change, ChangeKind, PodKey};

/// How many recent changes are kept for replay.
pub const RING: usize = if cfg!(test) { 16 } else { 4096 };
/// How many changes a subscriber may have waiting before it is cut off.
pub const QUEUE: usize = if cfg!(test) { 8 } else { 2048 };
/// The reader looks at the history at least this often, in case an
/// inotify event was lost (a full queue).
const RESCAN: Duration = Duration::from_secs(1);

pub use store::Expired;

/// One change as subscribers get it.
#[derive(Debug)]
pub struct Entry {
    pub rv: u64,
    pub key: PodKey,
    pub kind: ChangeKind,
    /// From the history line: a deleted pod's last object, or the event.
    pub object: Option<Value>,
    /// The pod as it was read after the change (`None`: gone by then).
    /// Later than `rv` when it changed again meanwhile.
    pub pod: Option<Arc<Value>>,
}

/// Reads the pod of a key as subscribers should see it (`None`: no such pod).
pub type Loader = dyn Fn(&PodKey) -> Option<Value> + Send + Sync;

struct Ring {
    entries: VecDeque<Arc<Entry>>,
    /// Every change after this is in `entries`; older ones are not.
    oldest: u64,
    /// The newest change handed out.
    last: u64,
    /// How many changes `entries` keeps.
    capacity: usize,
    subs: Vec<Weak<Sub>>,
}

#[derive(Default)]
struct Queue {
    entries: Vec<Arc<Entry>>,
    overflowed: bool,
}

struct Sub {
    /// Changes up to this version are not queued (the subscriber has them).
    floor: u64,
    queue: Mutex<Queue>,
    wake: Condvar,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking holder left consistent data: every update is one push.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shared feed; clones share it.
#[derive(Clone)]
pub struct Feed {
    ring: Arc<Mutex<Ring>>,
}

/// What [`Subscription::next`] found.
#[derive(Debug)]
pub enum Next {
    Changes(Vec<Arc<Entry>>),
    /// Nothing within the timeout.
    Idle,
    /// The subscriber fell too far behind: its watch must end.
    Overflowed,
}

pub struct Subscription {
    sub: Arc<Sub>,
}

impl Subscription {
    /// The queued changes, waiting up to `timeout` for one.
    pub fn next(&self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        let mut q = locked(&self.sub.queue);
        loop {
            if q.overflowed {
                return Next::Overflowed;
            }
            if !q.entries.is_empty() {
                return Next::Changes(std::mem::take(&mut q.entries));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Idle;
            }
            q = self
                .sub
                .wake
                .wait_timeout(q, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

impl Feed {
    /// An empty feed whose history starts after `oldest` (tests publish
    /// into it by hand).
    pub fn empty(oldest: u64) -> Feed {
        Feed {
            ring: Arc::new(Mutex::new(Ring {
                entries: VecDeque::new(),
                oldest,
                last: oldest,
                capacity: RING,
                subs: Vec::new(),
            })),
        }
    }

    /// The feed of the store at `root`: primed with the kept history, then
    /// followed by a thread for the life of the process.
    pub fn start(root: &Path, load: Box<Loader>) -> store::Result<Feed> {
        let inotify = watch_root(root)?;
        let mut tail = Tail::new(root);
        let (oldest, first) = tail.prime()?;
        let feed = Feed::empty(oldest);
        // Tests shrink it to see a watch expire without thousands of changes.
        if let Some(n) = std::env::var("PODLAB_WATCH_RING")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
        {
            locked(&feed.ring).capacity = n.max(1);
        }
        feed.publish(entries(first, &*load));
        let follower = feed.clone();
        std::thread::spawn(move || loop {
            {
                use std::os::fd::AsFd;
                let _ = crate::sys::wait_readable(&inotify.as_fd(), Some(RESCAN));
                while let Ok(events) = inotify.read_events() {
                    if events.is_empty() {
                        break;
                    }
                }
            }
            let last = locked(&follower.ring).last;
            match tail.after(last) {
                Ok(Ok(changes)) => follower.publish(entries(changes, &*load)),
                // Cut past what was read (the process stood still): start
                // over from what is kept; every watcher re-lists.
                Ok(Err(Expired { oldest })) => {
                    follower.reset(oldest);
                    tail.pos = store::HistoryPos::default();
                    if let Ok(Ok(changes)) = tail.after(oldest) {
                        follower.publish(entries(changes, &*load));
                    }
                }
                Err(_) => {}
            }
        });
        Ok(feed)
    }

    /// The newest version handed out.
    pub fn last(&self) -> u64 {
        locked(&self.ring).last
    }

    /// Subscribes from `since`: the kept changes after it come first (also
    /// returned, so the caller knows what will be replayed), then each new
    /// one. Changes up to `since` that arrive later are left out: the caller
    /// has them (it read the store at `since` or later).
    pub fn subscribe(&self, since: u64) -> Result<(Subscription, Vec<Arc<Entry>>), Expired> {
        let mut ring = locked(&self.ring);
        if since < ring.oldest {
            return Err(Expired {
                oldest: ring.oldest,
            });
        }
        let replay: Vec<Arc<Entry>> = ring
            .entries
            .iter()
            .filter(|e| e.rv > since)
            .cloned()
            .collect();
        let sub = Arc::new(Sub {
            floor: since,
            queue: Mutex::new(Queue {
                entries: replay.clone(),
                overflowed: false,
            }),
            wake: Condvar::new(),
        });
        ring.subs.push(Arc::downgrade(&sub));
        Ok((Subscription { sub }, replay))
    }

    /// Hands new changes (newer than every one before) to the subscribers.
    pub fn publish(&self, new: Vec<Entry>) {
        let mut ring = locked(&self.ring);
        let new: Vec<Arc<Entry>> = new
            .into_iter()
            .filter(|e| e.rv > ring.last)
            .map(Arc::new)
            .collect();
        let Some(newest) = new.last().map(|e| e.rv) else {
            return;
        };
        ring.last = newest;
        for e in &new {
            ring.entries.push_back(e.clone());
        }
        while ring.entries.len() > ring.capacity {
            if let Some(e) = ring.entries.pop_front() {
                ring.oldest = e.rv;
            }
        }
        // Gone subscribers are dropped here; the others get the changes.
        ring.subs.retain(|w| {
            let Some(sub) = w.upgrade() else {
                return false;
            };
            let mut q = locked(&sub.queue);
            if q.overflowed {
                return false;
            }
            q.entries
                .extend(new.iter().filter(|e| e.rv > sub.floor).cloned());
            if q.entries.len() > QUEUE {
                q.entries.clear();
                q.overflowed = true;
            }
            drop(q);
            sub.wake.notify_all();
            true
        });
    }

    /// Forgets everything before `oldest`; every subscriber ends.
    fn reset(&self, oldest: u64) {
        let mut ring = locked(&self.ring);
        ring.entries.clear();
        ring.oldest = oldest;
        ring.last = ring.last.max(oldest);
        for sub in ring.subs.drain(..).filter_map(|w| w.upgrade()) {
            locked(&sub.queue).overflowed = true;
            sub.wake.notify_all();
        }
    }
}

/// Each change with its pod, loaded once per pod of the batch.
fn entries(changes: Vec<Change>, load: &Loader) -> Vec<Entry> {
    let mut pods: BTreeMap<PodKey, Option<Arc<Value>>> = BTreeMap::new();
    changes
        .into_iter()
        .map(|c| {
            let pod = pods
                .entry(c.key.clone())
                .or_insert_with(|| load(&c.key).map(Arc::new))
                .clone();
            Entry {
                rv: c.rv,
                key: c.key,
                kind: c.kind,
                object: c.object,
                pod,
            }
        })
        .collect()
}

fn watch_root(root: &Path) -> store::Result<nix::sys::inotify::Inotify> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let err = |e: nix::Error| store::Error::Io {
        path: root.to_path_buf(),
        source: std::io::Error::from(e),
    };
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(err)?;
    // Appends close the file; a cut replaces it by rename.
    inotify
        .add_watch(
            root,
            AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE,
        )
        .map_err(err)?;
    Ok(inotify)
}

/// Reads the history from where it left off: by offset while the file is
/// the same one, whole (under the store's lock) once it was cut.
struct Tail {
    path: PathBuf,
    root: PathBuf,
    pos: store::HistoryPos,
}

impl Tail {
    fn new(root: &Path) -> Tail {
        Tail {
            path: root.join("changes.jsonl"),
            root: root.to_path_buf(),
            pos: store::HistoryPos::default(),
        }
    }

    /// Where the kept history starts, and all of it.
    fn prime(&mut self) -> store::Result<(u64, Vec<Change>)> {
        loop {
            let oldest = match store::changes_since(&self.root, 0)? {
                Ok(_) => 0,
                Err(Expired { oldest }) => oldest,
            };
            self.pos = store::HistoryPos::default();
            // Cut again in between: look again.
            if let Ok(changes) = self.after(oldest)? {
                return Ok((oldest, changes));
            }
        }
    }

    /// The changes after `last`.
    fn after(&mut self, last: u64) -> store::Result<Result<Vec<Change>, Expired>> {
        let io = |e| store::Error::Io {
            path: self.path.clone(),
            source: e,
        };
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(Vec::new())),
            Err(e) => return Err(io(e)),
        };
        let meta = file.metadata().map_err(io)?;
        if self.pos.inode == 0 || meta.ino() != self.pos.inode || meta.len() < self.pos.len {
            let (changes, pos) = store::changes_since_at(&self.root, last)?;
            let first_sight = self.pos.inode == 0;
            self.pos = pos;
            return match changes {
                // A history begun since the last look starts after the
                // versions taken meanwhile without a line (namespaces,
                // the node): none of them is missing.
                Err(Expired { oldest }) if first_sight => {
                    let (changes, pos) = store::changes_since_at(&self.root, oldest)?;
                    self.pos = pos;
                    Ok(changes)
                }
                other => Ok(other),
            };
        }
        file.seek(SeekFrom::Start(self.pos.len)).map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        // Only whole lines: a writer may be halfway through one.
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.pos.len += whole as u64;
        Ok(Ok(bytes[..whole]
            .split(|b| *b == b'\n')
            .filter_map(|l| serde_json::from_slice::<Change>(l).ok())
            .filter(|c| c.rv > last)
            .collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(rv: u64, name: &str, kind: ChangeKind) -> Entry {
        Entry {
            rv,
            key: PodKey::new("default", name),
            kind,
            object: None,
            pod: Some(Arc::new(json!({"metadata": {"name": name}}))),
        }
    }

    fn rvs(next: Next) -> Vec<u64> {
        match next {
            Next::Changes(c) => c.iter().map(|e| e.rv).collect(),
            other => panic!("expected changes, got {other:?}"),
        }
    }

    #[test]
    fn replays_from_a_version_and_expires_past_the_ring() {
        let feed = Feed::empty(10);
        feed.publish(
            (11..=12)
                .map(|rv| entry(rv, "a", ChangeKind::Modified))
                .collect(),
        );
        let (sub, replay) = feed.subscribe(11).unwrap();
        assert_eq!(replay.iter().map(|e| e.rv).collect::<Vec<_>>(), [12]);
        assert_eq!(rvs(sub.next(Duration::ZERO)), [12]);
        assert!(matches!(sub.next(Duration::ZERO), Next::Idle));
        // Older than the ring starts: expired, with where it starts now.
        assert_eq!(feed.subscribe(9).err(), Some(Expired { oldest: 10 }));
        // Past RING changes the oldest go.
        let (sub, _) = feed.subscribe(feed.last()).unwrap();
        for rv in 13..13 + RING as u64 {
            feed.publish(vec![entry(rv, "a", ChangeKind::Modified)]);
            let _ = sub.next(Duration::ZERO);
        }
        assert_eq!(
            feed.subscribe(11).err(),
            Some(Expired { oldest: 12 }),
            "the ring keeps the last {RING}"
        );
        let (_, replay) = feed.subscribe(12).unwrap();
        assert_eq!(replay.len(), RING);
    }

    #[test]
    fn a_subscriber_is_woken_by_a_change_and_skips_what_it_has() {
        let feed = Feed::empty(0);
        // It read the store at 5 before the feed got there.
        let (sub, replay) = feed.subscribe(5).unwrap();
        assert!(replay.is_empty());
        let publisher = feed.clone();
        let t = std::thread::spawn(move || {
            publisher.publish(
                (4..=6)
                    .map(|rv| entry(rv, "a", ChangeKind::Added))
                    .collect(),
            );
        });
        assert_eq!(rvs(sub.next(Duration::from_secs(30))), [6]);
        t.join().unwrap();
        // Versions already handed out are not handed out again.
        feed.publish(vec![entry(6, "b", ChangeKind::Added)]);
        assert!(matches!(sub.next(Duration::ZERO), Next::Idle));
    }

    #[test]
    fn a_slow_subscriber_is_cut_off_and_the_others_go_on() {
        let feed = Feed::empty(0);
        let (slow, _) = feed.subscribe(0).unwrap();
        let (quick, _) = feed.subscribe(0).unwrap();
        let mut seen = 0;
        for rv in 1..=(QUEUE as u64 * 3) {
            feed.publish(vec![entry(rv, "a", ChangeKind::Modified)]);
            seen += rvs(quick.next(Duration::ZERO)).len();
        }
        assert_eq!(seen, QUEUE * 3, "the quick one missed nothing");
        assert!(matches!(slow.next(Duration::ZERO), Next::Overflowed));
        // And it is no longer fed.
        assert_eq!(locked(&feed.ring).subs.len(), 1);
        // A dropped subscription goes at the next change.
        drop(quick);
        feed.publish(vec![entry(QUEUE as u64 * 3 + 1, "a", ChangeKind::Modified)]);
        assert!(locked(&feed.ring).subs.is_empty());
    }

    #[test]
    fn a_history_begun_after_versions_without_lines_is_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        // A namespace made before any pod: a version, no history line.
        let ns = store::next_resource_version(root).unwrap();
        let feed = Feed::start(root, Box::new(|_: &PodKey| None)).unwrap();
        let (sub, _) = feed.subscribe(ns).unwrap();
        let key = PodKey::new("default", "p");
        let rv = store::record_change(root, &key, ChangeKind::Added, None, |_| Ok(())).unwrap();
        match sub.next(Duration::from_secs(30)) {
            Next::Changes(c) => assert_eq!(c.iter().map(|e| e.rv).collect::<Vec<_>>(), [rv]),
            other => panic!("expected the pod's change, got {other:?}"),
        }
    }

    #[test]
    fn follows_the_history_file_through_its_cuts() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let key = PodKey::new("default", "p");
        let rec = |kind| store::record_change(root, &key, kind, None, |_| Ok(())).unwrap();
        let first = rec(ChangeKind::Added);
        let loads = Arc::new(Mutex::new(0));
        let counted = loads.clone();
        let feed = Feed::start(
            root,
            Box::new(move |k: &PodKey| {
                *locked(&counted) += 1;
                Some(json!({"metadata": {"name": k.name}}))
            }),
        )
        .unwrap();
        assert_eq!(feed.last(), first);
        assert_eq!(*locked(&loads), 1, "primed with the kept history");
        let (sub, _) = feed.subscribe(first).unwrap();
        // Small batches (within the queue), each awaited; enough of them
        // to cut the test-sized history several times.
        let mut got = Vec::new();
        let mut want = Vec::new();
        for _ in 0..120 {
            for _ in 0..QUEUE / 2 {
                want.push(rec(ChangeKind::Modified));
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while got.len() < want.len() && Instant::now() < deadline {
                if let Next::Changes(c) = sub.next(Duration::from_millis(200)) {
                    got.extend(c.iter().map(|e| e.rv));
                }
            }
        }
        assert_eq!(got, want, "every change once, in order");
        let Err(Expired { oldest }) = feed.subscribe(first) else {
            panic!("the ring is smaller than the changes made");
        };
        assert!(oldest > first);
    }
}
