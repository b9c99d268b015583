//! The in-memory tail of one instance's output: the last lines of both streams, in the order
//! they were read, each with its time. It serves `tend logs -n` at once and outlives the
//! process. Bounded in lines and bytes; storing a line copies it, and never allocates once
//! the buffers have grown.

use std::collections::VecDeque;
use std::time::SystemTime;

use crate::logs::Stream;

/// At most this many bytes of lines are kept per instance, whatever `tail` says, so a program
/// printing huge lines cannot make tend's memory grow without bound.
pub const TAIL_BYTES: usize = 1024 * 1024;

/// One line as kept: when it was read, from which stream, and its bytes (with the newline).
#[derive(Debug, Clone, PartialEq)]
pub struct TailLine {
    pub time: SystemTime,
    pub stream: Stream,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
pub struct Tail {
    bytes: VecDeque<u8>,
    lines: VecDeque<(SystemTime, Stream, usize)>,
    max_lines: usize,
    max_bytes: usize,
}

impl Tail {
    pub fn new(max_lines: usize) -> Tail {
        Tail {
            bytes: VecDeque::new(),
            lines: VecDeque::new(),
            max_lines,
            max_bytes: TAIL_BYTES,
        }
    }

    pub fn push(&mut self, time: SystemTime, stream: Stream, line: &[u8]) {
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

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The last `n` lines (of `stream` only, when given) read at or after `since`.
    pub fn last(
        &self,
        n: usize,
        stream: Option<Stream>,
        since: Option<SystemTime>,
    ) -> Vec<TailLine> {
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
}
