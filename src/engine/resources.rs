//! Resource sampling for supervised instances: CPU time and resident memory of a process tree
//! (one /proc read per process), cgroup v2 figures and limits, and per-process NVIDIA GPU use
//! through NVML loaded at run time, so a machine without the driver simply has no GPU figures.

use std::ffi::{CStr, c_char, c_uint, c_ulonglong, c_void};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;
use std::ptr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Cumulative CPU time and current resident memory of a process, a tree or a cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub cpu: Duration,
    pub rss_bytes: u64,
}

fn sysconf_once(cell: &'static OnceLock<u64>, name: libc::c_int, fallback: u64) -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    *cell.get_or_init(|| u64::try_from(unsafe { libc::sysconf(name) }).unwrap_or(fallback))
}

fn clock_ticks_per_sec() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    sysconf_once(&TICKS, libc::_SC_CLK_TCK, 100).max(1)
}

fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    sysconf_once(&PAGE, libc::_SC_PAGESIZE, 4096)
}

fn ticks_to_duration(ticks: u64) -> Duration {
    let hz = clock_ticks_per_sec();
    Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz)
}

/// CPU time and resident memory of one process, or None if it is gone.
///
/// CPU counts the process (utime + stime) and the children it has reaped (cutime +
/// cstime): when a short-lived child of a tree exits, its time moves into its parent
/// instead of vanishing, so a tree's total stays monotonic and [`CpuMeter`] does not see
/// a script that runs many short commands as idle.
///
/// Only /proc/PID/stat is read: its `rss` field is the same counter as the resident column
/// of /proc/PID/statm, so one open/read per process gives both figures.
pub fn process_usage(pid: u32) -> Option<Usage> {
    // A stat line is a few hundred bytes and procfs hands it over whole in one read, so a
    // stack buffer keeps the per-process cost to open + read + close.
    let mut buf = [0u8; 2048];
    // A read error (ESRCH) means the process exited between open and read.
    let len = File::open(format!("/proc/{pid}/stat"))
        .ok()?
        .read(&mut buf)
        .ok()?;
    parse_stat(&buf[..len])
}

fn parse_stat(line: &[u8]) -> Option<Usage> {
    // comm (field 2) may hold spaces and parentheses; everything after the last ')' is
    // plain numbers, starting with field 3 (state).
    let close = line.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&line[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let mut number = |skip| -> Option<u64> { fields.nth(skip)?.parse().ok() };
    // Fields 14-17 (utime, stime, cutime, cstime) and 24 (rss, in pages) are indices
    // 11-14 and 21 here.
    let ticks = number(11)? + number(0)? + number(0)? + number(0)?;
    let rss_pages = number(6)?;
    Some(Usage {
        cpu: ticks_to_duration(ticks),
        rss_bytes: rss_pages * page_size(),
    })
}

/// Sum over pids; pids that are gone are skipped.
pub fn tree_usage(pids: &[u32]) -> Usage {
    pids.iter()
        .filter_map(|&pid| process_usage(pid))
        .fold(Usage::default(), |acc, u| Usage {
            cpu: acc.cpu + u.cpu,
            rss_bytes: acc.rss_bytes + u.rss_bytes,
        })
}

/// A cgroup v2 directory's memory.current and cpu.stat `usage_usec`. None if either is
/// unreadable, e.g. when the memory controller is not enabled there (hybrid hierarchies):
/// the caller then falls back to [`tree_usage`].
pub fn cgroup_usage(dir: &Path) -> Option<Usage> {
    let memory = fs::read_to_string(dir.join("memory.current")).ok()?;
    let stat = fs::read_to_string(dir.join("cpu.stat")).ok()?;
    let usec = stat.lines().find_map(|l| l.strip_prefix("usage_usec "))?;
    Some(Usage {
        cpu: Duration::from_micros(usec.trim().parse().ok()?),
        rss_bytes: memory.trim().parse().ok()?,
    })
}

/// Turns successive cumulative CPU samples of one instance into a percentage, where 100%
/// is one core fully busy.
#[derive(Debug, Default)]
pub struct CpuMeter {
    prev: Option<(Instant, Duration)>,
}

impl CpuMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// None on the first sample and when time did not advance. A drop in cumulative CPU
    /// means the measured processes were replaced (restart): that reads as 0% and the new
    /// sample becomes the baseline.
    pub fn percent(&mut self, now: Instant, cpu: Duration) -> Option<f64> {
        let Some((then, before)) = self.prev else {
            self.prev = Some((now, cpu));
            return None;
        };
        let elapsed = now.checked_duration_since(then).filter(|d| !d.is_zero())?;
        self.prev = Some((now, cpu));
        let used = cpu.checked_sub(before).unwrap_or_default();
        Some(used.as_secs_f64() / elapsed.as_secs_f64() * 100.0)
    }

    pub fn reset(&mut self) {
        self.prev = None;
    }
}

/// cgroup v2 CPU bandwidth period; the kernel default, so quotas read back as users expect.
const CPU_PERIOD_USEC: u64 = 100_000;

fn cpu_max_line(cpus: f64) -> io::Result<String> {
    if !cpus.is_finite() || cpus <= 0.0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu.max: {cpus} is not a positive number of CPUs"),
        ));
    }
    // The kernel refuses quotas under 1 ms.
    let quota = ((cpus * CPU_PERIOD_USEC as f64).round() as u64).max(1000);
    Ok(format!("{quota} {CPU_PERIOD_USEC}"))
}

/// Writes memory.max (bytes), cpu.max (from a fraction of CPUs: 1.5 → "150000 100000") and
/// pids.max into a cgroup v2 directory; None leaves a limit untouched. The error names the
/// file that failed.
pub fn apply_limits(
    dir: &Path,
    memory_max: Option<u64>,
    cpu_max: Option<f64>,
    pids_max: Option<u64>,
) -> io::Result<()> {
    // Validate before writing anything so a bad value does not leave limits half applied.
    let cpu_line = cpu_max.map(cpu_max_line).transpose()?;
    let writes = [
        ("memory.max", memory_max.map(|b| b.to_string())),
        ("cpu.max", cpu_line),
        ("pids.max", pids_max.map(|n| n.to_string())),
    ];
    for (name, value) in writes {
        if let Some(value) = value {
            let path = dir.join(name);
            fs::write(&path, value)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        }
    }
    Ok(())
}

// ---- NVML -------------------------------------------------------------------------------

type NvmlReturn = c_uint;
type NvmlDevice = *mut c_void;
const NVML_SUCCESS: NvmlReturn = 0;
const NVML_ERROR_NOT_FOUND: NvmlReturn = 6;
const NVML_ERROR_INSUFFICIENT_SIZE: NvmlReturn = 7;
/// usedGpuMemory when the driver cannot tell (no privilege under MIG, Windows WDDM).
const NVML_VALUE_NOT_AVAILABLE: c_ulonglong = c_ulonglong::MAX;

/// nvmlProcessInfo_v2_t; also what _v3 takes on drivers outside the window noted in
/// [`Api::resolve`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct ProcessInfo {
    pid: c_uint,
    used_gpu_memory: c_ulonglong,
    gpu_instance_id: c_uint,
    compute_instance_id: c_uint,
}

/// nvmlProcessUtilizationSample_t.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct UtilSample {
    pid: c_uint,
    time_stamp: c_ulonglong,
    sm_util: c_uint,
    mem_util: c_uint,
    enc_util: c_uint,
    dec_util: c_uint,
}

/// A device's memory in bytes (nvmlMemory_t).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GpuMemory {
    pub total: u64,
    pub free: u64,
    pub used: u64,
}

type InitFn = unsafe extern "C" fn() -> NvmlReturn;
type CountFn = unsafe extern "C" fn(*mut c_uint) -> NvmlReturn;
type HandleFn = unsafe extern "C" fn(c_uint, *mut NvmlDevice) -> NvmlReturn;
type ProcessesFn = unsafe extern "C" fn(NvmlDevice, *mut c_uint, *mut ProcessInfo) -> NvmlReturn;
type UtilFn =
    unsafe extern "C" fn(NvmlDevice, *mut UtilSample, *mut c_uint, c_ulonglong) -> NvmlReturn;
type MemoryFn = unsafe extern "C" fn(NvmlDevice, *mut GpuMemory) -> NvmlReturn;
type ErrorStringFn = unsafe extern "C" fn(NvmlReturn) -> *const c_char;

struct Api {
    init: InitFn,
    shutdown: InitFn,
    count: CountFn,
    handle: HandleFn,
    processes: ProcessesFn,
    utilization: UtilFn,
    memory: MemoryFn,
    error_string: ErrorStringFn,
}

/// Looks a symbol up as a function pointer.
///
/// # Safety
/// `lib` must be a live dlopen handle and `T` the exact `unsafe extern "C" fn` type of the
/// symbol's C prototype.
unsafe fn sym<T: Copy>(lib: *mut c_void, name: &CStr) -> Option<T> {
    assert_eq!(size_of::<T>(), size_of::<*mut c_void>());
    // SAFETY: `lib` is live and `name` NUL-terminated (caller's contract).
    let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
    // SAFETY: p is non-null and T is a pointer-sized fn pointer type (caller's contract).
    (!p.is_null()).then(|| unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
}

impl Api {
    /// # Safety
    /// `lib` must be a live dlopen handle of libnvidia-ml.
    unsafe fn resolve(lib: *mut c_void) -> Option<Api> {
        // SAFETY: `lib` is live (caller's contract); each type below is nvml.h's prototype.
        let has = |name: &CStr| unsafe { sym::<InitFn>(lib, name) }.is_some();
        // _v3 takes the 4-field struct everywhere except a short run of drivers whose
        // header added usedGpuCcProtectedMemory to it (later moved to
        // nvmlProcessDetail_v1_t). Those drivers export nvmlDeviceGetConfComputeMemSizeInfo
        // but not yet nvmlDeviceGetRunningProcessDetailList; on them use _v2, whose layout
        // never changed.
        let wide_v3 = has(c"nvmlDeviceGetConfComputeMemSizeInfo")
            && !has(c"nvmlDeviceGetRunningProcessDetailList");
        // SAFETY: as above, for every lookup in this block.
        unsafe {
            let v3 = (!wide_v3).then(|| sym(lib, c"nvmlDeviceGetComputeRunningProcesses_v3"));
            Some(Api {
                init: sym(lib, c"nvmlInit_v2")?,
                shutdown: sym(lib, c"nvmlShutdown")?,
                count: sym(lib, c"nvmlDeviceGetCount_v2")?,
                handle: sym(lib, c"nvmlDeviceGetHandleByIndex_v2")?,
                processes: v3
                    .flatten()
                    .or_else(|| sym(lib, c"nvmlDeviceGetComputeRunningProcesses_v2"))?,
                utilization: sym(lib, c"nvmlDeviceGetProcessUtilization")?,
                memory: sym(lib, c"nvmlDeviceGetMemoryInfo")?,
                error_string: sym(lib, c"nvmlErrorString")?,
            })
        }
    }
}

/// Closes the dlopen handle last, after Nvml's Drop has shut NVML down.
struct Library(*mut c_void);

impl Drop for Library {
    fn drop(&mut self) {
        // SAFETY: the handle came from a successful dlopen and is closed once, here.
        unsafe { libc::dlclose(self.0) };
    }
}

/// Fills a list through NVML's "count in, count out" convention: ask for the size with a
/// null buffer, then fetch with some slack, retrying while the list keeps growing.
fn query_list<T: Copy + Default>(
    mut call: impl FnMut(*mut c_uint, *mut T) -> NvmlReturn,
) -> Result<Vec<T>, NvmlReturn> {
    let mut count: c_uint = 0;
    match call(&mut count, ptr::null_mut()) {
        NVML_SUCCESS if count == 0 => return Ok(Vec::new()),
        NVML_SUCCESS | NVML_ERROR_INSUFFICIENT_SIZE => {}
        err => return Err(err),
    }
    for _ in 0..4 {
        let cap = count.saturating_add(8);
        // Twice the entries NVML is told about: should a driver write a wider struct than
        // we expect, the data is wrong but nothing is written past the buffer.
        let mut buf = vec![T::default(); cap as usize * 2];
        let mut n = cap;
        match call(&mut n, buf.as_mut_ptr()) {
            NVML_SUCCESS => {
                buf.truncate(n.min(cap) as usize);
                return Ok(buf);
            }
            NVML_ERROR_INSUFFICIENT_SIZE => count = n.max(cap),
            err => return Err(err),
        }
    }
    Err(NVML_ERROR_INSUFFICIENT_SIZE)
}

/// NVIDIA GPUs through NVML, dlopened at run time.
pub struct Nvml {
    api: Api,
    devices: Vec<NvmlDevice>,
    /// Per device: newest utilisation timestamp seen, so each sample covers only the
    /// window since the previous one.
    last_seen: Vec<c_ulonglong>,
    last_error: Option<String>,
    _lib: Library,
}

// SAFETY: NVML is documented as thread-safe, and device handles are process-wide driver
// handles not tied to the thread that obtained them; this lets a tokio task own an Nvml.
unsafe impl Send for Nvml {}

/// One process's use of one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuProcess {
    pub device: u32,
    pub pid: u32,
    pub used_memory: u64,
    /// SM utilisation % over the last sampling window, where NVML reported a sample.
    pub sm_util: Option<u32>,
}

impl Nvml {
    /// None when libnvidia-ml.so.1, a symbol, the driver, or the device list is unavailable.
    pub fn load() -> Option<Nvml> {
        // SAFETY: constant NUL-terminated name; NVML's initialisers run no code of ours.
        let handle = unsafe {
            libc::dlopen(
                c"libnvidia-ml.so.1".as_ptr(),
                libc::RTLD_NOW | libc::RTLD_LOCAL,
            )
        };
        if handle.is_null() {
            return None;
        }
        let lib = Library(handle);
        // SAFETY: `lib` was just opened and is NVML.
        let api = unsafe { Api::resolve(lib.0) }?;
        // SAFETY: nvmlInit_v2 takes no arguments; it fails cleanly without a driver.
        if unsafe { (api.init)() } != NVML_SUCCESS {
            return None;
        }
        // From here on Drop pairs the successful init with nvmlShutdown.
        let mut nvml = Nvml {
            api,
            devices: Vec::new(),
            last_seen: Vec::new(),
            last_error: None,
            _lib: lib,
        };
        let mut count: c_uint = 0;
        // SAFETY: count is a valid out pointer.
        if unsafe { (nvml.api.count)(&mut count) } != NVML_SUCCESS {
            return None;
        }
        for index in 0..count {
            let mut dev: NvmlDevice = ptr::null_mut();
            // SAFETY: index < count and dev is a valid out pointer.
            if unsafe { (nvml.api.handle)(index, &mut dev) } != NVML_SUCCESS {
                return None;
            }
            nvml.devices.push(dev);
        }
        nvml.last_seen = vec![0; nvml.devices.len()];
        Some(nvml)
    }

    pub fn device_count(&self) -> u32 {
        self.devices.len() as u32
    }

    /// Total, free and used memory of one device.
    pub fn device_memory(&self, device: u32) -> Option<GpuMemory> {
        let dev = *self.devices.get(device as usize)?;
        let mut mem = GpuMemory::default();
        // SAFETY: dev is a handle from NVML and mem a valid nvmlMemory_t out pointer.
        (unsafe { (self.api.memory)(dev, &mut mem) } == NVML_SUCCESS).then_some(mem)
    }

    /// Why the last [`Nvml::sample`] skipped a device or its utilisation, if it did.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    fn error_text(&self, ret: NvmlReturn) -> String {
        // SAFETY: nvmlErrorString accepts any code and returns a static string or null.
        let p = unsafe { (self.api.error_string)(ret) };
        if p.is_null() {
            return format!("NVML error {ret}");
        }
        // SAFETY: p is non-null and points at a static NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// Per-pid GPU memory and SM utilisation on every device. Failures skip the device (or
    /// just its utilisation) and are kept for [`Nvml::last_error`].
    pub fn sample(&mut self) -> Vec<GpuProcess> {
        self.last_error = None;
        let mut out = Vec::new();
        for index in 0..self.devices.len() {
            let dev = self.devices[index];
            let processes = self.api.processes;
            // SAFETY: query_list passes a valid count pointer and null or a buffer of at
            // least that many entries.
            let procs = match query_list(|n, buf| unsafe { processes(dev, n, buf) }) {
                Ok(p) => p,
                Err(ret) => {
                    self.last_error = Some(format!("GPU {index}: {}", self.error_text(ret)));
                    continue;
                }
            };
            let utils = self.utilization(index);
            let device = index as u32;
            for p in &procs {
                let used_memory = match p.used_gpu_memory {
                    NVML_VALUE_NOT_AVAILABLE => 0,
                    bytes => bytes,
                };
                let sm_util = utils.iter().find(|u| u.0 == p.pid).map(|u| u.1);
                out.push(GpuProcess {
                    device,
                    pid: p.pid,
                    used_memory,
                    sm_util,
                });
            }
        }
        out
    }

    /// Mean SM utilisation per pid over the samples newer than the device's last timestamp.
    fn utilization(&mut self, index: usize) -> Vec<(u32, u32)> {
        let (dev, since) = (self.devices[index], self.last_seen[index]);
        let util_fn = self.api.utilization;
        // SAFETY: query_list passes a valid count pointer and null or a buffer of at least
        // that many entries.
        let samples = match query_list(|n, buf| unsafe { util_fn(dev, buf, n, since) }) {
            Ok(s) => s,
            // No samples since `since`: nothing ran, not a failure.
            Err(NVML_ERROR_NOT_FOUND) => return Vec::new(),
            Err(ret) => {
                self.last_error =
                    Some(format!("GPU {index} utilisation: {}", self.error_text(ret)));
                return Vec::new();
            }
        };
        let mut sums: Vec<(u32, u64, u64)> = Vec::new();
        for s in &samples {
            self.last_seen[index] = self.last_seen[index].max(s.time_stamp);
            match sums.iter_mut().find(|e| e.0 == s.pid) {
                Some(e) => (e.1, e.2) = (e.1 + u64::from(s.sm_util), e.2 + 1),
                None => sums.push((s.pid, u64::from(s.sm_util), 1)),
            }
        }
        sums.into_iter()
            .map(|(pid, sum, n)| (pid, (sum / n) as u32))
            .collect()
    }
}

impl Drop for Nvml {
    fn drop(&mut self) {
        // SAFETY: NVML was initialised in load(); this is the matching shutdown, before the
        // library handle (dropped after this body) is closed.
        unsafe { (self.api.shutdown)() };
    }
}

/// GPU figures for a process tree: memory summed over its pids on all devices, utilisation
/// the highest any of them reported.
pub fn gpu_usage(samples: &[GpuProcess], pids: &[u32]) -> (u64, Option<u32>) {
    samples
        .iter()
        .filter(|s| pids.contains(&s.pid))
        .fold((0, None), |(mem, util), s| {
            (mem + s.used_memory, util.max(s.sm_util))
        })
}

/// NVML shared by every instance: one sample per sampling tick, however many instances ask.
pub struct GpuSampler {
    state: std::sync::Mutex<(Nvml, Option<GpuSample>)>,
}

/// The last NVML sample and when it was taken.
type GpuSample = (std::time::Instant, Vec<GpuProcess>);

impl GpuSampler {
    /// None where no NVIDIA driver is present (the GPU figures are then simply absent).
    pub fn load() -> Option<GpuSampler> {
        Nvml::load().map(|nvml| GpuSampler {
            state: std::sync::Mutex::new((nvml, None)),
        })
    }

    pub fn device_count(&self) -> u32 {
        self.state.lock().map(|s| s.0.device_count()).unwrap_or(0)
    }

    /// The processes using each GPU now (a sample at most 100 ms old).
    pub fn processes(&self) -> Vec<GpuProcess> {
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        let now = std::time::Instant::now();
        if let Some((at, processes)) = &state.1
            && now.duration_since(*at) < Duration::from_millis(100)
        {
            return processes.clone();
        }
        let processes = state.0.sample();
        state.1 = Some((now, processes.clone()));
        processes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::{Child, Command};
    use std::thread::sleep;

    const MIB: u64 = 1024 * 1024;

    /// Kills and reaps the child however the test ends.
    struct Reaped(Child);

    impl Reaped {
        fn spawn(program: &str, args: &[&str]) -> Reaped {
            Reaped(Command::new(program).args(args).spawn().expect("spawn"))
        }
        fn pid(&self) -> u32 {
            self.0.id()
        }
    }

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn busy_child() -> Reaped {
        Reaped::spawn("sh", &["-c", "while :; do :; done"])
    }

    #[test]
    fn parse_stat_survives_odd_command_names() {
        let line = b"42 (a) b (c)) R 1 2 3 4 5 6 7 8 9 10 150 50 3 2 20 0 1 0 99 4096 7 rest";
        let u = parse_stat(line).unwrap();
        assert_eq!(u.cpu, ticks_to_duration(205));
        assert_eq!(u.rss_bytes, 7 * page_size());
        assert_eq!(parse_stat(b"42 (truncated) R 1 2"), None);
    }

    #[test]
    fn own_and_child_usage_until_reaped() {
        let own = process_usage(std::process::id()).unwrap();
        assert!(own.rss_bytes > 0, "{own:?}");
        let mut child = Reaped::spawn("sleep", &["5"]);
        let pid = child.pid();
        assert!(process_usage(pid).is_some());
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        assert_eq!(process_usage(pid), None);
    }

    #[test]
    fn reaped_childrens_cpu_stays_with_the_parent() {
        // The grandchild burns a fixed 300 ms of CPU, however long a loaded machine takes
        // to give it that, and is reaped by the shell, which then sleeps.
        let burn = "import time\nwhile time.process_time() < 0.3: pass";
        let script = format!("python3 -c '{burn}'; sleep 60");
        let child = Reaped::spawn("sh", &["-c", &script]);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut cpu = Duration::ZERO;
        while cpu < Duration::from_millis(300) && Instant::now() < deadline {
            sleep(Duration::from_millis(100));
            cpu = process_usage(child.pid()).unwrap().cpu;
        }
        assert!(cpu >= Duration::from_millis(300), "{cpu:?}");
    }

    #[test]
    fn tree_usage_sees_touched_memory_and_skips_missing_pids() {
        let code = "b = b'\\x01' * (64 * 1024 * 1024); import time; time.sleep(10)";
        let child = Reaped::spawn("/usr/bin/env", &["python3", "-c", code]);
        // Larger than any pid_max, so never a live process.
        let pids = [child.pid(), 4_000_000_000];
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut usage = tree_usage(&pids);
        while usage.rss_bytes < 60 * MIB && Instant::now() < deadline {
            sleep(Duration::from_millis(50));
            usage = tree_usage(&pids);
        }
        assert!(usage.rss_bytes >= 60 * MIB, "{usage:?}");
    }

    #[test]
    fn cpu_meter_reports_a_busy_child() {
        let child = busy_child();
        let mut meter = CpuMeter::new();
        let sample = || (Instant::now(), process_usage(child.pid()).unwrap().cpu);
        let (mut then, mut before) = sample();
        assert_eq!(meter.percent(then, before), None);
        // How much CPU a loaded machine gives the child in a window is not ours to bound:
        // the meter must report exactly what the samples say, and the child must be seen
        // busy in some window.
        let mut seen_busy = false;
        for _ in 0..50 {
            sleep(Duration::from_millis(100));
            let (now, cpu) = sample();
            let percent = meter.percent(now, cpu).unwrap();
            let expected = (cpu - before).as_secs_f64() / (now - then).as_secs_f64() * 100.0;
            assert!((percent - expected).abs() < 1e-9, "{percent} vs {expected}");
            assert!(percent < 100.0 * 64.0, "{percent}");
            (then, before) = (now, cpu);
            if percent > 0.0 {
                seen_busy = true;
                break;
            }
        }
        assert!(seen_busy, "a busy child never used CPU in 5 s");
    }

    #[test]
    fn cpu_meter_edges() {
        let (mut meter, t0, secs) = (CpuMeter::default(), Instant::now(), Duration::from_secs);
        assert_eq!(meter.percent(t0, secs(5)), None);
        assert_eq!(meter.percent(t0, secs(6)), None); // no time passed
        assert_eq!(meter.percent(t0 + secs(2), secs(6)), Some(50.0));
        assert_eq!(meter.percent(t0 + secs(3), secs(1)), Some(0.0)); // replaced
        assert_eq!(meter.percent(t0 + secs(5), secs(2)), Some(50.0));
        meter.reset();
        assert_eq!(meter.percent(t0 + secs(6), secs(9)), None);
    }

    #[test]
    fn cpu_max_lines() {
        assert_eq!(cpu_max_line(1.5).unwrap(), "150000 100000");
        assert_eq!(cpu_max_line(0.25).unwrap(), "25000 100000");
        assert_eq!(cpu_max_line(0.0001).unwrap(), "1000 100000");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(cpu_max_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gpu_usage_sums_memory_and_takes_max_util() {
        let samples = [
            (0, 10, 100, Some(20)),
            (1, 10, 50, None),
            (0, 11, 7, Some(60)),
            (0, 9, 1, Some(90)),
        ]
        .map(|(device, pid, used_memory, sm_util)| GpuProcess {
            device,
            pid,
            used_memory,
            sm_util,
        });
        assert_eq!(gpu_usage(&samples, &[10, 11]), (157, Some(60)));
        assert_eq!(gpu_usage(&samples[1..2], &[10]), (50, None));
        assert_eq!(gpu_usage(&samples, &[5]), (0, None));
    }

    #[test]
    fn nvml_absent_without_the_library() {
        // SAFETY: constant name; the handle, if any, is closed right away.
        let handle = unsafe { libc::dlopen(c"libnvidia-ml.so.1".as_ptr(), libc::RTLD_NOW) };
        if handle.is_null() {
            assert!(Nvml::load().is_none());
        } else {
            // SAFETY: handle came from the dlopen above.
            unsafe { libc::dlclose(handle) };
            eprintln!("NVML present; loaded: {}", Nvml::load().is_some());
        }
    }

    #[test]
    #[ignore = "needs an NVIDIA GPU and driver"]
    fn nvml_samples_on_a_gpu_machine() {
        let mut nvml = Nvml::load().expect("NVML loads on a GPU machine");
        assert!(nvml.device_count() >= 1);
        for d in 0..nvml.device_count() {
            println!("device {d}: {:?}", nvml.device_memory(d));
        }
        for round in 0..3 {
            let sample = nvml.sample();
            println!(
                "sample {round}: {sample:?} (error: {:?})",
                nvml.last_error()
            );
            sleep(Duration::from_secs(1));
        }
    }

    /// This process's cgroup directory on the cgroup2 mount, wherever that is mounted.
    fn own_cgroup2_dir() -> Option<PathBuf> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mount = mountinfo.lines().find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split(' ').next()? == "cgroup2").then(|| left.split(' ').nth(4))?
        })?;
        let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
        let own = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
        Some(Path::new(mount).join(own.trim_start_matches('/')))
    }

    /// Removes the test cgroup however the test ends (after its processes are reaped).
    struct TempCgroup(PathBuf);

    impl Drop for TempCgroup {
        fn drop(&mut self) {
            // Retried: a just-reaped member can keep the cgroup busy for a moment.
            for _ in 0..50 {
                let Err(_) = fs::remove_dir(&self.0) else {
                    return;
                };
                sleep(Duration::from_millis(20));
            }
        }
    }

    #[test]
    fn cgroup_limits_and_usage_on_a_real_cgroup() {
        let Some(parent) = own_cgroup2_dir() else {
            eprintln!("skipped: no cgroup2 mount");
            return;
        };
        let dir = parent.join(format!("tend-resources-test-{}", std::process::id()));
        if let Err(e) = fs::create_dir(&dir) {
            eprintln!("skipped: cannot create {}: {e}", dir.display());
            return;
        }
        let cgroup = TempCgroup(dir);
        let dir = &cgroup.0;
        let controllers = fs::read_to_string(dir.join("cgroup.controllers")).unwrap();
        let enabled = |c: &str| controllers.split_whitespace().any(|x| x == c);

        let checks = [
            ("memory", "memory.max", "268435456"),
            ("cpu", "cpu.max", "150000 100000"),
            ("pids", "pids.max", "64"),
        ];
        for (controller, file, expected) in checks {
            let result = match controller {
                "memory" => apply_limits(dir, Some(256 * MIB), None, None),
                "cpu" => apply_limits(dir, None, Some(1.5), None),
                _ => apply_limits(dir, None, None, Some(64)),
            };
            if enabled(controller) {
                result.unwrap();
                assert_eq!(fs::read_to_string(dir.join(file)).unwrap().trim(), expected);
            } else {
                let err = result.unwrap_err().to_string();
                assert!(err.contains(file), "{err}");
                eprintln!("note: {controller} controller not enabled here; got {err}");
            }
        }

        if !dir.join("memory.current").exists() {
            assert_eq!(cgroup_usage(dir), None);
            eprintln!("note: no memory controller here, cgroup_usage is None as documented");
            return;
        }
        let child = busy_child();
        fs::write(dir.join("cgroup.procs"), child.pid().to_string()).unwrap();
        sleep(Duration::from_millis(300));
        let usage = cgroup_usage(dir).unwrap();
        assert!(usage.cpu > Duration::ZERO, "{usage:?}");
        assert!(usage.rss_bytes > 0, "{usage:?}");
        drop(child);
    }
}
