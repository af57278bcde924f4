//! GPU memory as the NVIDIA driver reports it (NVML, loaded at run time, so a machine without the
//! driver only gets an error): the card's total, for checking a budget at start, and a sampler
//! that records the peak used while a benchmark runs.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use nvml_wrapper::{enums::device::UsedGpuMemory, Nvml};

const MB: u64 = 1 << 20;

/// One GPU, seen through NVML.
pub struct GpuMemory {
    nvml: Nvml,
    index: u32,
    /// Device memory in use before this process allocated anything, for when the driver does not
    /// list this process (as inside a container with its own PID namespace).
    baseline_bytes: u64,
}

impl GpuMemory {
    /// Opens the GPU CUDA calls device 0: the first of `CUDA_VISIBLE_DEVICES` when it is a
    /// number, else NVML's first.
    pub fn open() -> Result<Self, String> {
        let nvml = Nvml::init().map_err(|error| format!("NVML is not available: {error}"))?;
        let index = std::env::var("CUDA_VISIBLE_DEVICES")
            .ok()
            .and_then(|list| list.split(',').next()?.trim().parse().ok())
            .unwrap_or(0);
        let baseline_bytes = nvml
            .device_by_index(index)
            .and_then(|device| device.memory_info())
            .map_err(|error| format!("GPU {index}: {error}"))?
            .used;
        Ok(Self {
            nvml,
            index,
            baseline_bytes,
        })
    }

    pub fn name(&self) -> String {
        self.nvml
            .device_by_index(self.index)
            .and_then(|device| device.name())
            .unwrap_or_else(|_| format!("GPU {}", self.index))
    }

    pub fn total_mb(&self) -> Result<u64, String> {
        self.nvml
            .device_by_index(self.index)
            .and_then(|device| device.memory_info())
            .map(|info| info.total / MB)
            .map_err(|error| error.to_string())
    }

    /// This process's GPU memory in bytes: what the driver lists for its PID, else the device's
    /// use above the baseline taken at `open`.
    pub fn used_bytes(&self) -> Result<u64, String> {
        let device = self
            .nvml
            .device_by_index(self.index)
            .map_err(|error| error.to_string())?;
        let pid = std::process::id();
        let listed = device
            .running_compute_processes()
            .unwrap_or_default()
            .into_iter()
            .find(|process| process.pid == pid)
            .and_then(|process| match process.used_gpu_memory {
                UsedGpuMemory::Used(bytes) => Some(bytes),
                UsedGpuMemory::Unavailable => None,
            });
        match listed {
            Some(bytes) => Ok(bytes),
            None => device
                .memory_info()
                .map(|info| info.used.saturating_sub(self.baseline_bytes))
                .map_err(|error| error.to_string()),
        }
    }
}

/// Samples [`GpuMemory::used_bytes`] every 10 ms on its own thread and keeps the peak.
pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    peak_bytes: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl PeakSampler {
    pub fn start(gpu: Arc<GpuMemory>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_bytes = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, peak_bytes) = (stop.clone(), peak_bytes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(used) = gpu.used_bytes() {
                        peak_bytes.fetch_max(used, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Self {
            stop,
            peak_bytes,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns the peak in MB.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peak_bytes.load(Ordering::Relaxed).div_ceil(MB)
    }
}

impl Drop for PeakSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
