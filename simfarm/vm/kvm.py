"""Asking KVM in-process whether QEMU's ``-cpu host`` would start, without running QEMU.

Where hardware virtualization is broken (nested setups) /dev/kvm opens and
a VM and a vCPU are created fine, but the vCPU refuses the feature MSRs that
KVM itself reports as supported: QEMU writes them when it resets a vCPU
with ``-cpu host`` and aborts ("failed to set MSR 0x10a to 0x69"). This
does what QEMU does up to that write: a VM, a vCPU given the CPUID KVM
supports, then the same MSRs, in QEMU's order, set to KVM's own values.
Only x86 has these MSRs; elsewhere creating the vCPU is the whole probe.
"""

from __future__ import annotations

import fcntl
import os
import struct

KVM_API_VERSION = 12
# ioctl numbers from <linux/kvm.h>.
_GET_API_VERSION = 0xAE00
_CREATE_VM = 0xAE01
_CHECK_EXTENSION = 0xAE03
_GET_SUPPORTED_CPUID = 0xC008AE05
_GET_MSR_FEATURE_INDEX_LIST = 0xC004AE0A
_CREATE_VCPU = 0xAE41
_GET_MSRS = 0xC008AE88
_SET_MSRS = 0x4008AE89
_SET_CPUID2 = 0x4008AE90
_CAP_GET_MSR_FEATURES = 153
# The feature MSRs QEMU 7.2 writes at vCPU init (kvm_init_msrs), in its order: arch capabilities,
# core capabilities, perf capabilities, microcode revision.
QEMU_FEATURE_MSRS = (0x10A, 0xCF, 0x345, 0x8B)
_MAX_ENTRIES = 256
_CPUID_ENTRY_SIZE = 40  # struct kvm_cpuid_entry2
_MSR_ENTRY = struct.Struct("=IIQ")  # struct kvm_msr_entry: index, reserved, data


def probe(device: str = "/dev/kvm") -> str | None:
    """Why QEMU could not use KVM here (a phrase like QEMU's own error), or None when it could."""
    try:
        kvm = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot open {device}: {exc.strerror}"
    opened = [kvm]
    try:
        if (api := fcntl.ioctl(kvm, _GET_API_VERSION)) != KVM_API_VERSION:
            return f"KVM API version {api}, expected {KVM_API_VERSION}"
        try:
            opened.append(vm := fcntl.ioctl(kvm, _CREATE_VM, 0))
            opened.append(vcpu := fcntl.ioctl(vm, _CREATE_VCPU, 0))
        except OSError as exc:
            return f"cannot create a {'vCPU' if len(opened) == 2 else 'VM'}: {exc.strerror}"
        if not fcntl.ioctl(kvm, _CHECK_EXTENSION, _CAP_GET_MSR_FEATURES):
            return None
        try:
            _set_supported_cpuid(kvm, vcpu)
            return _refused_msr(kvm, vcpu)
        except OSError as exc:
            return f"cannot set up a vCPU like -cpu host: {exc.strerror}"
    finally:
        for fd in reversed(opened):
            os.close(fd)


def _set_supported_cpuid(kvm: int, vcpu: int) -> None:
    """Give the vCPU every CPUID feature KVM supports, as ``-cpu host`` does (the MSRs depend on them)."""
    cpuid = bytearray(struct.pack("=II", _MAX_ENTRIES, 0) + bytes(_CPUID_ENTRY_SIZE * _MAX_ENTRIES))
    fcntl.ioctl(kvm, _GET_SUPPORTED_CPUID, cpuid)
    fcntl.ioctl(vcpu, _SET_CPUID2, cpuid)


def _refused_msr(kvm: int, vcpu: int) -> str | None:
    listing = bytearray(struct.pack("=I", _MAX_ENTRIES) + bytes(4 * _MAX_ENTRIES))
    fcntl.ioctl(kvm, _GET_MSR_FEATURE_INDEX_LIST, listing)
    (count,) = struct.unpack_from("=I", listing)
    supported = set(struct.unpack_from(f"={count}I", listing, 4))
    entries = [(index, _feature_value(kvm, index)) for index in QEMU_FEATURE_MSRS if index in supported]
    if not entries:
        return None
    # KVM_SET_MSRS returns how many entries it set: it stops at the first it refuses.
    msrs = bytearray(struct.pack("=II", len(entries), 0) + b"".join(_MSR_ENTRY.pack(i, 0, v) for i, v in entries))
    done = fcntl.ioctl(vcpu, _SET_MSRS, msrs)
    if done < len(entries):
        index, value = entries[done]
        return f"failed to set MSR {index:#x} to {value:#x}"
    return None


def _feature_value(kvm: int, index: int) -> int:
    """The value KVM reports for feature MSR ``index`` (what ``-cpu host`` passes on)."""
    msrs = bytearray(struct.pack("=II", 1, 0) + _MSR_ENTRY.pack(index, 0, 0))
    fcntl.ioctl(kvm, _GET_MSRS, msrs)
    return _MSR_ENTRY.unpack_from(msrs, 8)[2]
