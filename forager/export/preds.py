"""SWE-bench predictions: one row per episode, the fields SWE-bench's harness reads.

An episode that submitted nothing has an empty patch (the harness grades it as unresolved). With
several attempts per task a file holds several rows per instance; choose them with the filters.
"""

from __future__ import annotations

import pyarrow as pa

from forager.store.stream import EpisodeBundle

STEP_COLUMNS: tuple[str, ...] = ()

SCHEMA = pa.schema([pa.field("instance_id", pa.string()), pa.field("model_name_or_path", pa.string()),
                    pa.field("model_patch", pa.string())])


def prediction_row(bundle: EpisodeBundle) -> dict:
    return {"instance_id": bundle.task.instance_id, "model_name_or_path": bundle.run.model or bundle.run.policy,
            "model_patch": bundle.episode.patch or ""}
