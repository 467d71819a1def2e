"""The device tree a VMM passes to a realm guest (ccasim.vmm.fdt)."""

import libfdt

from ccasim.vmm.fdt import GicLayout, GuestDescription, build

GIC = GicLayout(0x3FFF_0000, 0x1_0000, 0x3FFD_0000)


def describe(**kw):
    values = dict(ram_base=0x8000_0000, ram_size=256 << 20, cpus=2, gic=GIC)
    values.update(kw)
    return GuestDescription(**values)


def test_tree_has_memory_cpus_psci_timer_gic_and_chosen():
    fdt = libfdt.Fdt(build(describe(bootargs="console=hvc0", initrd=(0x8F00_0000, 0x8F10_0000))))
    chosen = fdt.path_offset("/chosen")
    assert fdt.getprop(chosen, "bootargs").as_str() == "console=hvc0"
    assert fdt.getprop(chosen, "linux,initrd-start").as_uint64() == 0x8F00_0000
    memory = fdt.getprop(fdt.path_offset("/memory@80000000"), "reg")
    assert bytes(memory) == (0x8000_0000).to_bytes(8, "big") + (256 << 20).to_bytes(8, "big")
    assert fdt.getprop(fdt.path_offset("/cpus/cpu@1"), "enable-method").as_str() == "psci"
    assert fdt.getprop(fdt.path_offset("/psci"), "method").as_str() == "smc"
    assert fdt.path_offset("/timer") > 0 and fdt.path_offset("/intc@3fff0000") > 0


def test_mpidr_of_the_seventeenth_cpu_uses_aff1():
    fdt = libfdt.Fdt(build(describe(cpus=17)))
    assert fdt.getprop(fdt.path_offset("/cpus/cpu@100"), "reg").as_uint32() == 0x100


def test_the_blob_is_deterministic_and_depends_on_its_inputs():
    assert build(describe()) == build(describe())
    assert build(describe()) != build(describe(bootargs="quiet"))
