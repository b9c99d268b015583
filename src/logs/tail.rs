//! The in-memory tail of one instance's output: the last lines of both streams, in the order
//! they were read, each with its time. It serves `tend logs -n` at once and outlives the
//! process. Bounded in lines and bytes; storing a line copies it, and never allocates once
//! the buffers have grown. Lines spliced into a file are kept as their place in it and read
//! back only when the tail is asked for.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::logs::Stream;

/// At most this many bytes of lines are kept per instance, whatever `tail` says, so a program
/// printing huge lines cannot make tend's memory grow without bound.
pub const TAIL_BYTES: usize = 1024 * 1024;

/// Spans waiting to be read back, at most: past this the tail reads them at once, so that a
/// trickle of small splices cannot pin descriptors and memory.
const MAX_SPANS: usize = 64;

/// Spans are read back from their end in blocks of this size, until the tail is full.
const READ_BACK: usize = 64 * 1024;

/// One line as kept: when it was read, from which stream, and its bytes (with the newline).
#[derive(Debug, Clone, PartialEq)]
pub struct TailLine {
    pub time: SystemTime,
    pub stream: Stream,
    pub bytes: Vec<u8>,
}

/// Whole lines of one stream that a splice put in a log file without tend reading them.
#[derive(Debug)]
pub struct Span {
    /// The file, readable; it stays valid after a rotation renames or removes it.
    pub file: Arc<File>,
    pub stream: Stream,
    /// File offset of the first byte.
    pub start: u64,
    /// Where each read's bytes end (increasing file offsets; the last is the span's end) and
    /// when it was read: a line takes the time of the read its newline came in, as it would
    /// on the copying path.
    pub reads: Vec<(u64, SystemTime)>,
}

impl Span {
    fn end(&self) -> u64 {
        self.reads.last().map_or(self.start, |r| r.0)
    }

    fn len(&self) -> u64 {
        self.end() - self.start
    }

    fn time_of(&self, line_end: u64) -> SystemTime {
        self.reads
            .iter()
            .find(|r| r.0 >= line_end)
            .or(self.reads.last())
            .map_or(SystemTime::UNIX_EPOCH, |r| r.1)
    }

    /// All its lines, read back from the file.
    pub fn lines(&self) -> Vec<TailLine> {
        self.last_lines(usize::MAX, usize::MAX)
    }

    /// The last lines of the span, oldest first: at most `lines` of them and about `bytes`
    /// bytes, read from the end. A span the file no longer fully holds (cut short by someone
    /// else) gives nothing rather than half lines.
    fn last_lines(&self, lines: usize, bytes: usize) -> Vec<TailLine> {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        let mut pos = self.end();
        let mut newlines = 0;
        let mut gathered = 0;
        while pos > self.start && newlines <= lines && gathered < bytes {
            let size = (pos - self.start).min(READ_BACK as u64) as usize;
            let mut block = vec![0u8; size];
            pos -= size as u64;
            if self.file.read_exact_at(&mut block, pos).is_err() {
                return Vec::new();
            }
            newlines += memchr::memchr_iter(b'\n', &block).count();
            gathered += size;
            blocks.push(block);
        }
        let mut data = Vec::with_capacity(gathered);
        for block in blocks.iter().rev() {
            data.extend_from_slice(block);
        }
        let mut picked: Vec<TailLine> = Vec::new();
        let mut end = data.len();
        // Lines from the end; the first one read is whole only if the span's start was reached.
        while end > 0 && picked.len() < lines {
            let start = match memchr::memrchr(b'\n', &data[..end - 1]) {
                Some(newline) => newline + 1,
                None if pos == self.start => 0,
                None => break,
            };
            picked.push(TailLine {
                time: self.time_of(pos + end as u64),
                stream: self.stream,
                bytes: data[start..end].to_vec(),
            });
            end = start;
        }
        picked.reverse();
        picked
    }
}

#[derive(Debug)]
pub struct Tail {
    bytes: VecDeque<u8>,
    lines: VecDeque<(SystemTime, Stream, usize)>,
    max_lines: usize,
    max_bytes: usize,
    /// Spliced lines not read back yet, all newer than `lines`.
    spans: VecDeque<Span>,
    span_bytes: u64,
}

impl Tail {
    pub fn new(max_lines: usize) -> Tail {
        Tail {
            bytes: VecDeque::new(),
            lines: VecDeque::new(),
            max_lines,
            max_bytes: TAIL_BYTES,
            spans: VecDeque::new(),
            span_bytes: 0,
        }
    }

    pub fn push(&mut self, time: SystemTime, stream: Stream, line: &[u8]) {
        self.read_back();
        self.push_line(time, stream, line);
    }

    /// Keep spliced lines by their place in the file. Every spliced line is shorter than the
    /// byte bound, so once newer spans alone fill it, older ones can never show: they go.
    pub fn push_span(&mut self, span: Span) {
        if self.max_lines == 0 || span.len() == 0 {
            return;
        }
        self.span_bytes += span.len();
        self.spans.push_back(span);
        while self.spans.len() > 1 && self.span_bytes - self.spans[0].len() >= self.max_bytes as u64
        {
            if let Some(old) = self.spans.pop_front() {
                self.span_bytes -= old.len();
            }
        }
        if self.spans.len() > MAX_SPANS {
            self.read_back();
        }
    }

    /// Whether spliced lines wait to be read back.
    pub fn has_spans(&self) -> bool {
        !self.spans.is_empty()
    }

    /// Read the spliced lines back from their files, only as many as the tail keeps. A
    /// line the file no longer has (cut by someone else) is missing from the tail, not
    /// from the file.
    pub fn read_back(&mut self) {
        if self.spans.is_empty() {
            return;
        }
        let spans = std::mem::take(&mut self.spans);
        self.span_bytes = 0;
        let mut newest_first: Vec<Vec<TailLine>> = Vec::new();
        let (mut lines, mut bytes) = (self.max_lines, self.max_bytes);
        for span in spans.iter().rev() {
            if lines == 0 || bytes == 0 {
                break;
            }
            let read = span.last_lines(lines, bytes);
            lines -= read.len().min(lines);
            bytes -= read.iter().map(|l| l.bytes.len()).sum::<usize>().min(bytes);
            newest_first.push(read);
        }
        for line in newest_first.into_iter().rev().flatten() {
            self.push_line(line.time, line.stream, &line.bytes);
        }
    }

    fn push_line(&mut self, time: SystemTime, stream: Stream, line: &[u8]) {
        if self.max_lines == 0 || line.len() > self.max_bytes {
            return;
        }
        while self.lines.len() >= self.max_lines || self.bytes.len() + line.len() > self.max_bytes {
            let Some((_, _, len)) = self.lines.pop_front() else {
                break;
            };
            self.bytes.drain(..len);
        }
        self.bytes.extend(line);
        self.lines.push_back((time, stream, line.len()));
    }

    pub fn len(&mut self) -> usize {
        self.read_back();
        self.lines.len()
    }

    pub fn is_empty(&mut self) -> bool {
        self.read_back();
        self.lines.is_empty()
    }

    /// The last `n` lines (of `stream` only, when given) read at or after `since`.
    pub fn last(
        &mut self,
        n: usize,
        stream: Option<Stream>,
        since: Option<SystemTime>,
    ) -> Vec<TailLine> {
        self.read_back();
        let mut end = self.bytes.len();
        let mut picked = Vec::new();
        for &(time, line_stream, len) in self.lines.iter().rev() {
            let start = end - len;
            if picked.len() >= n || since.is_some_and(|s| time < s) {
                break;
            }
            if stream.is_none_or(|s| s == line_stream) {
                picked.push(TailLine {
                    time,
                    stream: line_stream,
                    bytes: self.bytes.range(start..end).copied().collect(),
                });
            }
            end = start;
        }
        picked.reverse();
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn keeps_the_last_lines_in_order() {
        let mut tail = Tail::new(3);
        for i in 0..10u64 {
            let stream = if i % 2 == 0 { Stream::Out } else { Stream::Err };
            tail.push(at(i), stream, format!("line {i}\n").as_bytes());
        }
        assert_eq!(tail.len(), 3);
        let all: Vec<Vec<u8>> = tail
            .last(10, None, None)
            .into_iter()
            .map(|l| l.bytes)
            .collect();
        assert_eq!(
            all,
            [
                b"line 7\n".to_vec(),
                b"line 8\n".to_vec(),
                b"line 9\n".to_vec()
            ]
        );
        let err = tail.last(10, Some(Stream::Err), None);
        assert_eq!(err.len(), 2);
        assert!(err.iter().all(|l| l.stream == Stream::Err));
        assert_eq!(tail.last(1, None, None)[0].bytes, b"line 9\n");
        assert_eq!(tail.last(10, None, Some(at(8))).len(), 2);
    }

    #[test]
    fn stays_within_its_byte_bound() {
        let mut tail = Tail::new(1000);
        let big = vec![b'x'; 300 * 1024];
        for _ in 0..10 {
            tail.push(at(0), Stream::Out, &big);
        }
        assert!(tail.bytes.len() <= TAIL_BYTES);
        assert_eq!(tail.len(), 3);
        tail.push(at(1), Stream::Out, &vec![b'y'; TAIL_BYTES + 1]);
        assert_eq!(
            tail.len(),
            3,
            "a line larger than the whole tail is not kept"
        );
        let mut off = Tail::new(0);
        off.push(at(0), Stream::Out, b"x\n");
        assert!(off.is_empty());
    }

    fn spliced_file(lines: std::ops::Range<usize>) -> (tempfile::TempDir, Arc<File>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spliced.log");
        let data: Vec<u8> = lines
            .flat_map(|i| format!("spliced {i}\n").into_bytes())
            .collect();
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        (dir, file, data)
    }

    #[test]
    fn spliced_lines_are_read_back_in_order_with_the_time_of_their_read() {
        let (_dir, file, data) = spliced_file(0..50);
        let mut tail = Tail::new(30);
        tail.push(at(1), Stream::Err, b"before\n");
        // Two reads; the line the first one ends inside takes the second one's time.
        let mid = data.len() as u64 / 2 + 3;
        tail.push_span(Span {
            file,
            stream: Stream::Out,
            start: 0,
            reads: vec![(mid, at(2)), (data.len() as u64, at(3))],
        });
        assert!(tail.has_spans());
        tail.push(at(4), Stream::Err, b"after\n");
        assert!(!tail.has_spans(), "read back before a newer line goes in");
        let lines = tail.last(100, None, None);
        assert_eq!(lines.len(), 30);
        assert_eq!(lines[0].bytes, b"spliced 21\n");
        assert_eq!(lines[28].bytes, b"spliced 49\n");
        assert_eq!(lines[29].bytes, b"after\n");
        let mut end = 0u64;
        for line in &lines[..29] {
            let at_line = data
                .windows(line.bytes.len())
                .position(|w| w == line.bytes.as_slice())
                .unwrap() as u64;
            end = end.max(at_line + line.bytes.len() as u64);
            let expected = if end <= mid { at(2) } else { at(3) };
            assert_eq!(
                line.time,
                expected,
                "{:?}",
                String::from_utf8_lossy(&line.bytes)
            );
            assert_eq!(line.stream, Stream::Out);
        }
    }

    #[test]
    fn spans_are_bounded_and_a_file_cut_short_gives_nothing() {
        let (_dir, file, data) = spliced_file(0..30);
        let mut tail = Tail::new(1000);
        tail.max_bytes = 100;
        let span = |start: u64, end: u64| Span {
            file: file.clone(),
            stream: Stream::Out,
            start,
            reads: vec![(end, at(0))],
        };
        // Spans of whole lines (each line is 10 or 11 bytes).
        let line_end = |n: usize| {
            data.iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(n)
                .unwrap()
                .0 as u64
                + 1
        };
        tail.push_span(span(0, line_end(5)));
        tail.push_span(span(line_end(5), line_end(11)));
        tail.push_span(span(line_end(11), line_end(29)));
        assert_eq!(tail.spans.len(), 1, "newer spans alone fill the bound");
        let lines = tail.last(1000, None, None);
        assert_eq!(lines.last().unwrap().bytes, b"spliced 29\n");
        assert!(lines.iter().map(|l| l.bytes.len()).sum::<usize>() <= 100);
        // A span past the end of the file (someone truncated it): no lines, no half lines.
        tail.push_span(span(line_end(29), line_end(29) + 500));
        assert_eq!(tail.last(1000, None, None), lines);
    }
}
