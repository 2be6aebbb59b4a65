"""The node SDK: everything a node type's author uses, and the only engine module they import.

A node type is a class that declares itself (type name, label, category, a settings JSON
Schema, its output ports) and routes a batch of customers in `process`:

    from engine.sdk import Batch, NodeType, Result, register

    @register
    class Birthday(NodeType):
        type = "acme.birthday"
        label = "Birthday today"
        ports = ("yes", "no")

        def process(self, batch: Batch) -> Result:
            ...

Installed packages declare their node types under the entry point group
`campaign_canvas.nodes`, exactly as the built-in nodes do (setup.cfg); the registry loads
them on first use. `engine.sdk.testing` runs a campaign using them on a virtual clock.

Submodules, each one idea: `conditions` (customer rules compiled to SQL, typed safely),
`data` (the tables a node may read and write), `messaging`, `engagement`, `calendar`,
`events` (who did what since), `wording` (settings in words, for `summary`), `testing`.

What this package exports is the public contract; it changes only with a new SDK_VERSION,
and a name leaving it stays for one release as a deprecated alias.
"""

from engine.core.batch import Batch, id_chunks
from engine.core.clock import LONGEST_DURATION, iso, parse_duration, to_utc_naive
from engine.core.errors import (
    CampaignCanvasError,
    InvalidInput,
    InvalidState,
    RegistrationError,
)
from engine.core.registry import (
    CAPABILITIES,
    Experiment,
    Migration,
    NodeType,
    Result,
    Variant,
    migration,
    node_type,
    register,
)
from engine.core.validation import Problem
from engine.sdk.schema import DURATION, ID_REF, LONGEST, duration_parts, node_ref, ref

#: bumped when something exported here changes incompatibly
SDK_VERSION = 1

__all__ = [
    "CAPABILITIES", "DURATION", "ID_REF", "LONGEST", "LONGEST_DURATION", "SDK_VERSION", "Batch",
    "CampaignCanvasError", "Experiment", "InvalidInput", "InvalidState", "Migration", "NodeType", "Problem",
    "RegistrationError", "Result", "Variant", "duration_parts", "id_chunks", "iso", "migration",
    "node_ref", "node_type", "parse_duration", "ref", "register", "to_utc_naive",
]
