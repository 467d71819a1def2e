"""Definitions of the Arm architecture that several layers share (Arm ARM, DDI 0487).

Constants and pure encodings only, no state: the machine, the RMM and the host all build
against them, as real hardware, firmware and kernels build against the architecture.
"""
