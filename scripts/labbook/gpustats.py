"""GPU memory and utilization per epoch, so a run's record says whether a bigger batch would fit.

    gpu = gpustats.EpochStats(device)
    gpu.start()                                # at the start of each epoch
    record["gpu"] = gpu.finish(writer, epoch)  # after its evaluation
    metrics["gpu"] = gpu.summary(history)      # the run's peaks, over every epoch

Per epoch: the peak memory PyTorch's caching allocator had allocated to tensors and the peak it
had reserved from the driver (what `nvidia-smi` shows for the process, bar the CUDA context), in
MiB, and the mean GPU utilization, sampled once a second through NVML (`torch.cuda.utilization`,
which needs the nvidia-ml-py package) where that is available. On a CPU there is nothing of this
to measure, and on an Apple GPU (mps) PyTorch keeps no peaks: the record says so (`None` per
epoch, a note for the run) rather than showing zeros.
"""

import threading

import torch

MIB = 1024 * 1024
SAMPLE_SECONDS = 1.0  # NVML's own utilization counter covers the last 1/6 to 1 s


class EpochStats:
    def __init__(self, device: torch.device, sample_seconds: float = SAMPLE_SECONDS):
        self.device = torch.device(device)
        self.on_cuda = self.device.type == "cuda"
        self.note = (
            "no GPU: trained on cpu"
            if self.device.type == "cpu"
            else f"GPU memory not recorded: trained on {self.device.type}"
        )
        self.sample_seconds = sample_seconds
        self.utilization_error = None  # why utilization is not recorded, once it failed
        self._said_no_gpu = False
        self._samples, self._stop, self._thread = [], threading.Event(), None

    def start(self) -> None:
        """Reset the peaks and start sampling utilization (CUDA only; otherwise nothing)."""
        if not self.on_cuda:
            return
        torch.cuda.reset_peak_memory_stats(self.device)
        self._samples, self._stop = [], threading.Event()
        if self.utilization_error is None:
            self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        try:
            self._samples.append(float(torch.cuda.utilization(self.device)))
        except Exception as error:  # no nvidia-ml-py, no NVML driver, an unmapped MIG slice
            self.utilization_error = f"{type(error).__name__}: {error}"

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.sample_seconds) and self.utilization_error is None:
            self._sample()

    def finish(self, writer=None, epoch: int = 0) -> dict | None:
        """This epoch's record (None without a CUDA device), also written to TensorBoard."""
        if not self.on_cuda:
            if writer is not None and not self._said_no_gpu:
                writer.add_text("gpu", self.note, epoch)
                self._said_no_gpu = True
            return None
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if not self._samples and self.utilization_error is None:
            self._sample()  # an epoch shorter than one sampling interval: NVML's last ~second
        record = {
            "peak_allocated_mib": torch.cuda.max_memory_allocated(self.device) / MIB,
            "peak_reserved_mib": torch.cuda.max_memory_reserved(self.device) / MIB,
            "utilization_percent": sum(self._samples) / len(self._samples) if self._samples else None,
        }
        if writer is not None:
            for key, value in record.items():
                if value is not None:
                    writer.add_scalar(f"gpu/{key}", value, epoch)
        return record

    def summary(self, history: list) -> dict:
        """The run's GPU: its name and memory, the highest peaks and the mean utilization over
        the epochs of `history` (all of them, also those before a resume); or a note that there
        was no GPU."""
        if not self.on_cuda:
            return {"name": None, "note": self.note}
        epochs = [e["gpu"] for e in history if e.get("gpu")]
        utilization = [e["utilization_percent"] for e in epochs if e["utilization_percent"] is not None]
        return {
            "name": torch.cuda.get_device_name(self.device),
            "total_mib": torch.cuda.get_device_properties(self.device).total_memory / MIB,
            "peak_allocated_mib": max((e["peak_allocated_mib"] for e in epochs), default=None),
            "peak_reserved_mib": max((e["peak_reserved_mib"] for e in epochs), default=None),
            "utilization_percent": sum(utilization) / len(utilization) if utilization else None,
            "note": f"utilization not recorded: {self.utilization_error}" if self.utilization_error else "",
        }
