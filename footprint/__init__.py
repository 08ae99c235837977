"""footprint: what an initramfs holds and what it costs a kdump crashkernel= reservation."""

__version__ = "0.1.0"
