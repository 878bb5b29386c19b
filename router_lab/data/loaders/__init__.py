"""Loaders: each routing-data source -> ``list[RoutingRecord]``, checked at the edge.

    from router_lab.data.loaders import LOADERS
    records = LOADERS["routerdc"]("../shared/data/routerdc/split2_model7/gsm8k-test.json")

One module per source, and :data:`LOADERS`, the one registry: a data config names a loader
from it (``loader: routerdc``) with that loader's keyword arguments
(``router_lab.data.sources.resolve_loader`` checks them against its signature). Every file
loader takes ``path`` first and returns plain records; with ``llm_names=None`` it takes the
file's LLMs, otherwise it checks the file against that pool and orders each record's
scores/costs by it. Bad input ends in one ``DataError`` line naming the file, the record and
the field, and what was expected (``common.py`` has the shared reading and checks). Record
ids are stable: the source's own id where it has one, else ``stable_id(task, index, query)``.
"""
from __future__ import annotations

from typing import Callable

from router_lab.data.loaders import arena, clinc150, llmrouter, routerbench, routerdc, saved, synthetic, table
from router_lab.data.records import RoutingRecord

LOADERS: dict[str, Callable[..., list[RoutingRecord]]] = {
    "routerdc": routerdc.load_routerdc_json,
    "clinc150": clinc150.load_clinc150,
    "table": table.load_table,
    "records": saved.load_records_jsonl,
    "hf_disk": saved.load_saved_dataset,
    "routerbench": routerbench.load_routerbench,
    "arena": arena.load_arena,
    "llmrouter": llmrouter.load_llmrouter,
    "synthetic": synthetic.load_synthetic,
}
