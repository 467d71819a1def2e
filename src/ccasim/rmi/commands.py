"""The RMI commands of RMM 1.0 as the spec declares them (B4.3.x.1 Interface): the input
registers X1.. and output registers X1.. of each, by the spec's names.

Both sides use the table: the RMM dispatches on it (every FID has exactly one handler, taking
these inputs), the host-side client names a command's outputs from it
(``rmi.rec_aux_count(rd).aux_count``), and the log prints each command's outputs.
"""

from __future__ import annotations

from ccasim.rmi.fid import FID
from ccasim.smccc import Function, functions

RMI_COMMANDS: dict[int, Function] = functions(
    Function(FID.DATA_CREATE, "RMI_DATA_CREATE", ("rd", "data", "ipa", "src", "flags")),
    Function(FID.DATA_CREATE_UNKNOWN, "RMI_DATA_CREATE_UNKNOWN", ("rd", "data", "ipa")),
    Function(FID.DATA_DESTROY, "RMI_DATA_DESTROY", ("rd", "ipa"), ("data", "top")),
    Function(FID.FEATURES, "RMI_FEATURES", ("index",), ("value",)),
    Function(FID.GRANULE_DELEGATE, "RMI_GRANULE_DELEGATE", ("addr",)),
    Function(FID.GRANULE_UNDELEGATE, "RMI_GRANULE_UNDELEGATE", ("addr",)),
    Function(FID.PSCI_COMPLETE, "RMI_PSCI_COMPLETE", ("calling_rec", "target_rec", "status")),
    Function(FID.REALM_ACTIVATE, "RMI_REALM_ACTIVATE", ("rd",)),
    Function(FID.REALM_CREATE, "RMI_REALM_CREATE", ("rd", "params_ptr")),
    Function(FID.REALM_DESTROY, "RMI_REALM_DESTROY", ("rd",)),
    Function(FID.REC_AUX_COUNT, "RMI_REC_AUX_COUNT", ("rd",), ("aux_count",)),
    Function(FID.REC_CREATE, "RMI_REC_CREATE", ("rd", "rec", "params_ptr")),
    Function(FID.REC_DESTROY, "RMI_REC_DESTROY", ("rec_ptr",)),
    Function(FID.REC_ENTER, "RMI_REC_ENTER", ("rec", "run_ptr")),
    Function(FID.RTT_CREATE, "RMI_RTT_CREATE", ("rd", "rtt", "ipa", "level")),
    Function(FID.RTT_DESTROY, "RMI_RTT_DESTROY", ("rd", "ipa", "level"), ("rtt", "top")),
    Function(FID.RTT_FOLD, "RMI_RTT_FOLD", ("rd", "ipa", "level"), ("rtt",)),
    Function(FID.RTT_INIT_RIPAS, "RMI_RTT_INIT_RIPAS", ("rd", "base", "top"), ("out_top",)),
    Function(FID.RTT_MAP_UNPROTECTED, "RMI_RTT_MAP_UNPROTECTED", ("rd", "ipa", "level", "desc")),
    Function(
        FID.RTT_READ_ENTRY,
        "RMI_RTT_READ_ENTRY",
        ("rd", "ipa", "level"),
        ("walk_level", "state", "desc", "ripas"),
    ),
    Function(
        FID.RTT_SET_RIPAS, "RMI_RTT_SET_RIPAS", ("rd", "rec_ptr", "base", "top"), ("out_top",)
    ),
    Function(
        FID.RTT_UNMAP_UNPROTECTED, "RMI_RTT_UNMAP_UNPROTECTED", ("rd", "ipa", "level"), ("top",)
    ),
    Function(FID.VERSION, "RMI_VERSION", ("req",), ("lower", "higher")),
)
