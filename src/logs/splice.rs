//! Captured output that never enters tend's memory: kernel pipes that carry a chunk of a
//! child's output from its pipe to a log file (`splice(2)`), and the probe that finds the
//! chunk's line boundaries by reading a few KiB of it (`tee(2)`). Any refusal by the kernel
//! sends the chunk down the copying path instead.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice, tee};

/// Capacity asked for each carrier pipe: one chunk of output, moved and written with one
/// call each.
pub const PIPE_SIZE: usize = 256 * 1024;
/// The probe reads this much at the end of each window: lines up to this long never make it
/// give up, and it is small next to the window it vouches for.
const BLOCK: usize = 4096;
/// The shortest `max_line` the probe handles: a window must be longer than a block.
pub const MIN_MAX_LINE: usize = BLOCK;

/// Bytes waiting in a pipe (`FIONREAD`); 0 when it cannot be asked.
pub fn available(pipe: BorrowedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which is valid for the call.
    let rc = unsafe { libc::ioctl(pipe.as_raw_fd(), libc::FIONREAD, &mut n) };
    if rc < 0 { 0 } else { n.max(0) as usize }
}

/// A kernel pipe that holds one chunk of captured output on its way to a file. Between uses
/// it is empty; both ends are non-blocking, so no call on it can wait.
#[derive(Debug)]
pub struct ChunkPipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl ChunkPipe {
    pub fn new() -> io::Result<ChunkPipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(ChunkPipe {
            capacity: grow(&write, PIPE_SIZE),
            read,
            write,
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Move up to `len` bytes from the pipe `from` into this one. The pages change hands;
    /// nothing is copied. Fewer bytes than asked (even none: `WouldBlock`) when this pipe
    /// runs out of slots.
    pub fn fill(&self, from: BorrowedFd, len: usize) -> io::Result<usize> {
        retry(|| {
            splice(
                from,
                None,
                &self.write,
                None,
                len,
                SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
            )
        })
    }

    pub fn reader(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Append exactly `len` bytes from the pipe to `out`: the copying path.
    pub fn read_into(&self, out: &mut Vec<u8>, len: usize) -> io::Result<()> {
        let start = out.len();
        out.resize(start + len, 0);
        let mut done = 0;
        while done < len {
            match retry(|| nix::unistd::read(&self.read, &mut out[start + done..])) {
                Ok(0) | Err(_) => {
                    out.truncate(start + done);
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(n) => done += n,
            }
        }
        Ok(())
    }

    /// Throw away `len` bytes, so the pipe can be reused empty.
    pub fn discard(&self, len: usize, null: Option<&File>) -> io::Result<()> {
        discard(self.read.as_fd(), len, null)
    }
}

/// Where a chunk's lines end, as the probe found them.
#[derive(Debug, PartialEq, Eq)]
pub struct Lines {
    /// The chunk's first `whole` bytes are whole lines (the first one completing the line
    /// held before it), none longer than `max_line`.
    pub whole: usize,
    /// The bytes after them (a partial line), in [`Probe::block`].
    pub partial: Range<usize>,
}

/// Looks at a chunk without taking it out of its pipe: a duplicate of it (`tee`, no copy) is
/// skipped through, window by window, reading only the last block of each.
#[derive(Debug)]
pub struct Probe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
    /// Skipping is a splice into /dev/null; without it, a read into the block.
    null: Option<File>,
    block: Box<[u8]>,
}

impl Probe {
    pub fn new() -> io::Result<Probe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(Probe {
            capacity: grow(&write, PIPE_SIZE),
            read,
            write,
            null: std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .ok(),
            block: vec![0; BLOCK].into_boxed_slice(),
        })
    }

    pub fn block(&self) -> &[u8] {
        &self.block
    }

    pub fn null(&self) -> Option<&File> {
        self.null.as_ref()
    }

    /// Where the lines of the `len` bytes in `pipe` end, given that the line they continue
    /// already has `held` bytes (at most `max_line`). `None` when a few blocks cannot tell:
    /// a line that may be longer than `max_line`, a last line longer than a block, or a
    /// kernel refusal; the caller then reads the chunk and splits it the ordinary way.
    ///
    /// A line starting at `s` must end by `s + max_line`; the probe reads the block that ends
    /// there and moves `s` past the last newline in it. Every line it passes over lies
    /// within one window, so none is longer than `max_line`, and only about one block in
    /// `max_line / BLOCK` bytes is copied.
    pub fn lines(
        &mut self,
        pipe: &ChunkPipe,
        len: usize,
        held: usize,
        max_line: usize,
    ) -> Option<Lines> {
        if len == 0 || max_line < MIN_MAX_LINE || held > max_line || len > self.capacity {
            return None;
        }
        let copied = retry(|| {
            tee(
                &pipe.read,
                &self.write,
                len,
                SpliceFFlags::SPLICE_F_NONBLOCK,
            )
        });
        let copied = copied.unwrap_or(0);
        let mut consumed = Some(0);
        let found = if copied == len {
            self.scan(len, held, max_line, &mut consumed)
        } else {
            None
        };
        // Whatever happened, leave the duplicate empty for the next chunk; after an error
        // in the middle, ask the pipe what is left.
        let left = match consumed {
            Some(consumed) => copied - consumed,
            None => available(self.read.as_fd()),
        };
        if left > 0 && discard(self.read.as_fd(), left, self.null.as_ref()).is_err() {
            return None;
        }
        found
    }

    /// `consumed` follows how much of the duplicate was taken; `None` once a call failed
    /// and that is unknown.
    fn scan(
        &mut self,
        len: usize,
        held: usize,
        max_line: usize,
        consumed: &mut Option<usize>,
    ) -> Option<Lines> {
        // Positions are in the chunk; the line being checked starts at `start`, before the
        // chunk when bytes are held.
        let mut start = -(held as i64);
        let mut pos = 0usize;
        loop {
            let limit = start + max_line as i64 + 1;
            let end = usize::try_from(limit).ok()?.min(len);
            let from = end.saturating_sub(BLOCK).max(pos);
            *consumed = None;
            discard(self.read.as_fd(), from - pos, self.null.as_ref()).ok()?;
            let n = end - from;
            self.read_exact(n).ok()?;
            pos = end;
            *consumed = Some(pos);
            let newline = memchr::memrchr(b'\n', &self.block[..n])?;
            if end == len {
                return Some(Lines {
                    whole: from + newline + 1,
                    partial: newline + 1..n,
                });
            }
            start = (from + newline + 1) as i64;
        }
    }

    fn read_exact(&mut self, n: usize) -> io::Result<()> {
        let mut done = 0;
        while done < n {
            match retry(|| nix::unistd::read(&self.read, &mut self.block[done..n]))? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                k => done += k,
            }
        }
        Ok(())
    }
}

/// Consume `len` bytes of a pipe without looking at them.
fn discard(pipe: BorrowedFd, mut len: usize, null: Option<&File>) -> io::Result<()> {
    if let Some(null) = null {
        while len > 0 {
            match retry(|| splice(pipe, None, null, None, len, SpliceFFlags::SPLICE_F_NONBLOCK)) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => len -= n,
                // Some kernels refuse /dev/null as a splice target: read instead.
                Err(_) => break,
            }
        }
    }
    let mut scratch = [0u8; 4096];
    while len > 0 {
        let want = len.min(scratch.len());
        match retry(|| nix::unistd::read(pipe, &mut scratch[..want]))? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => len -= n,
        }
    }
    Ok(())
}

/// Move `len` bytes from `pipe` into `file` at `offset`, the kernel copying them into the
/// page cache. Returns how many went in before an error, and the error.
pub fn to_file(
    pipe: &ChunkPipe,
    file: &File,
    offset: u64,
    len: usize,
) -> (usize, Option<io::Error>) {
    let mut done = 0;
    while done < len {
        let mut at = (offset + done as u64) as libc::loff_t;
        match retry(|| {
            splice(
                &pipe.read,
                None,
                file,
                Some(&mut at),
                len - done,
                SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
            )
        }) {
            Ok(0) => return (done, Some(io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) => return (done, Some(e)),
        }
    }
    (done, None)
}

/// Ask for a pipe of `size` bytes; the kernel may refuse (a per-user limit on pipe memory),
/// and the pipe then keeps what it has. Returns its capacity.
pub fn grow(pipe: &OwnedFd, size: usize) -> usize {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    let _ = fcntl(pipe, FcntlArg::F_SETPIPE_SZ(size));
    fcntl(pipe, FcntlArg::F_GETPIPE_SZ)
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(4096)
}

fn retry<T>(mut call: impl FnMut() -> nix::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(Errno::EINTR) => {}
            other => return other.map_err(io::Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe_with(bytes: &[u8]) -> ChunkPipe {
        let pipe = ChunkPipe::new().unwrap();
        let mut done = 0;
        while done < bytes.len() {
            done += nix::unistd::write(&pipe.write, &bytes[done..]).unwrap();
        }
        pipe
    }

    fn lines(bytes: &[u8], held: usize, max_line: usize) -> Option<(usize, Vec<u8>)> {
        let pipe = pipe_with(bytes);
        let mut probe = Probe::new().unwrap();
        let found = probe.lines(&pipe, bytes.len(), held, max_line);
        // The chunk itself is untouched, and the probe's duplicate is gone.
        assert_eq!(available(pipe.reader()), bytes.len());
        assert_eq!(available(probe.read.as_fd()), 0);
        found.map(|l| (l.whole, probe.block()[l.partial].to_vec()))
    }

    fn numbered(n: usize, width: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut line = format!("{i:08} ").into_bytes();
                line.resize(width - 1, b'x');
                line.push(b'\n');
                line
            })
            .collect()
    }

    #[test]
    fn finds_the_last_newline_and_the_partial_line_after_it() {
        let mut bytes = numbered(2000, 100);
        bytes.extend_from_slice(b"half a li");
        assert_eq!(
            lines(&bytes, 0, 64 * 1024),
            Some((200_000, b"half a li".to_vec()))
        );
        // Ending at a newline: nothing partial.
        let whole = numbered(2000, 100);
        assert_eq!(lines(&whole, 0, 64 * 1024), Some((200_000, Vec::new())));
        // A held partial line counts towards the first line's length.
        assert_eq!(lines(&whole, 500, 64 * 1024), Some((200_000, Vec::new())));
    }

    #[test]
    fn gives_up_on_a_line_that_may_be_too_long() {
        let max = BLOCK;
        // A line of max + 1 bytes between ordinary ones.
        let mut bytes = numbered(100, 100);
        bytes.extend(std::iter::repeat_n(b'y', max + 1));
        bytes.push(b'\n');
        bytes.extend(numbered(100, 100));
        assert_eq!(lines(&bytes, 0, max), None);
        // Exactly max bytes is allowed (a longer max_line may make the probe give up on a
        // line longer than a block, and the copying path decides).
        let mut ok = numbered(100, 100);
        ok.extend(std::iter::repeat_n(b'y', max));
        ok.push(b'\n');
        ok.extend(numbered(100, 100));
        assert_eq!(lines(&ok, 0, max), Some((ok.len(), Vec::new())));
        // A held partial line plus the chunk's first line past max_line.
        let mut first = vec![b'z'; 3000];
        first.push(b'\n');
        first.extend(numbered(100, 100));
        assert_eq!(lines(&first, max - 2000, max), None);
        assert_eq!(lines(&first, 100, max), Some((first.len(), Vec::new())));
    }

    #[test]
    fn a_chunk_without_a_newline_in_its_last_block_is_left_to_the_copying_path() {
        let mut bytes = numbered(100, 100);
        bytes.extend(std::iter::repeat_n(b'y', BLOCK + 10));
        assert_eq!(lines(&bytes, 0, 64 * 1024), None);
        assert_eq!(lines(b"no newline at all", 0, 64 * 1024), None);
    }

    #[test]
    fn a_chunk_moves_to_a_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let bytes = numbered(1000, 100);
        let source = pipe_with(&bytes);
        let carrier = ChunkPipe::new().unwrap();
        let moved = carrier.fill(source.reader(), bytes.len()).unwrap();
        assert_eq!(moved, bytes.len());
        assert_eq!(to_file(&carrier, &file, 0, 60_000).0, 60_000);
        let rest = bytes.len() - 60_000;
        let mut tail = Vec::new();
        carrier.read_into(&mut tail, rest).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), &bytes[..60_000]);
        assert_eq!(tail, &bytes[60_000..]);
        assert_eq!(available(carrier.reader()), 0);
    }
}
