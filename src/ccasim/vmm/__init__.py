"""The VMM side of launching a realm: what kvmtool and QEMU do with their options.

:mod:`ccasim.vmm.kvmtool` and :mod:`ccasim.vmm.qemu` turn a command line into a
:class:`~ccasim.vmm.launch.Launch` (the realm's configuration, its RAM, the images and where
they go, the vCPUs), using the VMMs' own placement rules (:mod:`ccasim.vmm.layout`), the arm64
Image header (:mod:`ccasim.vmm.image`) and the guest device tree (:mod:`ccasim.vmm.fdt`).
``ccasim measure`` predicts a launch's measurements; a VMM executes it.
"""
