"""RMI command handlers, one module per command family (as TF-RMM's runtime/rmi/).

Each handler takes the RMM and the command's input registers (named as in its B4.3
definition), checks the failure conditions in an order that satisfies the spec's
failure-condition orderings (raising :class:`~ccasim.rmm.errors.CommandFailure` for the first
that holds, before changing anything), then applies the success conditions and returns the
output registers X1...

:data:`HANDLERS` maps every RMI 1.0 FID to its handler; at import it is checked against the
ABI's declaration of the commands (:data:`ccasim.rmi.commands.RMI_COMMANDS`): exactly one
handler per FID, taking the declared inputs, as TF-RMM's handler table asserts.
"""

from __future__ import annotations

from collections.abc import Callable

from ccasim.rmi.commands import RMI_COMMANDS
from ccasim.rmi.fid import FID
from ccasim.rmm.handler_table import check_table
from ccasim.rmm.rmi import data, granule, realm, rec, rtt, run, version

Handler = Callable[..., tuple[int, ...]]

HANDLERS: dict[int, Handler] = {
    FID.VERSION: version.version,
    FID.FEATURES: version.features,
    FID.GRANULE_DELEGATE: granule.granule_delegate,
    FID.GRANULE_UNDELEGATE: granule.granule_undelegate,
    FID.REALM_CREATE: realm.realm_create,
    FID.REALM_ACTIVATE: realm.realm_activate,
    FID.REALM_DESTROY: realm.realm_destroy,
    FID.REC_AUX_COUNT: rec.rec_aux_count,
    FID.REC_CREATE: rec.rec_create,
    FID.REC_DESTROY: rec.rec_destroy,
    FID.REC_ENTER: run.rec_enter,
    FID.PSCI_COMPLETE: run.psci_complete,
    FID.DATA_CREATE: data.data_create,
    FID.DATA_CREATE_UNKNOWN: data.data_create_unknown,
    FID.DATA_DESTROY: data.data_destroy,
    FID.RTT_CREATE: rtt.rtt_create,
    FID.RTT_DESTROY: rtt.rtt_destroy,
    FID.RTT_FOLD: rtt.rtt_fold,
    FID.RTT_READ_ENTRY: rtt.rtt_read_entry,
    FID.RTT_MAP_UNPROTECTED: rtt.rtt_map_unprotected,
    FID.RTT_UNMAP_UNPROTECTED: rtt.rtt_unmap_unprotected,
    FID.RTT_INIT_RIPAS: rtt.rtt_init_ripas,
    FID.RTT_SET_RIPAS: rtt.rtt_set_ripas,
}


check_table(HANDLERS, RMI_COMMANDS, context=1)
